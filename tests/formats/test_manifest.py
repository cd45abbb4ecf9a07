"""The manifest schema alone (no model needed), and what read_manifest makes of hostile bytes."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import BundleError
from edgeslm.formats.manifest import FORMAT_VERSION, Manifest
from edgeslm.formats.reader import read_manifest

SHA = "0" * 64
GOOD = {
    "format": "edgeslm-bundle", "format_version": FORMAT_VERSION, "name": "x", "family": "encoder",
    "architecture": "bert", "task": "text-classification", "engine": "onnxruntime", "model_file": "model.onnx",
    "files": {"model.onnx": {"sha256": SHA, "bytes": 1}, "tokenizer.json": {"sha256": SHA, "bytes": 1}},
    "labels": ["a", "b"], "tokenizer": {"file": "tokenizer.json", "max_length": 48, "inputs": ["input_ids"]},
}


def with_(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def test_round_trip():
    m = Manifest.from_dict(GOOD)
    assert Manifest.from_dict(m.to_dict()) == m


@pytest.mark.parametrize("data, message", [
    (with_(format_version=FORMAT_VERSION + 1), "newer than this edgeslm reads"),
    (with_(format_version="1"), "must be an integer"),
    (with_(format="something-else"), "not an edgeslm bundle"),
    (with_(signature="abc"), "unknown field.*signature"),
    (with_(family="vision"), "family must be"),
    (with_(engine="llama.cpp"), "runs on onnxruntime"),
    (with_(model_file="other.onnx"), "not listed in files"),
    (with_(labels=["a"]), "at least two"),
    (with_(labels=["a", "a"]), "repeat"),
    (with_(files={"../../etc/passwd": {"sha256": SHA, "bytes": 1}}), "plain relative path"),
    (with_(files={"model.onnx": {"sha256": "abc", "bytes": 1}}), "sha256 hex"),
    (with_(files={"model.onnx": {"sha256": SHA, "bytes": -1}}), "non-negative"),
    (with_(files={"model.onnx": {"sha256": SHA, "bytes": 1, "extra": 1}}), "exactly sha256 and bytes"),
    (with_(tokenizer={"file": "tokenizer.json", "max_length": 4}), "max_length"),
    (with_(name=3), "name must be a str"),
    ({k: v for k, v in GOOD.items() if k != "files"}, "missing field.*files"),
    ([1, 2], "JSON object"),
])
def test_refused_with_a_clear_message(data, message):
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(data)


def test_a_decoder_needs_no_labels_or_tokenizer():
    data = with_(family="decoder", engine="llama.cpp", task="text-generation", model_file="m.gguf",
                 files={"m.gguf": {"sha256": SHA, "bytes": 1}}, labels=[], tokenizer={})
    assert Manifest.from_dict(data).model_file == "m.gguf"


# Every field with a JSON value of the wrong type: a BundleError naming the field, never a TypeError,
# KeyError or AttributeError from deep inside the check.
WRONG_TYPES = [[], {}, ["tokenizer.json"], {"a": 1}, 3, 2.5, True, None]


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_tokenizer_file_of_a_wrong_type(value):
    with pytest.raises(BundleError, match="tokenizer.file"):
        Manifest.from_dict(with_(tokenizer={"file": value, "max_length": 48}))


@pytest.mark.parametrize("value", [*WRONG_TYPES, "48", 48.0, [48]], ids=repr)
def test_tokenizer_max_length_of_a_wrong_type(value):
    with pytest.raises(BundleError, match="tokenizer.max_length"):
        Manifest.from_dict(with_(tokenizer={"file": "tokenizer.json", "max_length": value}))


@pytest.mark.parametrize("value", ["input_ids", {"input_ids": 1}, [1, 2], [["input_ids"]], [], ["attention_mask"],
                                   ["input_ids", "input_ids"], ["input_ids", "pixel_values"], None], ids=repr)
def test_tokenizer_inputs_of_a_wrong_type_or_value(value):
    with pytest.raises(BundleError, match="tokenizer.inputs"):
        Manifest.from_dict(with_(tokenizer={"file": "tokenizer.json", "max_length": 48, "inputs": value}))


KINDS = {**dict.fromkeys(["name", "family", "architecture", "task", "engine", "model_file", "profile", "created",
                          "edgeslm_version"], str),
         **dict.fromkeys(["files", "tokenizer", "provenance", "evaluation"], dict), "labels": list}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f in sorted(KINDS) for v in WRONG_TYPES
                                               if not isinstance(v, KINDS[f])], ids=repr)
def test_every_field_of_a_wrong_type(field, value):
    with pytest.raises(BundleError, match=field):
        Manifest.from_dict(with_(**{field: value}))


@pytest.mark.parametrize("labels", [["a", 1], ["a", []], ["a", {}], ["a", None], [["a"], ["a"]], ["a", ""]], ids=repr)
def test_labels_that_are_not_strings(labels):
    with pytest.raises(BundleError, match="labels"):
        Manifest.from_dict(with_(labels=labels))


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/./b", "a\\b", "nul\x00byte", "manifest.json"], ids=repr)
def test_file_names_that_are_not_plain(name):
    with pytest.raises(BundleError, match="files|file name"):
        Manifest.from_dict(with_(files={**GOOD["files"], name: {"sha256": SHA, "bytes": 1}}))


@pytest.mark.parametrize("text, message", [
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # deeper than the json module recurses
    (b'{"format_version": ' + b"1" * 5000 + b"}", "not valid JSON"),  # an int over Python's 4300 digits
    (b'{"name": "\\udce9"}', "not valid Unicode"),  # a lone surrogate escape
    (b"\xef\xbb\xbf{}", "BOM"),
    (json.dumps({**GOOD, "provenance": {"x": json.loads("[" * 500 + "]" * 500)}}).encode(), "nested deeper"),
])
def test_hostile_manifest_json_is_a_bundle_error(tmp_path, text, message):
    (tmp_path / "manifest.json").write_bytes(text)
    with pytest.raises(BundleError, match=message):
        read_manifest(tmp_path)


# Property: a manifest either parses into exactly what it says, or is refused with a BundleError.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
DECODER = {**copy.deepcopy(GOOD), "family": "decoder", "engine": "llama.cpp", "task": "text-generation",
           "model_file": "m.gguf", "files": {"m.gguf": {"sha256": SHA, "bytes": 7}}, "labels": [], "tokenizer": {}}
NESTED = ("files", "tokenizer", "provenance", "evaluation")  # dict fields whose entries get mutated too
# The fields with structure inside come up more often: that is where the type confusions hide.
FIELDS = sorted({*GOOD, "profile", "created", "edgeslm_version", "provenance", "evaluation", "unknown_field"}) + [
    "tokenizer", "tokenizer", "tokenizer", "files", "files", "labels"]


@st.composite
def manifests(draw):
    """A valid manifest with a few fields (or entries of its dict fields) replaced, deleted or added."""
    data = copy.deepcopy(draw(st.sampled_from([GOOD, DECODER])))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS))
        target, key = data, field
        if field in NESTED and isinstance(data.get(field), dict) and draw(st.integers(0, 3)):
            target = data[field]
            keys = sorted(target) + ["file", "max_length", "inputs", "x.bin", "model.onnx"]
            key = draw(st.sampled_from(keys))
            if isinstance(target.get(key), dict) and draw(st.booleans()):  # a files entry's sha256/bytes
                target, key = target[key], draw(st.sampled_from(["sha256", "bytes", "extra"]))
        if draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(JSON | st.sampled_from([SHA, "a" * 64, -1, 0, 1 << 70, "encoder", "decoder",
                                                         "tokenizer.json", "model.onnx", ["input_ids"]]))
    return data


def check_manifest(data):
    try:
        m = Manifest.from_dict(data)
    except BundleError:
        return
    out = m.to_dict()
    for key, value in data.items():  # every field it carried, exactly
        assert out[key] == value, key
    assert Manifest.from_dict(json.loads(m.to_json())) == m
    assert m.model_file in m.files
    if m.task == "text-classification":
        assert m.tokenizer["file"] in m.files and len(set(m.labels)) == len(m.labels) >= 2


def check_manifest_bytes(tmp_path, blob):
    (tmp_path / "manifest.json").unlink(missing_ok=True)  # a rewrite in place costs ext4 a flush: 2 ms, not 0.1
    (tmp_path / "manifest.json").write_bytes(blob)
    try:
        m = read_manifest(tmp_path)
    except BundleError:
        return
    assert isinstance(m, Manifest) and m.model_file in m.files


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BLOBS = st.binary(max_size=300) | manifests().map(lambda d: json.dumps(d).encode()).flatmap(
    lambda b: st.tuples(st.integers(0, len(b)), st.binary(max_size=4)).map(lambda cut: b[: cut[0]] + cut[1]))


@FAST
@given(data=manifests())
def test_property_mutated_manifests(data):
    check_manifest(data)


@FAST
@given(blob=BLOBS)
def test_property_manifest_bytes(tmp_path, blob):
    check_manifest_bytes(tmp_path, blob)


@pytest.mark.slow
@SLOW
@given(data=manifests())
def test_property_mutated_manifests_slow(data):
    check_manifest(data)


@pytest.mark.slow
@SLOW
@given(blob=BLOBS)
def test_property_manifest_bytes_slow(tmp_path, blob):
    check_manifest_bytes(tmp_path, blob)
