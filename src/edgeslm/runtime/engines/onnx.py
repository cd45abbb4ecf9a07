"""An encoder bundle served with ONNX Runtime and the `tokenizers` library.

The session is tuned once (threads, full graph optimization) and reused; inputs are padded to the
longest text in the batch, never to max_length, because smart-home commands are short.
"""

from __future__ import annotations

import lzma
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import BundleError

MAX_REQUEST_CHARS = 2000


class OnnxClassifier:
    def __init__(self, model: Path, tokenizer: Path, labels: Sequence[str], max_length: int,
                 input_names: Sequence[str], threads: int | None = None, spin: bool = True):
        self.name = Path(model).parent.name  # from_bundle names it after the manifest
        self.labels = list(labels)
        self.input_names = list(input_names)
        self.tokenizer = load_tokenizer(tokenizer, max_length)
        self.session, self.model_bytes = load_session(model, threads, spin)
        outputs = self.session.get_outputs()
        if outputs[0].shape[-1] not in (len(self.labels), None) and isinstance(outputs[0].shape[-1], int):
            raise BundleError(f"{model}: the model has {outputs[0].shape[-1]} outputs but the manifest lists "
                              f"{len(self.labels)} labels")
        missing = {i.name for i in self.session.get_inputs()} - set(self.input_names)
        if missing:
            raise BundleError(f"{model}: the model wants inputs {sorted(missing)} that the manifest does not name")

    @classmethod
    def from_bundle(cls, bundle: Any, threads: int | None = None, spin: bool = True) -> OnnxClassifier:
        m = bundle.manifest
        if m.task != "text-classification":
            raise BundleError(f"{bundle.path}: a {m.task} bundle is not a classifier")
        if m.engine != "onnxruntime":  # an early-exit bundle's model_file is its exit plan, not a graph
            raise BundleError(f"{bundle.path}: a bundle for {m.engine}; load it with runtime.engines.registry.load_engine")
        engine = cls(bundle.model_path, bundle.file(m.tokenizer["file"]), m.labels, m.tokenizer["max_length"],
                     m.tokenizer.get("inputs", ["input_ids", "attention_mask"]), threads, spin)
        engine.name = m.name
        return engine

    def memory_bytes(self) -> int:
        """What the governor budgets for this engine. Measured RSS growth for load + one batch of 32 on
        the demo bundles: 56 MiB for the 22 MiB int8 file (the first session also pays ORT's one-time
        setup), 100 MiB for the 87 MiB fp32 file; 1.2x the weights plus 24 MiB covers both."""
        return int(self.model_bytes * 1.2) + 24 * 2**20

    def close(self) -> None:
        self.session = None  # ORT frees the session when the last reference goes

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return encode_texts(self.tokenizer, texts, self.input_names)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        check_texts(texts)
        return self.session.run(None, self.encode(texts))[0]

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        logits = self.logits(texts)
        if len(logits) == 1:
            # a device's usual request: three numpy calls, not seven. The work after session.run runs
            # while ORT's worker still spins on the sibling hyperthread, so it costs more than it
            # looks: the general path below was 3.6% of a batch-1 call here, this one 1.5%.
            row = logits[0]
            i = int(row.argmax())
            return [{"label": self.labels[i], "score": 1.0 / float(np.exp(row - row[i]).sum())}]
        best = logits.argmax(axis=-1)
        # softmax probability of the winner only: 1 / sum(exp(logit - max))
        scores = 1.0 / np.exp(logits - logits.max(axis=-1, keepdims=True)).sum(axis=-1)
        return [{"label": self.labels[i], "score": float(p)} for i, p in zip(best, scores, strict=True)]


def _runtime() -> Any:
    try:
        import onnxruntime as ort
        import tokenizers  # noqa: F401  (the engines need both; say so once, at load)
    except ImportError:
        raise BundleError("serving encoder bundles needs onnxruntime and tokenizers: pip install 'edgeslm[device]'") from None
    return ort


def load_tokenizer(path: Path, max_length: int) -> Any:
    """A fast tokenizer that truncates to max_length and pads nothing (encode_texts pads per batch)."""
    _runtime()
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises plain Exception on a bad file
        raise BundleError(f"{path}: not a valid tokenizer.json ({exc})") from None
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def load_session(model: Path, threads: int | None = None, spin: bool = True) -> tuple[Any, int]:
    """An ONNX Runtime session tuned once (threads, full graph optimization), and the model's size in bytes."""
    ort = _runtime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spin:  # idle worker threads stop spinning: fair when several sessions share the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        source: str | bytes = str(model)
        size = Path(model).stat().st_size
        if str(model).endswith(".xz"):  # sparse bundles ship xz-compressed; inflate in memory
            source = lzma.decompress(Path(model).read_bytes())
            size = len(source)
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"]), size
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
        raise BundleError(f"{model}: ONNX Runtime cannot load it: {str(exc).splitlines()[0][:300]}") from None


def check_texts(texts: Sequence[str]) -> None:
    """What a request's texts must be; ValueError (the server's 400) when they are not."""
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("each text must be a non-empty string")
        if len(text) > MAX_REQUEST_CHARS:
            raise ValueError(f"text of {len(text)} characters exceeds the limit of {MAX_REQUEST_CHARS}")


def encode_texts(tokenizer: Any, texts: Sequence[str], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The graph's int64 feeds [batch, longest text in the batch], padded with zeros on the right."""
    if len(texts) == 1:  # a device's usual request: skip the batch machinery (and its thread hand-off)
        e = tokenizer.encode(texts[0])
        feeds = {"input_ids": np.asarray([e.ids], dtype=np.int64)}
        if "attention_mask" in input_names:
            feeds["attention_mask"] = np.asarray([e.attention_mask], dtype=np.int64)
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.asarray([e.type_ids], dtype=np.int64)
        return feeds
    encodings = tokenizer.encode_batch(list(texts))
    width = max(len(e.ids) for e in encodings)
    feeds = {n: np.zeros((len(encodings), width), dtype=np.int64) for n in input_names}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        feeds["input_ids"][row, :n] = e.ids
        if "attention_mask" in feeds:
            feeds["attention_mask"][row, :n] = e.attention_mask
        if "token_type_ids" in feeds:
            feeds["token_type_ids"][row, :n] = e.type_ids
    return feeds
