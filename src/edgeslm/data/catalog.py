"""Find a dataset by name (built-in real sets) or path (the user's own files) and split it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgeslm.data.ha_intents import stable_fraction
from edgeslm.data.records import read_examples
from edgeslm.data.splits import DatasetSplits
from edgeslm.errors import DataError

BUILTIN = ("ha-intents", "rotten-tomatoes")


def code_fingerprint() -> str:
    """sha256 over this package's source: a run records it, and a demo run made with other data
    code (another split, other samplers) is retrained instead of reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_dataset(name_or_path: str, seed: int = 13) -> DatasetSplits:
    """A built-in name, a folder with train/val/test .jsonl, or one .jsonl/.csv file split 80/10/10.

    A single file is split by its `group` column where given (so related rows stay together),
    else by the text itself.
    """
    if name_or_path == "ha-intents":
        from edgeslm.data.ha_intents import HaIntentsConfig, build

        return build(HaIntentsConfig(seed=seed))
    if name_or_path == "rotten-tomatoes":
        from edgeslm.data.rotten_tomatoes import RottenTomatoesConfig, build

        return build(RottenTomatoesConfig(seed=seed))
    path = Path(name_or_path)
    if path.is_dir():
        splits = {}
        for name in ("train", "val", "test"):
            files = [p for p in (path / f"{name}.jsonl", path / f"{name}.csv") if p.is_file()]
            if not files:
                raise DataError(f"{path}: a dataset folder needs {name}.jsonl (or {name}.csv)")
            splits[name] = read_examples(files[0])
        labels = sorted({ex.label for ex in splits["train"]})
        _check_labels(path, labels, splits)
        return DatasetSplits(**splits, labels=labels, meta={"source": str(path)})
    if path.is_file():
        examples = read_examples(path)
        parts: dict[str, list] = {"train": [], "val": [], "test": []}
        for ex in examples:
            f = stable_fraction(f"{seed}::{ex.group or ex.text}")
            parts["test" if f < 0.1 else "val" if f < 0.2 else "train"].append(ex)
        labels = sorted({ex.label for ex in parts["train"]})
        _check_labels(path, labels, parts)
        return DatasetSplits(**parts, labels=labels, meta={"source": str(path), "split": "80/10/10 by group or text"})
    raise DataError(f"{name_or_path!r} is neither a built-in dataset ({', '.join(BUILTIN)}) nor a file or folder")


def _check_labels(path: Path, labels: list[str], splits: dict) -> None:
    if len(labels) < 2:
        raise DataError(f"{path}: training needs at least two labels, found {labels}")
    for name in ("val", "test"):
        unknown = sorted({ex.label for ex in splits[name]} - set(labels))
        if unknown:
            raise DataError(f"{path}: {name} has labels never seen in train: {', '.join(unknown[:5])}")
    if not splits["val"]:
        raise DataError(f"{path}: too few examples to hold out a validation split")
