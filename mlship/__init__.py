"""mlship: check, package, push, serve, roll out and monitor ONNX models."""

__version__ = "0.1.0"
