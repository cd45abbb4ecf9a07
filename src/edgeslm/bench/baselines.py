"""The plain baselines a user would write instead of edgeslm, run in the same process on the same data.

`ort`: an ONNX Runtime session on the bundle's own model file with default options (only the thread
count matched), and the bundle's tokenizer. `torch`: PyTorch eager on the fine-tuned weights the bundle
was exported from (build side only; for a compressed bundle that is its fp32 teacher).
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import BundleError, EdgeslmError


class RawOrt:
    name = "ort"

    def __init__(self, bundle: Any, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        m = bundle.manifest
        self.labels = list(m.labels)
        self.tokenizer = Tokenizer.from_file(str(bundle.file(m.tokenizer["file"])))
        self.tokenizer.enable_truncation(m.tokenizer["max_length"])
        self.inputs = list(m.tokenizer.get("inputs", ["input_ids", "attention_mask"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        path = bundle.model_path
        source: Any = lzma.decompress(path.read_bytes()) if path.name.endswith(".xz") else str(path)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def predict(self, texts: list[str]) -> list[str]:
        if len(texts) == 1:
            self.tokenizer.no_padding()
        else:
            self.tokenizer.enable_padding()
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        logits = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
        return [self.labels[i] for i in logits.argmax(-1)]


class TorchEager:
    name = "torch"

    def __init__(self, bundle: Any, threads: int):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError:
            raise EdgeslmError("--vs torch needs the build side: pip install 'edgeslm[build]'") from None
        run = bundle.manifest.provenance.get("run")
        from edgeslm.train.run import RunFolder  # the torch baseline reads the build side's run folder

        folder = RunFolder(Path(run)).model if run else None
        if folder is None or not folder.is_dir():
            raise BundleError(f"{bundle.path}: --vs torch needs the training run the bundle came from "
                              f"({run or 'not recorded'}); it is not on this machine")
        torch.set_num_threads(threads)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.max_length = bundle.manifest.tokenizer["max_length"]

    def predict(self, texts: list[str]) -> list[str]:
        with self.torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            logits = self.model(**batch).logits
        return [self.labels[i] for i in logits.argmax(-1).tolist()]


def baseline(kind: str, bundle: Any, threads: int) -> Any:
    if kind == "ort":
        return RawOrt(bundle, threads)
    if kind == "torch":
        return TorchEager(bundle, threads)
    raise EdgeslmError(f"--vs {kind} runs decoder bundles; {bundle.path} is an encoder (use ort or torch)")
