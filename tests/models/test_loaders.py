"""Loading the real built-in models into PyTorch."""

import pytest

from edgeslm.errors import ModelNotFoundError
from edgeslm.models.loaders import load_classifier, load_decoder
from edgeslm.models.registry import resolve

pytestmark = pytest.mark.model


def test_encoder_gets_a_head_over_the_labels():
    model, tok = load_classifier(resolve("minilm-l6"), ["a", "b", "c"])
    assert model.config.num_labels == 3 and model.config.id2label[2] == "c"
    assert tok("turn on the light")["input_ids"][0] == tok.cls_token_id


def test_decoder_cannot_be_a_classifier():
    with pytest.raises(ModelNotFoundError, match="use an encoder"):
        load_classifier(resolve("smollm2-135m"), ["a", "b"])


def test_gguf_decoder_loads_into_torch_and_predicts():
    import torch

    model, tok = load_decoder(resolve("smollm2-135m"))
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert " Paris" in tok.decode(logits[0, -1].topk(5).indices)
