"""edgeslm: small language models on edge devices, within each device's budget."""

__version__ = "0.1.0"
