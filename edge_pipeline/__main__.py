"""`python -m edge_pipeline` is the `edgepipe` command."""
from edge_pipeline.cli import main

main()
