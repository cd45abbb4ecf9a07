"""Load models into PyTorch (build side only: imports torch and transformers)."""

from __future__ import annotations

from typing import Any

from edgeslm.errors import ModelNotFoundError
from edgeslm.models.registry import ModelSource


def load_classifier(source: ModelSource, labels: list[str]) -> tuple[Any, Any]:
    """An encoder with a fresh classification head over `labels`, and its tokenizer."""
    if source.family != "encoder":
        raise ModelNotFoundError(f"{source.name}: a {source.family} cannot be trained as a classifier here; use an encoder")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the 'classifier weights newly initialized' notice is expected
    tokenizer = AutoTokenizer.from_pretrained(str(source.path))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(source.path),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a checkpoint's own head (other labels) is replaced, by design
    )
    return model, tokenizer


def load_decoder(source: ModelSource) -> tuple[Any, Any]:
    """A causal LM and its tokenizer, from a HF folder or a GGUF file (dequantized to fp32)."""
    if source.family != "decoder":
        raise ModelNotFoundError(f"{source.name}: expected a decoder, this is an {source.family}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.format == "gguf":
        folder, kwargs = str(source.path.parent), {"gguf_file": source.path.name}
    else:
        folder, kwargs = str(source.path), {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except ImportError as exc:
        raise ModelNotFoundError(f"{source.name}: loading GGUF into PyTorch needs the gguf package ({exc})") from None
    return model, tokenizer
