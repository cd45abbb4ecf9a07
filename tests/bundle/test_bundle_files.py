"""Every way a bundle can be damaged, on the tiny synthetic bundle (tests/tiny_bundle.py); one test
checks what a real export (MiniLM-L6, short training) records."""

import json
import shutil

import pytest

from edgeslm.bundle.reader import open_bundle
from edgeslm.bundle.writer import BundleWriter
from edgeslm.errors import BundleError
from edgeslm.runtime.engines.onnx import OnnxClassifier


def rewrite_manifest(bundle, **changes):
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return data


@pytest.mark.model
def test_exported_bundle_verifies_and_records_its_checks(session_bundle):
    b = open_bundle(session_bundle)
    m = b.manifest
    assert set(m.files) == {"model.onnx", "tokenizer.json"}
    assert m.provenance["export"]["max_abs_diff"] <= m.provenance["export"]["tolerance"]
    assert m.provenance["export"]["argmax_agreement"] == 1.0
    assert m.evaluation["test"]["n"] > 0 and 0 <= m.evaluation["test"]["accuracy"] <= 1
    assert len(m.labels) >= 35


def test_changed_byte_is_refused(tiny_bundle_copy):
    model = tiny_bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx does not match its sha256"):
        open_bundle(tiny_bundle_copy)


def test_missing_file_is_refused(tiny_bundle_copy):
    (tiny_bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="missing file tokenizer.json"):
        open_bundle(tiny_bundle_copy)


def test_truncated_onnx_is_refused_by_size_then_by_runtime(tiny_bundle_copy):
    model = tiny_bundle_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    with pytest.raises(BundleError, match="truncated or replaced"):
        open_bundle(tiny_bundle_copy)
    # Even with a manifest rewritten to match the truncated file, the runtime refuses it cleanly.
    from edgeslm.bundle.hashing import sha256_file

    data = json.loads((tiny_bundle_copy / "manifest.json").read_text())
    data["files"]["model.onnx"] = {"sha256": sha256_file(model), "bytes": model.stat().st_size}
    (tiny_bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="ONNX Runtime cannot load it"):
        OnnxClassifier.from_bundle(open_bundle(tiny_bundle_copy))


def test_unknown_field_and_newer_version(tiny_bundle_copy):
    original = (tiny_bundle_copy / "manifest.json").read_text()
    rewrite_manifest(tiny_bundle_copy, quantization="int3")
    with pytest.raises(BundleError, match="unknown field.*quantization"):
        open_bundle(tiny_bundle_copy)
    (tiny_bundle_copy / "manifest.json").write_text(original)
    rewrite_manifest(tiny_bundle_copy, format_version=2)
    with pytest.raises(BundleError, match="format version 2 is newer"):
        open_bundle(tiny_bundle_copy)


def test_unlisted_file_and_broken_manifest(tiny_bundle_copy):
    (tiny_bundle_copy / "evil.py").write_text("print('hi')")
    with pytest.raises(BundleError, match="not listed in the manifest: evil.py"):
        open_bundle(tiny_bundle_copy)
    (tiny_bundle_copy / "evil.py").unlink()
    (tiny_bundle_copy / "manifest.json").write_bytes(b"{\xff")
    with pytest.raises(BundleError, match="not UTF-8"):
        open_bundle(tiny_bundle_copy)
    (tiny_bundle_copy / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        open_bundle(tiny_bundle_copy)
    (tiny_bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        open_bundle(tiny_bundle_copy)


def test_writer_failure_keeps_the_previous_bundle(tiny_bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(tiny_bundle, target)
    before = (target / "manifest.json").read_bytes()
    with pytest.raises(BundleError), BundleWriter(target) as w:
        w.add(tiny_bundle / "model.onnx", "model.onnx")
        w.finish(name="x", family="encoder", architecture="bert", task="text-classification",
                 engine="onnxruntime", model_file="model.onnx", labels=["only-one"])
    assert (target / "manifest.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]
    open_bundle(target)


def test_writer_reports_a_full_disk(tmp_path, monkeypatch):
    import shutil as sh

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sh, "copyfile", no_space)
    with pytest.raises(BundleError, match="No space left on device"), BundleWriter(tmp_path / "b") as w:
        w.add(tmp_path, "model.onnx")
    assert not (tmp_path / "b").exists()
