"""The exit plan of an early-exit encoder bundle (engine `onnxruntime-early-exit`), its schema written as
code: the manifest's model_file, naming the encoder's segments in order, the layer each ends after and
the confidence at which a sample may leave after it. Strict like the manifest: unknown fields, wrong
types and newer versions are refused.

    {"version": 1, "hidden_size": 384,
     "segments": [{"file": "segment-1.onnx", "layers": 2, "threshold": 0.97},
                  {"file": "segment-2.onnx", "layers": 4, "threshold": null},
                  {"file": "segment-3.onnx", "layers": 6}]}

Every segment but the last ends in an exit head: outputs `hidden_out` [batch, seq, hidden_size] (the
next segment's `hidden_in`, taken with `attention_mask`), `pooled` [batch, hidden_size] (the masked mean
of `hidden_out`) and `logits` [batch, labels] (the head on `pooled`). A sample whose softmax maximum reaches the
threshold leaves there; a null threshold means the exit was not worth taking on validation data. The
first segment takes the tokenizer's inputs; the last outputs `logits` only.

version history:
  1 — first release.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from edgeslm.errors import BundleError
from edgeslm.formats.heads import check_envelope, decode
from edgeslm.formats.manifest import EARLY_EXIT_ENGINE

PLAN_FILE = "early-exit.json"
PLAN_VERSION = 1
MAX_PLAN_BYTES = 1 << 16
SEGMENT_FIELDS = {"file", "layers", "threshold"}
PLAN_FIELDS = {"version", "hidden_size", "segments"}
# the segments' tensor names (a graph cannot give a tensor the name of one it takes, hence _in and _out)
HIDDEN_IN, HIDDEN_OUT, POOLED, LOGITS, MASK = "hidden_in", "hidden_out", "pooled", "logits", "attention_mask"


@dataclass(frozen=True)
class Segment:
    file: str
    layers: int  # encoder layers run once this segment is done
    threshold: float | None = None  # exit confidence; None on the last segment, or an exit never taken


@dataclass(frozen=True)
class ExitPlan:
    hidden_size: int
    segments: tuple[Segment, ...]
    version: int = PLAN_VERSION

    @property
    def exits(self) -> tuple[Segment, ...]:
        """The segments that end in an exit head (all but the last)."""
        return self.segments[:-1]

    def to_dict(self) -> dict[str, Any]:
        segments = []
        for i, s in enumerate(self.segments):
            row = asdict(s)
            if i == len(self.segments) - 1:
                del row["threshold"]  # the last segment always answers
            segments.append(row)
        return {"version": self.version, "hidden_size": self.hidden_size, "segments": segments}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = PLAN_FILE) -> ExitPlan:
        # a missing field is named by its own check below
        version = check_envelope(data, PLAN_FIELDS, PLAN_VERSION, "exit plan", where, required=set())
        hidden = data.get("hidden_size")
        if not isinstance(hidden, int) or isinstance(hidden, bool) or not 1 <= hidden <= 65536:
            raise BundleError(f"{where}: hidden_size must be an integer in [1, 65536]")
        raw = data.get("segments")
        if not isinstance(raw, list) or not 2 <= len(raw) <= 64:
            raise BundleError(f"{where}: segments must be a list of 2 to 64 segments (one alone needs no exits)")
        segments = []
        for i, row in enumerate(raw):
            at = f"{where}: segments[{i}]"
            last = i == len(raw) - 1
            if not isinstance(row, dict):
                raise BundleError(f"{at} must be an object")
            allowed = SEGMENT_FIELDS - ({"threshold"} if last else set())
            unknown = sorted(set(row) - allowed)
            if unknown:
                raise BundleError(f"{at}: unknown field(s) {', '.join(unknown)}"
                                  + (" (the last segment always answers: it has no threshold)" if last else ""))
            missing = sorted(({"file", "layers"} | (set() if last else {"threshold"})) - set(row))
            if missing:
                raise BundleError(f"{at}: missing field(s) {', '.join(missing)}")
            if not isinstance(row["file"], str) or not row["file"]:
                raise BundleError(f"{at}: file must be a non-empty string")
            layers = row["layers"]
            if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
                raise BundleError(f"{at}: layers must be a positive integer")
            if segments and layers <= segments[-1].layers:
                raise BundleError(f"{at}: layers {layers} must be more than the segment before's {segments[-1].layers}")
            threshold = row.get("threshold")
            if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                          or not 0.0 < threshold <= 1.0):
                raise BundleError(f"{at}: threshold must be a softmax probability in (0, 1] or null, got {threshold!r}")
            segments.append(Segment(row["file"], layers, None if threshold is None else float(threshold)))
        files = [s.file for s in segments]
        if len(set(files)) != len(files):
            raise BundleError(f"{where}: segments repeat a file")
        return cls(hidden, tuple(segments), version)

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = PLAN_FILE) -> ExitPlan:
        return cls.from_dict(decode(raw, MAX_PLAN_BYTES, "an exit plan", where), where)


def read_exit_plan(bundle: Any) -> ExitPlan:
    """The plan of an opened bundle (formats.reader.Bundle), each segment a file the manifest lists,
    and so one whose size and sha256 open_bundle has checked."""
    m = bundle.manifest
    if m.engine != EARLY_EXIT_ENGINE:
        raise BundleError(f"{bundle.path}: a bundle for {m.engine}, not {EARLY_EXIT_ENGINE}")
    where = str(bundle.model_path)
    try:
        raw = bundle.model_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{where}: cannot read the exit plan: {exc.strerror}") from None
    plan = ExitPlan.from_bytes(raw, where)
    for s in plan.segments:
        if s.file not in m.files or s.file == m.model_file:
            raise BundleError(f"{where}: segment file {s.file!r} is not one of the model files the manifest lists")
    return plan
