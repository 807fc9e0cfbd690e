"""One module per artifact format; shared mechanisms live in `torch_capture`."""
