"""Atelier's HTTP service: FastAPI + uvicorn + ONNX Runtime. It never imports torch."""
