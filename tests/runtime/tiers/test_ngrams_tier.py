"""The n-gram head in the assistant (runtime/tiers/encoder.py `quick`, router.py): on the real early-exit
bundle, a command it is sure of is answered before the encoder's first segment runs, and remembered; one it
is not sure of goes on to the encoder; a policy without `ngrams_from` never asks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.cache import ExactCache
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.policy import Policy
from edgeslm.runtime.tiers.router import Assistant
from edgeslm.runtime.tiers.slots import HomeMatcher

HOMES = Path(__file__).resolve().parents[3] / "homes"
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def home():
    return load_home(HOMES / "maple-cottage.yaml")


@pytest.fixture
def encoder(early_exit_bundle, home, monkeypatch):
    """The encoder tier on the bundle's engine, counting the first segment's runs."""
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
    from edgeslm.runtime.tiers.encoder import EncoderTier

    engine = EarlyExitClassifier.from_bundle(open_bundle(early_exit_bundle), threads=1)
    tier = EncoderTier(engine, HomeMatcher(home))
    tier.firsts = 0
    first = engine.first

    def counted(*args, **kwargs):
        tier.firsts += 1
        return first(*args, **kwargs)
    monkeypatch.setattr(engine, "first", counted)
    return tier


def assistant(tmp_path, home, encoder, ngrams_from):
    policy = Policy(order=["encoder"], thresholds={"encoder": 0.0}, ngrams_from=ngrams_from)
    return Assistant([encoder], load_profile("this-machine"), policy, cache=ExactCache(tmp_path / "c.sqlite", home.digest()),
                     ngrams=True)


def test_the_bundle_carries_a_head_for_its_labels(encoder):
    assert encoder.quick_head is not None and encoder.quick_head.labels == encoder.labels


def test_a_sure_answer_comes_before_the_encoder_runs_and_is_remembered(tmp_path, home, encoder):
    a = assistant(tmp_path, home, encoder, 0.5)
    answer = a.ask("please turn off the lights in the kitchen")
    assert (answer.tier, answer.intent) == ("ngrams", "HassTurnOff")
    assert answer.slots == {"area": "Kitchen", "domain": "light"} and answer.confidence >= 0.5
    assert encoder.firsts == 0  # no model ran
    assert a.ask("please turn off the lights in the kitchen").tier == "cache"


def test_an_answer_less_sure_than_the_policy_asks_goes_on_to_the_encoder(tmp_path, home, encoder):
    quick = encoder.quick("please turn off the lights in the kitchen", None)
    assert quick is not None and quick.confidence < 1.0
    answer = assistant(tmp_path, home, encoder, 1.0).ask("please turn off the lights in the kitchen")
    assert answer.tier == "encoder" and encoder.firsts == 1


@pytest.mark.parametrize("text", [
    "switch it on",  # turning something on, and the scan found nothing to turn on: the tagger may find it
    "what is the living room temperature",  # "Living Room Temperature" is a sensor, "living room" an area
])
def test_the_head_leaves_what_the_scan_cannot_settle_to_the_tiers_after_it(encoder, text):
    assert encoder.quick(text, None) is None
    assert encoder.quick(text, None, raw=True) is not None  # it has an answer, alone


def test_the_head_answers_nothing_below_its_floor(encoder):
    floor = encoder.quick_head.head.floor
    assert 0.0 < floor <= 1.0  # set on the run's validation split when the bundle was built
    raw = encoder.quick("kitchen lights", None, raw=True)
    assert (encoder.quick("kitchen lights", None) is None) == (raw.confidence < floor)


def test_the_head_is_not_asked_unless_the_policy_says_from_where_and_the_tiers_name_it(tmp_path, home, encoder):
    assert Policy().ngrams_from > 1.0
    answer = assistant(tmp_path, home, encoder, 1.01).ask("please turn off the lights in the kitchen")
    assert answer.tier == "encoder" and encoder.firsts == 1
    alone = Assistant([encoder], load_profile("this-machine"), Policy(order=["encoder"], ngrams_from=0.5))  # --tiers encoder
    assert alone.ask("please turn off the lights in the kitchen").tier == "encoder" and encoder.firsts == 2


def test_the_head_comes_with_the_encoder_only():
    from edgeslm.errors import ConfigError
    from edgeslm.runtime.tiers.assemble import check_tiers

    with pytest.raises(ConfigError, match="add encoder"):
        check_tiers(["cache", "ngrams", "templates"], "--tiers")
    with pytest.raises(ConfigError, match="add one"):
        check_tiers(["cache", "ngrams"], "--tiers")
