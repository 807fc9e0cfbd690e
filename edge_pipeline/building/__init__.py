"""Building: the pipeline that turns a source into artifacts (plan, stage jobs in worker processes, the cache,
the writer) and `tune`, which runs many builds. Stage bodies that run inside workers live here too, except the
measuring ones (see `edge_pipeline.measure`)."""
