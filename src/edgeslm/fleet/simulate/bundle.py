"""A tiny real bundle for `edgeslm fleet simulate`, made with what the control plane installs (no `onnx` package,
which is build side): the ONNX graph of tests/tiny_bundle.py written as protobuf bytes by hand, a WordLevel
tokenizer, a signed probe set, and `pad_bytes` of filler standing in for a real model's weights (the archive's size is
what a rollout moves; the agent hashes every byte of it when it verifies the bundle).

The classifier is real: the logit of label i is 8 x the share of KEYWORDS[i] among the text's tokens, so every probe
text is answered right (probe accuracy 1.0) by onnxruntime on every simulated device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgeslm.formats.writer import BundleWriter

LABELS = ("TurnOn", "TurnOff", "Weather")
KEYWORDS = ("on", "off", "weather")
FILLER = ("turn", "the", "kitchen", "lights", "what", "is", "like", "please", "lamp")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PROBE = [("turn on the kitchen lights", "TurnOn"), ("lights on please", "TurnOn"), ("turn off the lights", "TurnOff"),
         ("kitchen lamp off", "TurnOff"), ("what is the weather like", "Weather"), ("weather please", "Weather")]
PROBE_FILE = "probe.jsonl"
FLOAT, INT64 = 1, 7  # onnx TensorProto data types
INT_ATTR = 2  # onnx AttributeProto.INT


# --- protobuf wire format: varints and length-delimited fields are all an ONNX model needs ------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:  # TensorProto: dims 1, data_type 2, name 8, raw_data 9
    kind = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
    return (b"".join(_int(1, d) for d in array.shape) + _int(2, kind) + _bytes(8, name)
            + _bytes(9, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()))


def _node(op: str, inputs: list[str], outputs: list[str], **attrs: int) -> bytes:  # NodeProto: input 1, output 2, op 4
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(4, op)
    for name, value in attrs.items():  # AttributeProto: name 1, i 3, type 20
        body += _bytes(5, _bytes(1, name) + _int(3, value) + _int(20, INT_ATTR))
    return body


def _value(name: str, elem: int, dims: list[str]) -> bytes:  # ValueInfoProto -> TypeProto.Tensor -> shape dim_param
    shape = b"".join(_bytes(1, _bytes(2, d)) for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, elem) + _bytes(2, shape)))


def onnx_model(vocab: dict[str, int]) -> bytes:
    """ModelProto bytes of the tiny classifier (opset 17, IR 8): Gather embeddings, masked mean, scaled identity."""
    n = len(LABELS)
    embed = np.zeros((len(vocab), n), dtype=np.float32)  # [vocab, labels]: one axis per keyword
    for i, word in enumerate(KEYWORDS):
        embed[vocab[word], i] = 1.0
    inits = [_tensor("word_embeddings", embed), _tensor("token_type_embeddings", np.zeros((2, n), np.float32)),
             _tensor("classifier_weight", np.eye(n, dtype=np.float32) * 8.0),
             _tensor("last_axis", np.array([-1], np.int64)), _tensor("sequence_axis", np.array([1], np.int64)),
             _tensor("one", np.array(1.0, np.float32))]
    nodes = [
        _node("Gather", ["word_embeddings", "input_ids"], ["tokens"]),  # [batch, seq, labels]
        _node("Gather", ["token_type_embeddings", "token_type_ids"], ["types"]),
        _node("Add", ["tokens", "types"], ["embedded"]),
        _node("Cast", ["attention_mask"], ["mask"], to=FLOAT),
        _node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),
        _node("Mul", ["embedded", "mask3"], ["masked"]),
        _node("ReduceSum", ["masked", "sequence_axis"], ["summed"], keepdims=0),
        _node("ReduceSum", ["mask3", "sequence_axis"], ["count"], keepdims=0),
        _node("Max", ["count", "one"], ["safe_count"]),
        _node("Div", ["summed", "safe_count"], ["pooled"]),
        _node("MatMul", ["pooled", "classifier_weight"], ["logits"]),
    ]
    graph = (b"".join(_bytes(1, nd) for nd in nodes) + _bytes(2, "sim_tiny_encoder")
             + b"".join(_bytes(5, t) for t in inits)
             + b"".join(_bytes(11, _value(i, INT64, ["batch", "sequence"]))
                        for i in ("input_ids", "attention_mask", "token_type_ids"))
             + _bytes(12, _value("logits", FLOAT, ["batch", str(n)])))
    # ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain "" is the default: left out)
    return _int(1, 8) + _bytes(2, "edgeslm-simulate") + _bytes(7, graph) + _bytes(8, _int(2, 17))


def _tokenizer(vocab: dict[str, int], path: Path) -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.enable_truncation(16)
    tok.save(str(path))


def make_bundle(out: Path, name: str, note: str, pad_bytes: int = 0) -> Path:
    """Write the bundle to `out`; `note` (in its provenance) gives each release its own bytes and sha256."""
    words = [*SPECIALS, *FILLER, *KEYWORDS]
    vocab = {w: i for i, w in enumerate(words)}
    with BundleWriter(Path(out)) as writer:
        _tokenizer(vocab, writer.path("tokenizer.json"))
        writer.path("model.onnx").write_bytes(onnx_model(vocab))
        writer.path(PROBE_FILE).write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in PROBE))
        if pad_bytes:  # random, so no transport or filesystem can compress it away
            writer.path("weights.bin").write_bytes(os.urandom(pad_bytes))
        writer.finish(
            name=name, family="encoder", architecture="tiny-mean-pool", task="text-classification",
            engine="onnxruntime", model_file="model.onnx", labels=list(LABELS),
            tokenizer={"file": "tokenizer.json", "max_length": 16, "inputs": ["input_ids", "attention_mask", "token_type_ids"]},
            provenance={"base_model": "none: the fleet simulator's synthetic classifier (fleet/simulate/bundle.py)",
                        "export": {"format": "onnx", "opset": 17, "precision": "fp32"}, "note": note})
    return Path(out)

