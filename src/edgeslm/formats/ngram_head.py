"""The n-gram head of an encoder bundle (`ngram-head.json`), its schema written as code: a linear
classifier over a command's character and word n-grams (runtime/engines/ngrams.py computes them), the
cheap first look the assistant takes before it runs the encoder. Strict like the manifest: unknown
fields, wrong types, wrong shapes and newer versions are refused. The manifest lists the file (its
size and sha256 checked by open_bundle); a bundle without it has no n-gram head.

    {"version": 1, "labels": [...L intents...], "chars": [2, 4], "words": [1, 2],
     "features": [...F strings...], "idf": [...F floats...], "bias": [...L floats...],
     "weight": "<base64 of F x L little-endian float16, row-major>", "floor": 0.66}

`floor`: the head answers nothing less sure than this. Set where it was fitted: the lowest confidence at which,
on the run's validation split, its answers lost at most 0.5% of what the encoder had right (1.01: never).

A feature is a character n-gram of a word with a space on each side ("c: tu") or a word n-gram
("w:turn on"), the vocabulary being those seen at least twice in training.

version history:
  1 — first release.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeslm.errors import BundleError
from edgeslm.formats.heads import check_envelope, decode, is_int, listed_bytes

NGRAM_FILE = "ngram-head.json"
NGRAM_VERSION = 1
MAX_NGRAM_BYTES = 32 << 20
FIELDS = {"version", "labels", "chars", "words", "features", "idf", "bias", "weight", "floor"}
MAX_FEATURES = 1 << 20


@dataclass(frozen=True)
class NgramHead:
    labels: tuple[str, ...]
    chars: tuple[int, int]  # character n-gram lengths, inclusive
    words: tuple[int, int]  # word n-gram lengths, inclusive
    features: tuple[str, ...]
    idf: np.ndarray  # [F] float32
    weight: np.ndarray  # [F, L] float32 (stored as float16)
    bias: np.ndarray  # [L] float32
    floor: float = 1.01  # the least confidence it answers at (above 1: never)
    version: int = NGRAM_VERSION

    def to_dict(self) -> dict[str, Any]:
        raw = np.ascontiguousarray(self.weight, dtype="<f2").tobytes()
        return {"version": self.version, "labels": list(self.labels), "chars": list(self.chars), "words": list(self.words),
                "features": list(self.features), "idf": [float(x) for x in self.idf],
                "bias": [float(x) for x in self.bias], "weight": base64.b64encode(raw).decode("ascii"),
                "floor": self.floor}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = NGRAM_FILE) -> NgramHead:
        version = check_envelope(data, FIELDS, NGRAM_VERSION, "n-gram head", where)
        labels = data["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise BundleError(f"{where}: labels must be a non-empty list of names")
        if len(set(labels)) != len(labels):
            raise BundleError(f"{where}: labels repeat")
        chars, words = _span(data["chars"], f"{where}: chars", 1, 8), _span(data["words"], f"{where}: words", 1, 4)
        features = data["features"]
        if not isinstance(features, list) or not features or len(features) > MAX_FEATURES:
            raise BundleError(f"{where}: features must be a list of 1 to {MAX_FEATURES} strings")
        if not all(isinstance(f, str) and f[:2] in ("c:", "w:") for f in features):
            raise BundleError(f"{where}: each feature is a string starting with 'c:' or 'w:'")
        if len(set(features)) != len(features):
            raise BundleError(f"{where}: features repeat")
        idf = _vector(data["idf"], len(features), f"{where}: idf")
        bias = _vector(data["bias"], len(labels), f"{where}: bias")
        if not isinstance(data["weight"], str):
            raise BundleError(f"{where}: weight must be a base64 string of float16 values")
        try:
            raw = base64.b64decode(data["weight"], validate=True)
        except (binascii.Error, ValueError):
            raise BundleError(f"{where}: weight is not valid base64") from None
        want = len(features) * len(labels) * 2
        if len(raw) != want:
            raise BundleError(f"{where}: weight holds {len(raw)} bytes; {len(features)} features x {len(labels)} labels "
                              f"of float16 are {want}")
        weight = np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(len(features), len(labels))
        if not np.isfinite(weight).all():
            raise BundleError(f"{where}: weight holds a value that is not finite")
        floor = data["floor"]
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0.0 <= floor <= 1.01:
            raise BundleError(f"{where}: floor must be a confidence in [0, 1] (or 1.01: never answers)")
        return cls(tuple(labels), chars, words, tuple(features), idf, weight, bias, float(floor), version)

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = NGRAM_FILE) -> NgramHead:
        return cls.from_dict(decode(raw, MAX_NGRAM_BYTES, "an n-gram head", where), where)


def read_ngram_head(bundle: Any) -> NgramHead | None:
    """The n-gram head of an opened bundle (formats.reader.Bundle), or None when the manifest lists none;
    its labels must be the bundle's."""
    found = listed_bytes(bundle, NGRAM_FILE, "n-gram head")
    if found is None:
        return None
    raw, path = found
    head = NgramHead.from_bytes(raw, str(path))
    if list(head.labels) != list(bundle.manifest.labels):
        raise BundleError(f"{path}: its labels are not the bundle's ({len(head.labels)} against {len(bundle.manifest.labels)}, "
                          "or in another order)")
    return head


def _span(raw: Any, where: str, low: int, high: int) -> tuple[int, int]:
    if not isinstance(raw, list) or len(raw) != 2 or not all(is_int(x) for x in raw) or not low <= raw[0] <= raw[1] <= high:
        raise BundleError(f"{where} must be [shortest, longest] with {low} <= shortest <= longest <= {high}")
    return raw[0], raw[1]


def _vector(raw: Any, n: int, where: str) -> np.ndarray:
    if not isinstance(raw, list) or len(raw) != n:
        got = f"{len(raw)} items" if isinstance(raw, list) else type(raw).__name__
        raise BundleError(f"{where} must be a list of {n} numbers, got {got}")
    for i, x in enumerate(raw):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise BundleError(f"{where}[{i}] must be a finite number, got {x!r:.40}")
    return np.asarray(raw, dtype=np.float32)
