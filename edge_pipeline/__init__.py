"""edgepipe: take a trained model to validated, profiled edge artifacts with one command."""

__version__ = "0.1.0"
