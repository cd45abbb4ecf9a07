"""A dataset as train/val/test splits plus its label set and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.data.records import Example, write_jsonl


@dataclass
class DatasetSplits:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> dict[str, Path]:
        return {name: write_jsonl(Path(folder) / f"{name}.jsonl", getattr(self, name)) for name in ("train", "val", "test")}

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
