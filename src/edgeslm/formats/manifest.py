"""The bundle manifest, its schema written as code. Strict: unknown fields, missing fields, wrong
types and newer format versions are refused, so a device never guesses what a bundle means.

format_version history:
  1 — first release: encoder (ONNX) and decoder (GGUF) bundles, sha256 per file.
  2 — an encoder may run on `onnxruntime-early-exit`: the encoder cut into segments with an exit head
      after each but the last; model_file is the exit plan (formats/early_exit.py). A writer stamps the
      lowest version a bundle needs (required_version), so bundles without it stay version 1 and a
      device with an older edgeslm keeps reading them.
  3 — `selection`: a bundle chosen by `edgeslm select` for a device budget carries what was predicted
      for it before compressing and what was measured after, on the target profile (SELECTION_FIELDS).
      Only bundles that carry it are stamped 3.
  4 — time series: task `series-classification` on engine `onnxruntime-series` (SERIES_ENGINE). The graph
      takes float32 [batch, length, channels]; its static length and channels are the contract, read from
      the graph itself, so the manifest needs no tokenizer. Only such bundles are stamped 4.
  5 — a decoder's `selection`: its metrics tok_s, ttft_ms, ppl and ppl_ratio (SELECTION_METRIC_SINCE).
      Only bundles whose selection carries one are stamped 5.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgeslm.errors import BundleError

FORMAT = "edgeslm-bundle"
FORMAT_VERSION = 5
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20
EARLY_EXIT_ENGINE = "onnxruntime-early-exit"
SERIES_ENGINE, SERIES_TASK = "onnxruntime-series", "series-classification"
FAMILIES = {"encoder": ("onnxruntime", EARLY_EXIT_ENGINE, SERIES_ENGINE), "decoder": ("llama.cpp",)}  # family -> its engines
ENGINE_SINCE = {EARLY_EXIT_ENGINE: 2, SERIES_ENGINE: 4}  # engine -> the format version that introduced it
TASKS = {"encoder": ("text-classification", SERIES_TASK), "decoder": ("text-generation",)}
TOKENIZER_FIELDS = {"file", "max_length", "inputs"}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the feeds the ONNX engine knows how to make
FIELD_SINCE = {"selection": 3}  # optional top-level field -> the format version that introduced it
# selection: what `edgeslm select` recorded; predicted and measured hold the same metrics
SELECTION_FIELDS = {"budget", "profile", "candidate", "threads", "predicted", "measured", "search"}
SELECTION_REQUIRED = {"budget", "profile", "candidate", "threads", "predicted", "measured"}
SELECTION_METRICS = {"p50_ms", "p90_ms", "ram_mb", "size_mb", "joules", "accuracy", "tok_s", "ttft_ms", "ppl", "ppl_ratio"}
SELECTION_METRIC_SINCE = {"tok_s": 5, "ttft_ms": 5, "ppl": 5, "ppl_ratio": 5}  # a decoder's; older readers refuse them


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    format: str
    format_version: int
    name: str
    family: str  # encoder | decoder
    architecture: str  # bert, llama, ...
    task: str
    engine: str  # onnxruntime | llama.cpp
    model_file: str
    files: dict[str, FileEntry]
    labels: list[str] = field(default_factory=list)
    tokenizer: dict[str, Any] = field(default_factory=dict)  # file, max_length, inputs
    provenance: dict[str, Any] = field(default_factory=dict)  # base model, data, configs, export check
    evaluation: dict[str, Any] = field(default_factory=dict)  # split name -> metrics
    profile: str = "any"  # device profile the variant was chosen for
    created: str = ""
    edgeslm_version: str = ""
    selection: dict[str, Any] = field(default_factory=dict)  # since 3: edgeslm select's prediction and measurement

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = {k: asdict(v) for k, v in sorted(self.files.items())}
        for name in FIELD_SINCE:  # absent, not empty: a device reading an older version knows no such field
            if not out[name]:
                del out[name]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> Manifest:
        if not isinstance(data, dict):
            raise BundleError(f"{where}: the manifest must be a JSON object")
        if data.get("format") != FORMAT:
            raise BundleError(f"{where}: not an edgeslm bundle manifest (format is {data.get('format')!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"{where}: format_version must be an integer")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"{where}: bundle format version {version} is newer than this edgeslm reads ({FORMAT_VERSION}); "
                "upgrade edgeslm on this device"
            )
        if version < 1:
            raise BundleError(f"{where}: invalid format_version {version}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BundleError(f"{where}: unknown field(s) {', '.join(unknown)} (format version {version} has none such)")
        required = {"format", "format_version", "name", "family", "architecture", "task", "engine", "model_file", "files"}
        missing = sorted(required - set(data))
        if missing:
            raise BundleError(f"{where}: missing field(s) {', '.join(missing)}")
        _expect(where, data, str, "name", "family", "architecture", "task", "engine", "model_file", "profile",
                "created", "edgeslm_version")
        _expect(where, data, dict, "files", "tokenizer", "provenance", "evaluation", "selection")
        for name, since in FIELD_SINCE.items():
            if name in data and version < since:
                raise BundleError(f"{where}: {name} needs bundle format version {since}, this manifest says {version}")
        _expect(where, data, list, "labels")
        files = {}
        for name, entry in data["files"].items():
            if not isinstance(entry, dict) or set(entry) != {"sha256", "bytes"}:
                raise BundleError(f"{where}: files[{name!r}] must have exactly sha256 and bytes")
            sha, size = entry["sha256"], entry["bytes"]
            if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
                raise BundleError(f"{where}: files[{name!r}].sha256 is not a sha256 hex digest")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BundleError(f"{where}: files[{name!r}].bytes must be a non-negative integer")
            _check_relative(where, name)
            files[name] = FileEntry(sha, size)
        manifest = cls(**{**data, "files": files})
        manifest.check(where)
        return manifest

    def check(self, where: str = MANIFEST) -> None:
        if self.family not in FAMILIES:
            raise BundleError(f"{where}: family must be one of {sorted(FAMILIES)}, got {self.family!r}")
        if self.engine not in FAMILIES[self.family]:
            raise BundleError(f"{where}: a {self.family} bundle runs on {' or '.join(FAMILIES[self.family])}, "
                              f"not {self.engine!r}")
        if self.format_version < required_version(self.engine):
            raise BundleError(f"{where}: engine {self.engine} needs bundle format version {required_version(self.engine)}, "
                              f"this manifest says {self.format_version}")
        if self.task not in TASKS[self.family]:
            raise BundleError(f"{where}: task {self.task!r} is not served for a {self.family}")
        if self.model_file not in self.files:
            raise BundleError(f"{where}: model_file {self.model_file!r} is not listed in files")
        if not all(isinstance(x, str) and x for x in self.labels):
            raise BundleError(f"{where}: labels must be non-empty strings")
        if len(set(self.labels)) != len(self.labels):
            raise BundleError(f"{where}: labels repeat")
        unknown = sorted(set(self.tokenizer) - TOKENIZER_FIELDS)
        if unknown:
            raise BundleError(f"{where}: unknown tokenizer field(s) {', '.join(unknown)}")
        if (self.task == SERIES_TASK) != (self.engine == SERIES_ENGINE):
            raise BundleError(f"{where}: task {SERIES_TASK} runs on engine {SERIES_ENGINE} and nothing else does; "
                              f"got task {self.task!r} on {self.engine!r}")
        if self.task == SERIES_TASK:
            if len(self.labels) < 2:
                raise BundleError(f"{where}: a classifier needs at least two non-empty string labels")
            if self.tokenizer:
                raise BundleError(f"{where}: a {SERIES_TASK} bundle has no tokenizer")
        if self.task == "text-classification":
            if len(self.labels) < 2:
                raise BundleError(f"{where}: a classifier needs at least two non-empty string labels")
            for name in ("file", "max_length"):
                if name not in self.tokenizer:
                    raise BundleError(f"{where}: a classifier needs tokenizer.{name}")
        # Each present field is checked whatever the family: a device never guesses what a value means.
        tok = self.tokenizer.get("file", "")
        if not isinstance(tok, str) or ("file" in self.tokenizer and tok not in self.files):
            raise BundleError(f"{where}: tokenizer.file {tok!r} is not listed in files")
        max_len = self.tokenizer.get("max_length", 8)
        if not isinstance(max_len, int) or isinstance(max_len, bool) or not 8 <= max_len <= 8192:
            raise BundleError(f"{where}: tokenizer.max_length must be an integer in [8, 8192]")
        inputs = self.tokenizer.get("inputs", ["input_ids"])
        if (not isinstance(inputs, list) or not all(isinstance(x, str) and x in MODEL_INPUTS for x in inputs)
                or len(set(inputs)) != len(inputs) or "input_ids" not in inputs):
            raise BundleError(f"{where}: tokenizer.inputs must be distinct names from {list(MODEL_INPUTS)} "
                              f"including input_ids, got {inputs!r}")
        if self.selection:
            _check_selection(where, self.selection)
            need = required_version(self.engine, {"selection": self.selection})
            if self.format_version < need:
                raise BundleError(f"{where}: a decoder's selection metrics need bundle format version {need}, "
                                  f"this manifest says {self.format_version}")


def required_version(engine: str, fields: dict[str, Any] | None = None) -> int:
    """The lowest format version that can describe a bundle for this engine with these fields."""
    present = [since for name, since in FIELD_SINCE.items() if (fields or {}).get(name)]
    selection = (fields or {}).get("selection") or {}
    metrics = [since for block in ("predicted", "measured") if isinstance(selection.get(block), dict)
               for name, since in SELECTION_METRIC_SINCE.items() if name in selection[block]]
    return max([ENGINE_SINCE.get(engine, 1), *present, *metrics])


def _check_selection(where: str, sel: dict[str, Any]) -> None:
    unknown = sorted(set(sel) - SELECTION_FIELDS)
    if unknown:
        raise BundleError(f"{where}: unknown selection field(s) {', '.join(unknown)}")
    missing = sorted(SELECTION_REQUIRED - set(sel))
    if missing:
        raise BundleError(f"{where}: selection is missing {', '.join(missing)}")
    for name in ("budget", "profile", "candidate"):
        if not isinstance(sel[name], str) or not sel[name]:
            raise BundleError(f"{where}: selection.{name} must be a non-empty string")
    if not isinstance(sel["threads"], int) or isinstance(sel["threads"], bool) or sel["threads"] < 1:
        raise BundleError(f"{where}: selection.threads must be an integer >= 1")
    for name in ("predicted", "measured"):
        block = sel[name]
        if not isinstance(block, dict) or not block:
            raise BundleError(f"{where}: selection.{name} must be a non-empty object of metrics")
        for key, value in block.items():
            if key not in SELECTION_METRICS:
                raise BundleError(f"{where}: selection.{name}.{key} is not a metric ({', '.join(sorted(SELECTION_METRICS))})")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise BundleError(f"{where}: selection.{name}.{key} must be a number >= 0 or null")
    if "search" in sel and not isinstance(sel["search"], dict):
        raise BundleError(f"{where}: selection.search must be an object")


def _expect(where: str, data: dict, kind: type, *names: str) -> None:
    for name in names:
        if name in data and not isinstance(data[name], kind):
            raise BundleError(f"{where}: {name} must be a {kind.__name__}")


def _check_relative(where: str, name: str) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)
            or not name.isprintable()):  # NUL and other control characters are no file name a writer makes
        raise BundleError(f"{where}: file name {name!r} must be a plain relative path inside the bundle")
    if name == MANIFEST:
        raise BundleError(f"{where}: files lists {MANIFEST}, which cannot carry its own sha256")
