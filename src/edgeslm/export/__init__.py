"""Build side: a trained run or a decoder checkpoint -> a bundle (ONNX for encoders, GGUF for decoders)."""
