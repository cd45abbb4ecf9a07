"""A tiny synthetic encoder bundle for tests that need *a* bundle, not the real model.

Use the session-scoped fixture `tiny_bundle` (a Path; never modify it) or the function-scoped
`tiny_bundle_copy` (a private copy a test may damage), both in tests/conftest.py; they run in the
fast tier without the `model` mark. The bundle is written by the product's own BundleWriter, so
`open_bundle` verifies it and `OnnxClassifier.from_bundle` loads it: a WordLevel tokenizer.json
(lowercase, whitespace split, [CLS] text [SEP], truncated to max_length) and an ONNX graph with the
exported encoder's interface (int64 input_ids, attention_mask, token_type_ids of shape
[batch, sequence] -> float logits [batch, labels]). Its weights are fixed, not trained: the logit of
label i is SCALE times the share of KEYWORDS[i] among the text's tokens (masked mean, then a scaled
identity), so "turn on the lights" is TurnOn and a text with no keyword is labels[0]. For a variant,
take the session fixture `make_tiny_bundle` (this module's function: --import-mode=importlib keeps
tests/ off sys.path) and call `make_tiny_bundle(tmp_path / "b", labels=..., max_length=..., inputs=...)`;
it takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeslm.formats.writer import BundleWriter

LABELS = ("TurnOn", "TurnOff", "Weather")
KEYWORDS = ("on", "off", "weather")  # label i is chosen by the word KEYWORDS[i]
FILLER = ("turn", "the", "kitchen", "lights", "what", "is", "like", "please", "lamp")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")  # ids 0..3, the order BERT vocabularies use
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what export_onnx gives a BERT encoder
OPSET = 17  # the exporter's opset (export/onnx.py)
IR_VERSION = 8  # opset 17's IR version: older ONNX Runtimes refuse a newer IR than they know
SCALE = 8.0  # logit per unit of keyword share: confident scores, still finite


def keywords_for(labels: Sequence[str]) -> list[str]:
    """The word that selects each label: KEYWORDS first, then kw3, kw4, ... for longer label lists."""
    return [KEYWORDS[i] if i < len(KEYWORDS) else f"kw{i}" for i in range(len(labels))]


def make_tiny_bundle(out: Path, labels: Sequence[str] = LABELS, max_length: int = 16,
                     inputs: Sequence[str] = INPUTS, name: str = "tiny-encoder", selection: dict | None = None) -> Path:
    """Write the bundle to `out` (replacing a bundle there) and return `out`. `selection`: a manifest selection
    block, as `edgeslm select` writes one."""
    import onnx  # build side only, like the exporter

    words = [*SPECIALS, *FILLER, *keywords_for(labels)]
    vocab = {w: i for i, w in enumerate(words)}
    with BundleWriter(Path(out)) as writer:
        _tokenizer(vocab, max_length).save(str(writer.path("tokenizer.json")))
        onnx.save(_onnx_model(vocab, labels, inputs), str(writer.path("model.onnx")))
        writer.finish(
            name=name, family="encoder", architecture="tiny-mean-pool", task="text-classification",
            engine="onnxruntime", model_file="model.onnx", labels=list(labels),
            tokenizer={"file": "tokenizer.json", "max_length": max_length, "inputs": list(inputs)},
            provenance={"base_model": "none: synthetic test fixture (tests/tiny_bundle.py)",
                        "export": {"format": "onnx", "opset": OPSET, "precision": "fp32"}},
            **({"selection": selection} if selection else {}),
        )
    return Path(out)


def _tokenizer(vocab: dict[str, int], max_length: int):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.enable_truncation(max_length)
    return tok


def _onnx_model(vocab: dict[str, int], labels: Sequence[str], inputs: Sequence[str]):
    """logits[b] = SCALE * mean over unmasked tokens of onehot(keyword label), + token-type embedding (zero)."""
    from onnx import TensorProto, helper, numpy_helper

    n = len(labels)
    embed = np.zeros((len(vocab), n), dtype=np.float32)  # [vocab, width]; width = labels, one axis per keyword
    for i, word in enumerate(keywords_for(labels)):
        embed[vocab[word], i] = 1.0
    init = [
        numpy_helper.from_array(embed, "word_embeddings"),
        numpy_helper.from_array(np.zeros((2, n), dtype=np.float32), "token_type_embeddings"),
        numpy_helper.from_array(np.eye(n, dtype=np.float32) * SCALE, "classifier_weight"),  # [width, labels]
        numpy_helper.from_array(np.zeros(n, dtype=np.float32), "classifier_bias"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "sequence_axis"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    nodes = [helper.make_node("Gather", ["word_embeddings", "input_ids"], ["tokens"])]  # [batch, seq, width]
    if "token_type_ids" in inputs:
        nodes += [helper.make_node("Gather", ["token_type_embeddings", "token_type_ids"], ["types"]),
                  helper.make_node("Add", ["tokens", "types"], ["embedded"])]
    else:
        nodes += [helper.make_node("Identity", ["tokens"], ["embedded"])]
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),  # [batch, seq]
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),  # [batch, seq, 1]
        helper.make_node("Mul", ["embedded", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "sequence_axis"], ["summed"], keepdims=0),  # [batch, width]
        helper.make_node("ReduceSum", ["mask3", "sequence_axis"], ["count"], keepdims=0),  # [batch, 1]
        helper.make_node("Max", ["count", "one"], ["safe_count"]),  # an all-padding row divides by 1, not 0
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "classifier_weight"], ["scaled"]),
        helper.make_node("Add", ["scaled", "classifier_bias"], ["logits"]),  # [batch, labels]
    ]
    graph = helper.make_graph(
        nodes, "tiny_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"]) for name in inputs],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeslm-tests")
    model.ir_version = IR_VERSION
    return model
