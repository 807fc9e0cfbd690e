"""Measuring: running an artifact in its own runtime, validating it against its source per output, timing it and
its memory, on this host or through a transport; `edgepipe profile` for files edgepipe did not build."""
