"""The router's policy: which answering tiers to try in which order, the confidence each needs to stop
the descent, and the confidence an answer needs to be remembered by the cache. Calibrated on
validation data (evaluate/calibrate.py) and stored as one versioned, validated, content-hashed JSON
file beside the bundles, so a fleet can roll it out like a model and a device can tell a changed
or truncated file from the one that was measured."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats import strict_json

ANSWERING = ("encoder", "templates", "generative", "remote")  # the tiers a policy orders
MAX_POLICY_BYTES = 1 << 20
POLICY_FILE = "assist-policy.json"


class PolicyError(ConfigError):
    """A policy file that cannot be used, and why."""


@dataclass(frozen=True)
class Policy(Config):
    # the answering tiers, tried in this order after the habits and the cache
    order: list = field(default_factory=lambda: ["templates", "encoder"])
    # per tier, the confidence that stops the descent; a tier missing here always stops it
    thresholds: dict = field(default_factory=lambda: {"templates": 1.0, "encoder": 0.0})
    cache_from: float = 0.98  # the confidence an answer needs to be remembered by the cache
    semantic_from: float = 1.01  # the cosine similarity a semantic-cache hit needs (above 1: off)
    # the word similarity (rapidfuzz token set ratio / 100) a semantic-cache entry with the same guard
    # needs to be served before any model runs (above 1: off)
    lexical_from: float = 1.01
    # the confidence the encoder bundle's n-gram head needs to answer before the encoder runs (above 1: off)
    ngrams_from: float = 1.01
    # per tier, the intents after whose unsure answer by an earlier tier this one is not tried: on the
    # validation commands it never made such an answer right (calibrate.py: `second_look`)
    skip_after: dict = field(default_factory=dict)
    target_accuracy: float | None = None  # what the calibration aimed for
    calibration: dict = field(default_factory=dict)  # where the numbers came from, and what they measured

    def validate(self) -> None:
        if not self.order:
            raise PolicyError("Policy.order: name at least one answering tier")
        for name in self.order:
            if name not in ANSWERING:
                raise PolicyError(f"Policy.order: unknown tier {name!r}; choose from {', '.join(ANSWERING)}")
        if len(set(self.order)) != len(self.order):
            raise PolicyError("Policy.order: a tier is named twice")
        for name, value in self.thresholds.items():
            if name not in ANSWERING:
                raise PolicyError(f"Policy.thresholds: unknown tier {name!r}")
            _unit(f"Policy.thresholds.{name}", value)
        _unit("Policy.cache_from", self.cache_from)
        if not isinstance(self.semantic_from, int | float) or not 0.0 <= self.semantic_from <= 1.01:
            raise PolicyError(f"Policy.semantic_from: a cosine similarity in [0, 1] (or 1.01 for off), "
                              f"not {self.semantic_from!r}")
        if not isinstance(self.lexical_from, int | float) or not 0.0 <= self.lexical_from <= 1.01:
            raise PolicyError(f"Policy.lexical_from: a word similarity in [0, 1] (or 1.01 for off), "
                              f"not {self.lexical_from!r}")
        if isinstance(self.ngrams_from, bool) or not isinstance(self.ngrams_from, int | float) \
                or not 0.0 <= self.ngrams_from <= 1.01:
            raise PolicyError(f"Policy.ngrams_from: a confidence in [0, 1] (or 1.01 for off), not {self.ngrams_from!r}")
        if not isinstance(self.skip_after, dict):
            raise PolicyError("Policy.skip_after: an object of tier -> [intent, ...]")
        for name, intents in self.skip_after.items():
            if name not in ANSWERING:
                raise PolicyError(f"Policy.skip_after: unknown tier {name!r}")
            if not isinstance(intents, list) or not all(isinstance(i, str) and i for i in intents):
                raise PolicyError(f"Policy.skip_after.{name}: a list of intent names")
        if self.target_accuracy is not None:
            _unit("Policy.target_accuracy", self.target_accuracy)

    def restrict(self, tiers: list[str]) -> Policy:
        """This policy for an assistant built with only `tiers` (e.g. `--tiers encoder` on replay)."""
        order = [t for t in self.order if t in tiers] + [t for t in tiers if t in ANSWERING and t not in self.order]
        return Policy.from_dict({**self.to_dict(), "order": order})

    def digest(self) -> str:
        return hashlib.sha256(_canonical(self.to_dict())).hexdigest()


def _unit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise PolicyError(f"{name}: a number in [0, 1], not {value!r}")


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def write_policy(policy: Policy, path: Path) -> str:
    """Write atomically (a reader never sees half a file); returns the content hash it carries."""
    body = {**policy.to_dict(), "sha256": policy.digest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return body["sha256"]


def load_policy(path: Path) -> Policy:
    path = Path(path)
    try:
        raw = path.read_bytes()[:MAX_POLICY_BYTES + 1]
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc.strerror or exc}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: over {MAX_POLICY_BYTES} bytes; not a policy file")
    try:
        data = strict_json.loads(raw)  # NaN, Infinity or a repeated key: not the file that was hashed
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"{path}: not a JSON policy ({exc}); write it again with `edgeslm calibrate`") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a JSON object")
    claimed = data.pop("sha256", None)
    if not isinstance(claimed, str):
        raise PolicyError(f"{path}: no sha256 field; a policy carries the hash of its content")
    try:
        policy = Policy.from_dict(data)
    except ConfigError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    # the hash of the content as written: a policy from before a field was added (lexical_from, ngrams_from) keeps
    # its hash, its missing field reading as the default (off)
    if hashlib.sha256(_canonical(data)).hexdigest() != claimed:
        raise PolicyError(f"{path}: the content does not match its sha256 (edited or damaged since it was written)")
    return policy

