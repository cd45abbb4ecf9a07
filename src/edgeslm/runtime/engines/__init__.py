"""Engines: one per runtime a bundle names (ONNX Runtime for encoders, llama.cpp for decoders), found
through registry.py by the manifest's `engine`; sampling.py is the contract a decoder request meets."""
