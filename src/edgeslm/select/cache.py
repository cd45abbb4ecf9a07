"""Select's results, stored by content hash: a key is the sha256 of what the result depends on, so a
result is reused exactly when it still applies. Compressed artefacts depend on the run, the recipe as
resolved for the target (7-bit weights or not) and the compressing code; latency and memory also on
the CPU, the thread count and ONNX Runtime; calibrations on the CPU, the thread count and the run.

    ROOT/artefacts/<key>/   the compressed model file and record.json (guard attempts, accuracy)
    ROOT/measured/<key>.json
    ROOT/calibration/<key>.json
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeslm import __version__

ENV_CACHE = "EDGESLM_CACHE"


def default_root() -> Path:
    base = os.environ.get(ENV_CACHE) or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "edgeslm")
    return Path(base) / "select"


def content_key(*parts: Any) -> str:
    """sha256 of the parts as canonical JSON: equal inputs, equal key, whatever the dict order."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def machine_facts() -> dict[str, Any]:
    """What makes a latency measured here apply elsewhere: the CPU model, its SIMD flags, ONNX Runtime."""
    from edgeslm.runtime.cpu import cpu_flags

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    simd = sorted(f for f in cpu_flags() if f.startswith(("avx", "sse4", "fma", "asimd", "amx")) or "vnni" in f)
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    return {"cpu": model or platform.processor(), "machine": platform.machine(), "simd": simd,
            "cpus": os.cpu_count(), "onnxruntime": ort}


def code_version() -> str:
    """Compressed artefacts go stale when edgeslm (its recipes' code) changes."""
    return __version__


class Store:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _json(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.json"

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._json(kind, key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # a torn or foreign file is a miss, measured again and rewritten

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        path = self._json(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as f:
            json.dump(value, f, indent=1, default=str)
        Path(f.name).replace(path)

    def artefact_dir(self, key: str) -> Path:
        return self.root / "artefacts" / key

    def artefact(self, key: str) -> dict[str, Any] | None:
        """The artefact's record, when it is complete (record.json is written last)."""
        record = self.artefact_dir(key) / "record.json"
        if not record.is_file():
            return None
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("status") == "ok" and not (self.artefact_dir(key) / data["file"]).is_file():
            return None
        return data

    def put_artefact(self, key: str, record: dict[str, Any], model: Path | None) -> Path:
        """Stage the model and the record, then rename the folder into place."""
        final = self.artefact_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=final.parent))
        if model is not None:
            shutil.copyfile(model, stage / model.name)
            record = {**record, "file": model.name}
        (stage / "record.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        stage.rename(final)
        return final
