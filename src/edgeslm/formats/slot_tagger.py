"""The slot tagger of an early-exit encoder bundle (`slot-tagger.json`), its schema written as code: a
linear BIO tagger over the first segment's token states (`hidden_out`), each word piece's features being
its own state and its neighbours' within `window`, concatenated. Strict like the manifest: unknown
fields, wrong types, wrong shapes and newer versions are refused. The manifest lists the file (its size
and sha256 checked by open_bundle); a bundle without it simply has no tagger.

    {"version": 1, "layers": 2, "hidden_size": 384, "window": 1,
     "tags": ["O", "B-name", "I-name", "B-area", "I-area", "B-floor", "I-floor"],
     "weight": [[...7 floats...] x (2 * window + 1) * hidden_size], "bias": [...7 floats...]}

Row block k of `weight` (k = 0 .. 2 * window) multiplies the state of the word piece at offset k - window.

version history:
  1 — first release.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeslm.errors import BundleError
from edgeslm.formats.heads import check_envelope, decode, is_int, listed_bytes

TAGGER_FILE = "slot-tagger.json"
TAGGER_VERSION = 1
MAX_TAGGER_BYTES = 16 << 20
FIELDS = {"version", "layers", "hidden_size", "window", "tags", "weight", "bias"}
KINDS = ("name", "area", "floor")  # the slot kinds a tag may name


@dataclass(frozen=True)
class TaggerHead:
    layers: int  # the encoder layers whose output it reads: the first segment's
    hidden_size: int
    window: int
    tags: tuple[str, ...]
    weight: np.ndarray  # [(2 * window + 1) * hidden_size, len(tags)] float32
    bias: np.ndarray  # [len(tags)] float32
    version: int = TAGGER_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "layers": self.layers, "hidden_size": self.hidden_size, "window": self.window,
                "tags": list(self.tags), "weight": [[float(x) for x in row] for row in self.weight],
                "bias": [float(x) for x in self.bias]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = TAGGER_FILE) -> TaggerHead:
        version = check_envelope(data, FIELDS, TAGGER_VERSION, "slot tagger", where)
        layers, hidden, window = data["layers"], data["hidden_size"], data["window"]
        if not is_int(layers) or not 1 <= layers <= 1024:
            raise BundleError(f"{where}: layers must be an integer in [1, 1024]")
        if not is_int(hidden) or not 1 <= hidden <= 65536:
            raise BundleError(f"{where}: hidden_size must be an integer in [1, 65536]")
        if not is_int(window) or not 0 <= window <= 4:
            raise BundleError(f"{where}: window must be an integer in [0, 4]")
        tags = data["tags"]
        if not isinstance(tags, list) or not tags or tags[0] != "O" or not all(isinstance(t, str) for t in tags):
            raise BundleError(f"{where}: tags must be a list of strings starting with 'O'")
        if len(set(tags)) != len(tags):
            raise BundleError(f"{where}: tags repeat")
        for tag in tags[1:]:
            prefix, _, kind = tag.partition("-")
            if prefix not in ("B", "I") or kind not in KINDS:
                raise BundleError(f"{where}: tag {tag!r} is not B-<kind> or I-<kind> with a kind of {', '.join(KINDS)}")
        rows = (2 * window + 1) * hidden
        weight = _matrix(data["weight"], (rows, len(tags)), f"{where}: weight")
        bias = _matrix(data["bias"], (len(tags),), f"{where}: bias")
        return cls(layers, hidden, window, tuple(tags), weight, bias, version)

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = TAGGER_FILE) -> TaggerHead:
        return cls.from_dict(decode(raw, MAX_TAGGER_BYTES, "a slot tagger", where), where)


def read_tagger(bundle: Any) -> TaggerHead | None:
    """The slot tagger of an opened bundle (formats.reader.Bundle), or None when the manifest lists none;
    listed, it is a file whose size and sha256 open_bundle has checked."""
    found = listed_bytes(bundle, TAGGER_FILE, "slot tagger")
    return None if found is None else TaggerHead.from_bytes(found[0], str(found[1]))


def _matrix(raw: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list of finite numbers of exactly `shape`, as float32; checked before numpy sees it, so a
    ragged or mistyped list is refused with its place named."""
    def check(x: Any, dims: tuple[int, ...], at: str) -> None:
        if not dims:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise BundleError(f"{at} must be a finite number, got {x!r:.40}")
            return
        if not isinstance(x, list) or len(x) != dims[0]:
            got = f"{len(x)} items" if isinstance(x, list) else type(x).__name__
            raise BundleError(f"{at} must be a list of {dims[0]} (shape {list(shape)}), got {got}")
        for i, item in enumerate(x):
            check(item, dims[1:], f"{at}[{i}]")

    check(raw, shape, where)
    return np.asarray(raw, dtype=np.float32).reshape(shape)
