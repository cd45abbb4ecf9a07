"""Exceptions a user can act on. The CLI prints their message and exits non-zero, no traceback."""


class EdgeslmError(Exception):
    """Base class: anything raised on purpose by edgeslm."""


class ConfigError(EdgeslmError):
    """A config (train, data, recipe) has an unknown field, a wrong type or an impossible value."""


class ModelNotFoundError(EdgeslmError):
    """A model name or path does not resolve to weights on this machine."""


class DataError(EdgeslmError):
    """A dataset file is missing, malformed, or disagrees with the model's labels."""


class BundleError(EdgeslmError):
    """A bundle is malformed, tampered with, truncated, or from a newer format."""


class GgufError(EdgeslmError):
    """A decoder cannot be converted or quantized (architecture, tokenizer, or llama.cpp refused it)."""


class SignatureError(BundleError):
    """A bundle or policy is unsigned, signed by an untrusted key, wrongly signed, or a key file is unusable."""
