"""The run folder: what `train` writes, and what export, compress, the demo and the benchmarks read.
This module is the one place its layout is spelled; no torch.

    RUN/
      run.json          config, labels, dataset meta, token window, schedule, history, metrics
      model/            safetensors weights + the fast tokenizer (tokenizer.json)
      data/val.jsonl    the held-out splits, as this run drew them
      data/test.jsonl
      onnx/             caches that compress keeps beside the weights they came from
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.errors import BundleError

SPLITS = ("val", "test")


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def record_file(self) -> Path:
        return self.path / "run.json"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def weights(self) -> Path:
        return self.model / "model.safetensors"

    @property
    def tokenizer_file(self) -> Path:
        return self.model / "tokenizer.json"

    def split(self, name: str) -> Path:
        if name not in SPLITS:
            raise ValueError(f"a run keeps the splits {SPLITS}, not {name!r}")
        return self.path / "data" / f"{name}.jsonl"

    @property
    def onnx(self) -> Path:
        return self.path / "onnx"

    @property
    def fp32_onnx(self) -> Path:
        """The fused fp32 export every compression starts from."""
        return self.onnx / "model.fp32.onnx"

    @property
    def fp32_raw_onnx(self) -> Path:
        """The unfused fp32 export: what a plain torch.onnx.export gives a user."""
        return self.onnx / "model.fp32.raw.onnx"

    @property
    def fp32_stamp(self) -> Path:
        """What the cached fp32 export was made from (weights sha256, exporter, inputs)."""
        return self.onnx / "fp32.json"

    @property
    def ort_dynamic_int8(self) -> Path:
        """ONNX Runtime's plain quantize_dynamic of the unfused export: the baseline users know."""
        return self.onnx / "model.ort-dynamic-int8.onnx"

    def is_run(self) -> bool:
        return self.record_file.is_file()

    def is_finished(self) -> bool:
        return self.is_run() and self.model.is_dir()

    def read(self) -> dict[str, Any]:
        """run.json, with the token window read from where older runs kept it."""
        if not self.record_file.is_file():
            raise BundleError(f"{self.path}: not a training run (no run.json); train one with `edgeslm train`")
        try:
            record = json.loads(self.record_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BundleError(f"{self.record_file}: not valid JSON") from None
        if not isinstance(record, dict):
            raise BundleError(f"{self.record_file}: not a run record")
        # runs before the window was sized to the data kept it in their config only
        record.setdefault("max_length", record.get("config", {}).get("max_length"))
        if not isinstance(record.get("max_length"), int):
            raise BundleError(f"{self.record_file}: no token window (max_length); retrain with `edgeslm train`")
        return record

    def write(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.record_file.write_text(json.dumps(record, indent=2), encoding="utf-8")


def read_run(run: Path) -> dict[str, Any]:
    return RunFolder(run).read()
