"""Every way a bundle can be damaged, on the tiny synthetic bundle (tests/tiny_bundle.py); one test
checks what a real export (MiniLM-L6, short training) records."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from edgeslm.errors import BundleError
from edgeslm.formats.manifest import FORMAT_VERSION
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.writer import BundleWriter
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
    from edgeslm.formats.hashing import sha256_file

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
    rewrite_manifest(tiny_bundle_copy, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match=f"format version {FORMAT_VERSION + 1} is newer"):
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


# A bundle holds regular files only: a link could point anywhere (another bundle, /etc) after it was signed.
def test_a_symlinked_file_is_refused_even_with_the_right_bytes(tiny_bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.json"
    shutil.move(tiny_bundle_copy / "tokenizer.json", outside)
    (tiny_bundle_copy / "tokenizer.json").symlink_to(outside)
    with pytest.raises(BundleError, match="tokenizer.json is a symbolic link"):
        open_bundle(tiny_bundle_copy)


def test_a_symlink_inside_the_bundle_is_refused(tiny_bundle_copy):
    (tiny_bundle_copy / "model.onnx").rename(tiny_bundle_copy / "model.real")
    (tiny_bundle_copy / "model.onnx").symlink_to("model.real")
    with pytest.raises(BundleError, match="model.onnx is a symbolic link"):
        open_bundle(tiny_bundle_copy)


def test_a_symlinked_manifest_is_refused(tiny_bundle_copy, tmp_path):
    shutil.move(tiny_bundle_copy / "manifest.json", tmp_path / "m.json")
    (tiny_bundle_copy / "manifest.json").symlink_to(tmp_path / "m.json")
    with pytest.raises(BundleError, match="manifest.json is a symbolic link"):
        open_bundle(tiny_bundle_copy, verify=False)


def test_a_symlinked_folder_with_an_unlisted_file_is_refused(tiny_bundle_copy, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil.py").write_text("print('hi')")
    (tiny_bundle_copy / "plugins").symlink_to(tmp_path / "outside")
    with pytest.raises(BundleError, match="plugins is a symbolic link"):
        open_bundle(tiny_bundle_copy)


def test_a_listed_file_under_a_symlinked_folder_is_refused(tmp_path):
    with BundleWriter(tmp_path / "b") as w:
        w.path("m.gguf").write_bytes(b"GGUF")
        w.path("extra/notes.txt").write_text("hello")
        w.finish(name="d", family="decoder", architecture="llama", task="text-generation", engine="llama.cpp",
                 model_file="m.gguf")
    open_bundle(tmp_path / "b")
    shutil.move(tmp_path / "b" / "extra", tmp_path / "extra")
    (tmp_path / "b" / "extra").symlink_to(tmp_path / "extra")
    with pytest.raises(BundleError, match="extra is a symbolic link"):
        open_bundle(tmp_path / "b")


def test_a_fifo_is_refused(tiny_bundle_copy):
    os.mkfifo(tiny_bundle_copy / "pipe")
    with pytest.raises(BundleError, match="pipe is not a regular file"):
        open_bundle(tiny_bundle_copy)


def test_the_bundle_folder_itself_may_be_a_link(tiny_bundle, tmp_path):
    # A device keeps `current -> v2`; only what is inside the bundle must be real files.
    (tmp_path / "current").symlink_to(tiny_bundle)
    assert open_bundle(tmp_path / "current").manifest.name == "tiny-encoder"


def test_a_failed_swap_puts_the_previous_bundle_back(tiny_bundle, tmp_path, monkeypatch):
    target = tmp_path / "b"
    shutil.copytree(tiny_bundle, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    fields = {k: v for k, v in open_bundle(tiny_bundle).manifest.to_dict().items()
              if k not in ("format", "format_version", "files", "created", "edgeslm_version")}
    rename = os.rename

    with pytest.raises(BundleError, match="Input/output error"), BundleWriter(target) as w:
        for name in ("model.onnx", "tokenizer.json"):
            w.add(tiny_bundle / name, name)

        def failing_final_rename(src, dst):  # the disk fails on the move of the new bundle into place
            if Path(src) == w.stage:
                raise OSError(errno.EIO, "Input/output error")
            return rename(src, dst)

        monkeypatch.setattr(os, "rename", failing_final_rename)
        w.finish(**{**fields, "name": "replacement"})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder, no .b.old
    assert open_bundle(target).manifest.name == "tiny-encoder"
