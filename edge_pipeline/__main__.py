"""`python -m edge_pipeline` is the `edgepipe` command."""
from .cli import main

main()
