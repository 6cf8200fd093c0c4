"""ONNX models: load, signature, validate, and the one Runner shared by
check, serve, predict and edge."""
