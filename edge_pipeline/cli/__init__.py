"""The `edgepipe` command line (typer). Imports no ML framework: `--help` stays fast."""
from edge_pipeline.cli.app import app, main

__all__ = ["app", "main"]
