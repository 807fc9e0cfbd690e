"""Built-in Source plugins: PyTorch, Keras / SavedModel and ONNX models."""
