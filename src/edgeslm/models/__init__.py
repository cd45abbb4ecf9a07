"""Models: where weights come from (built-in packages, HF folders, safetensors, GGUF) and loading them."""

from edgeslm.models.registry import ModelSource, list_builtin, resolve

__all__ = ["ModelSource", "list_builtin", "resolve"]
