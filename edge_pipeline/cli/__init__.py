"""The `edgepipe` command line (typer). Imports no ML framework: `--help` stays fast."""
from .app import app, main

__all__ = ["app", "main"]
