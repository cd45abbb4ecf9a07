"""One compression's context: the run, its data, the fp32 teacher and its cached export, and the
settings every stage reads (the guard, the torch modifiers, the report, the bundle writer)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from edgeslm.compress.kd import distill
from edgeslm.data.records import Example, read_examples
from edgeslm.evaluate.runner import evaluate_classifier
from edgeslm.export.onnx import EXPORTER, export_onnx, model_inputs
from edgeslm.formats.hashing import sha256_file
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.train.run import RunFolder


@dataclass
class CompressContext:
    run: RunFolder
    record: dict[str, Any]
    teacher: Any
    tokenizer: Any
    fp32_path: Path  # the fused fp32 export
    inputs: list[str]  # the graph's input names
    val: list[Example]
    test: list[Example]
    train: list[Example]  # the run's training split, when a step needs it (torch modifiers, calibration)
    tmp: Path
    progress: bool = True
    say: Callable[[str], Any] = field(default=lambda _: None)

    @classmethod
    @contextmanager
    def open(cls, run: RunFolder, needs_train: bool, progress: bool = True,
             say: Callable[[str], Any] | None = None) -> Iterator[CompressContext]:
        """Load the teacher, export it to ONNX (cached in the run) and read the splits; a scratch
        folder lives as long as the context."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        record = run.read()
        labels = record["labels"]
        torch.manual_seed(int(record["config"]["seed"]))
        teacher = AutoModelForSequenceClassification.from_pretrained(str(run.model)).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(run.model))
        fp32_path, inputs = fp32_onnx(run, teacher, tokenizer, record["max_length"])
        train: list[Example] = []
        if needs_train:
            from edgeslm.data.catalog import load_dataset

            train = load_dataset(record["config"]["data"], seed=int(record["config"]["seed"])).train
        with tempfile.TemporaryDirectory(prefix="edgeslm-compress-") as tmp:
            yield cls(run, record, teacher, tokenizer, fp32_path, inputs,
                      read_examples(run.split("val"), labels=labels), read_examples(run.split("test"), labels=labels),
                      train, Path(tmp), progress, say or (lambda _: None))

    @property
    def labels(self) -> list[str]:
        return list(self.record["labels"])

    @property
    def max_length(self) -> int:
        return int(self.record["max_length"])

    @property
    def seed(self) -> int:
        return int(self.record["config"]["seed"])

    def classifier(self, path: Path) -> OnnxClassifier:
        """A device-runtime session on an ONNX file, spinning off (compress/measure.py says why)."""
        return OnnxClassifier(path, self.run.tokenizer_file, self.labels, self.max_length, self.inputs, spin=False)

    @cached_property
    def fp32(self) -> OnnxClassifier:
        return self.classifier(self.fp32_path)

    @cached_property
    def fp32_val(self) -> float:
        """The fp32 export's validation accuracy: what the guard's floor is a share of."""
        return evaluate_classifier(self.fp32, self.val, timed=False)["accuracy"]

    def val_accuracy(self, path: Path) -> dict[str, Any]:
        return evaluate_classifier(self.classifier(path), self.val, timed=False)

    def distill(self, student: Any, config: Any, steps: int, desc: str, after_step: Any = None) -> None:
        """Distil `student` from the fp32 teacher on the run's training split."""
        distill(student, self.teacher, self.tokenizer, self.train, self.labels, config, steps, self.max_length,
                self.seed, after_step=after_step, progress=self.progress, desc=desc)


def fp32_onnx(run: RunFolder, teacher: Any, tokenizer: Any, max_length: int) -> tuple[Path, list[str]]:
    """The run's fp32 ONNX export, cached next to the weights it came from. A cache whose inputs
    differ from what the model takes is stale (before per-architecture inputs, a DistilBERT run
    cached BERT's token_type_ids)."""
    run.onnx.mkdir(exist_ok=True)
    weights_sha = sha256_file(run.weights)
    if run.fp32_stamp.is_file() and run.fp32_onnx.is_file() and run.fp32_raw_onnx.is_file():
        meta = json.loads(run.fp32_stamp.read_text(encoding="utf-8"))
        fresh = meta.get("weights_sha256") == weights_sha and meta.get("exporter") == EXPORTER
        if fresh and meta.get("inputs") == model_inputs(teacher, tokenizer(["turn on the lights"])):
            return run.fp32_onnx, meta["inputs"]
    names = export_onnx(teacher, tokenizer, run.fp32_onnx, max_length, keep_raw=run.fp32_raw_onnx)
    run.fp32_stamp.write_text(json.dumps({"weights_sha256": weights_sha, "exporter": EXPORTER, "inputs": names}),
                              encoding="utf-8")
    return run.fp32_onnx, names
