"""The content-hashed store: keys by content, atomic records, incomplete artefacts are misses."""

from edgeslm.select.cache import Store, content_key


def test_keys_depend_on_content_not_order():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key("measure", "k", 1) != content_key("measure", "k", 2)  # thread count is part of a measurement


def test_json_round_trip_and_torn_files_are_misses(tmp_path):
    store = Store(tmp_path)
    assert store.get("measured", "k") is None
    store.put("measured", "k", {"p90_ms": 1.5})
    assert store.get("measured", "k") == {"p90_ms": 1.5}
    (tmp_path / "measured" / "k.json").write_text("{torn")
    assert store.get("measured", "k") is None


def test_an_artefact_without_its_model_file_is_not_reused(tmp_path):
    store = Store(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    store.put_artefact("a" * 64, {"status": "ok", "val": {"accuracy": 0.9}}, model)
    assert store.artefact("a" * 64)["file"] == "model.onnx"
    (store.artefact_dir("a" * 64) / "model.onnx").unlink()
    assert store.artefact("a" * 64) is None
    store.put_artefact("b" * 64, {"status": "refused", "reason": "floor"}, None)
    assert store.artefact("b" * 64)["status"] == "refused"
