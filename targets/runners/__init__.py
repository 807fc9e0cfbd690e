"""One module per runtime. Each Runner opens an artifact and returns a Session with `run(inputs)`."""
