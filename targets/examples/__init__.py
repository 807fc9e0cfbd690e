"""Built-in example models trained on data that ships inside installed packages."""
