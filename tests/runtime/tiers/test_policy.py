"""The router's policy file: validated, content-hashed, written atomically; a damaged file is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslm.errors import ConfigError
from edgeslm.runtime.tiers.policy import Policy, PolicyError, load_policy, write_policy


def test_a_policy_round_trips_with_its_hash(tmp_path):
    policy = Policy(order=["encoder", "templates"], thresholds={"encoder": 0.93}, cache_from=0.99, target_accuracy=0.97,
                    calibration={"commands": 10})
    path = tmp_path / "p.json"
    digest = write_policy(policy, path)
    assert json.loads(path.read_text())["sha256"] == digest == policy.digest()
    assert load_policy(path) == policy
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_a_policy_written_before_lexical_from_still_loads_with_it_off(tmp_path):
    import hashlib

    body = Policy(order=["encoder"], thresholds={"encoder": 0.9}).to_dict()
    del body["lexical_from"]  # as edgeslm wrote policies before the field
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(body))
    assert load_policy(path).lexical_from == 1.01
    body["thresholds"]["encoder"] = 0.5  # and an edit is still caught
    path.write_text(json.dumps(body))
    with pytest.raises(PolicyError, match="sha256"):
        load_policy(path)


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", None])
def test_lexical_from_is_a_similarity_or_off(value):
    with pytest.raises(ConfigError, match="lexical_from"):
        Policy(lexical_from=value)


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", None, True])
def test_ngrams_from_is_a_confidence_or_off(value):
    with pytest.raises(ConfigError, match="ngrams_from"):
        Policy(ngrams_from=value)


def test_a_policy_written_before_ngrams_from_still_loads_with_it_off(tmp_path):
    import hashlib

    body = Policy(order=["encoder"], thresholds={"encoder": 0.9}, lexical_from=0.9).to_dict()
    del body["ngrams_from"]
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(body))
    assert load_policy(path).ngrams_from == 1.01 and load_policy(path).lexical_from == 0.9


def test_the_hash_changes_with_any_field():
    a = Policy(order=["encoder"], thresholds={"encoder": 0.9})
    assert a.digest() != Policy(order=["encoder"], thresholds={"encoder": 0.91}).digest()
    assert a.digest() != Policy(order=["encoder"], thresholds={"encoder": 0.9}, cache_from=0.97).digest()
    assert a.digest() != Policy(order=["encoder"], thresholds={"encoder": 0.9}, lexical_from=0.9).digest()
    assert a.digest() != Policy(order=["encoder"], thresholds={"encoder": 0.9}, ngrams_from=0.9).digest()


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.update(cache_from=0.5), "does not match its sha256"),
    (lambda d: d.pop("sha256"), "no sha256"),
    (lambda d: d.update(order=["oracle"]), "unknown tier 'oracle'"),
    (lambda d: d.update(order=[]), "at least one"),
    (lambda d: d.update(order=["encoder", "encoder"]), "named twice"),
    (lambda d: d["thresholds"].update(encoder=1.5), r"\[0, 1\]"),
    (lambda d: d["thresholds"].update(encoder="high"), r"\[0, 1\]"),
    (lambda d: d.update(surprise=1), "unknown field"),
    (lambda d: d.update(version=9), "version 9"),
])
def test_a_bad_or_edited_policy_is_refused_with_the_reason(tmp_path, edit, words):
    path = tmp_path / "p.json"
    write_policy(Policy(order=["templates", "encoder"], thresholds={"templates": 1.0, "encoder": 0.9}), path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyError, match=words):
        load_policy(path)


@pytest.mark.parametrize("raw, words", [
    (b"", "not a JSON policy"), (b'{"order": ["encoder"],', "not a JSON policy"), (b"\xff\xfe{}", "not a JSON policy"),
    (b"[1, 2]", "a JSON object"), (b'{"cache_from": NaN, "sha256": "x"}', "not a JSON policy"),
    # which copy a reader keeps is the reader's choice: the hash would not say which was measured
    (b'{"cache_from": 0.9, "cache_from": 0.1, "sha256": "x"}', "appears twice"),
    (b"[" * 100_000 + b"]" * 100_000, "not a JSON policy"),
])
def test_truncated_or_junk_files_are_refused(tmp_path, raw, words):
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    with pytest.raises(PolicyError, match=words):
        load_policy(path)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.json")


def test_restrict_keeps_the_calibrated_order_and_appends_new_tiers():
    policy = Policy(order=["encoder", "templates"], thresholds={"encoder": 0.9})
    assert policy.restrict(["templates"]).order == ["templates"]
    assert policy.restrict(["templates", "encoder", "generative"]).order == ["encoder", "templates", "generative"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=400), st.builds(
    lambda body, key, value: json.dumps({**body, key: value}).encode(),
    st.just(Policy().to_dict()), st.sampled_from(["order", "thresholds", "cache_from", "skip_after", "sha256", "x"]),
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3)))))
def test_any_bytes_are_a_policy_or_a_policy_error(tmp_path, raw):
    path = tmp_path / "junk.json"
    path.write_bytes(raw)
    try:
        policy = load_policy(path)
    except PolicyError:
        return
    assert isinstance(policy, Policy)
