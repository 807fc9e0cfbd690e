"""Built-in Transform plugins (pruning and quantization), registered through entry points."""
