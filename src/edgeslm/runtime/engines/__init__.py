"""Engines: one per runtime a bundle names (ONNX Runtime for encoders, llama.cpp for decoders)."""
