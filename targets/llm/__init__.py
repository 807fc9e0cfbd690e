"""Language models on the device: the tiny example, ExecuTorch export with a static KV cache, and stepping the
exported program token by token (what validation and the tokens-per-second figures read)."""
