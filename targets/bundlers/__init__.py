"""The built-in bundlers (`edgepipe.bundlers` plugins): one per `sample_apps/<template>/` demo app, each with
the formats its app runs and what it generates besides the copied models. The shared filling and zipping lives
in `edge_pipeline/building/bundle.py`."""
