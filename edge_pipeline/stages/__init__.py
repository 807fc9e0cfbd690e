"""Stage bodies that run inside worker processes (see edge_pipeline.worker)."""
