"""Bridges: transforms that carry a model from one framework to another (through ONNX)."""
