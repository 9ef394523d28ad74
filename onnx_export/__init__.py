"""Checkpoint -> ONNX export, parity checks and the model repository (models/<name>/<version>/)."""
