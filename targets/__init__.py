"""Built-in targets (device profiles as data), Exporter plugins (one per format), Runner plugins (one per runtime)."""
