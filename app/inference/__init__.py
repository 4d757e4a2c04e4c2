"""Serving-time inference: ONNX Runtime runners for the networks."""
