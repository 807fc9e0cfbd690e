"""Model servers edgepipe starts for real: the process that runs them, and the code shipped inside their
artifacts (a TorchServe handler, a Ray Serve application)."""
