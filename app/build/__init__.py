"""Building models (needs torch): ONNX exports verified against torch, and the official or tuned
weights made into served model folders. Serving (app/inference) never imports this package."""
