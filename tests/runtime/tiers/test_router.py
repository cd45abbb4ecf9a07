"""The assistant over real tiers: Home Assistant's grammar, the trained intent encoder, the exact cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import ExactCache
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.policy import Policy
from edgeslm.runtime.tiers.router import Assistant, AssistError
from edgeslm.runtime.tiers.slots import HomeMatcher
from edgeslm.runtime.tiers.templates import TemplateTier

HOMES = Path(__file__).resolve().parents[3] / "homes"


@pytest.fixture(scope="module")
def home():
    return load_home(HOMES / "maple-cottage.yaml")


@pytest.fixture(scope="module")
def templates(home):
    return TemplateTier(home)


@pytest.fixture(scope="module")
def encoder(session_bundle, home):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.onnx import OnnxClassifier
    from edgeslm.runtime.tiers.encoder import EncoderTier

    return EncoderTier(OnnxClassifier.from_bundle(open_bundle(session_bundle), threads=1), HomeMatcher(home))


@pytest.mark.parametrize("text, context, slots", [
    ("turn on the flor lamp", None, {"name": "Floor Lamp"}),
    ("switch off the lights in the kitchn", None, {"area": "Kitchen", "domain": "light"}),
    ("lights on please", {"area": "Kids Room"}, {"area": "Kids Room", "domain": "light"}),
    ("set the bedside lamp to 40 percent", None, {"name": "Bedside Lamp", "brightness": 40}),
    ("turn off everything upstairs", None, {"floor": "Upstairs"}),
])
def test_slots_come_from_the_home_spelled_its_way_typos_and_all(home, text, context, slots):
    intent = "HassLightSet" if "percent" in text else "HassTurnOn"
    assert HomeMatcher(home).slots(text, intent, context) == slots


def test_a_harbor_loft_name_is_not_found_in_the_cottage(home):
    assert "name" not in HomeMatcher(home).slots("turn on the desk lamp", "HassTurnOn")


@pytest.mark.model
def test_templates_first_then_the_encoder_then_the_cache(tmp_path, home, templates, encoder):
    cache = ExactCache(tmp_path / "cache.sqlite", home.digest())
    policy = Policy(order=["templates", "encoder"], thresholds={"templates": 1.0, "encoder": 0.0})
    assistant = Assistant([encoder, templates], load_profile("this-machine"), policy, cache=cache)
    first = assistant.ask("turn on the floor lamp")
    assert (first.intent, first.slots, first.tier) == ("HassTurnOn", {"name": "Floor Lamp"}, "templates")
    again = assistant.ask("Turn on the floor lamp!")
    assert (again.intent, again.slots, again.tier) == ("HassTurnOn", {"name": "Floor Lamp"}, "cache")
    fuzzy = assistant.ask("please turn off the flor lamp now")
    assert fuzzy.tier == "encoder" and fuzzy.intent == "HassTurnOff" and fuzzy.slots == {"name": "Floor Lamp"}
    assert 0 < fuzzy.confidence < 1 and fuzzy.latency_ms > 0 and fuzzy.joules > 0
    assert assistant.answered == {"templates": 1, "cache": 1, "encoder": 1}


@pytest.mark.model
def test_when_no_tier_is_sure_the_most_confident_answer_is_given_and_not_cached(tmp_path, home, encoder):
    cache = ExactCache(tmp_path / "cache.sqlite", home.digest())
    strict = Policy(order=["encoder"], thresholds={"encoder": 1.0}, cache_from=1.0)
    assistant = Assistant([encoder], load_profile("this-machine"), strict, cache)
    answer = assistant.ask("please turn off the flor lamp now")
    assert answer.tier == "encoder" and answer.intent == "HassTurnOff"
    assert len(cache) == 0


class Counting:
    """A tier that answers unsure, and counts how often it ran."""

    name = "encoder"

    def __init__(self):
        self.runs = 0

    def answer(self, text, context=None):
        self.runs += 1
        return Answer("HassTurnOn", {"name": text.split()[-1]}, tier=self.name, confidence=0.4)


def test_an_unsure_answer_repeated_word_for_word_comes_from_the_memo_not_the_tiers(tmp_path, home):
    tier = Counting()
    cache = ExactCache(tmp_path / "cache.sqlite", home.digest())
    assistant = Assistant([tier], load_profile("this-machine"), Policy(order=["encoder"], cache_from=0.9), cache)
    first = assistant.ask("turn on lamp")
    again = assistant.ask("Turn on  LAMP!")
    assert (first.tier, again.tier, tier.runs) == ("encoder", "memo", 1)
    assert (again.intent, again.slots, again.confidence) == (first.intent, first.slots, first.confidence)
    assert len(cache) == 0  # not remembered as a sure answer
    assert assistant.ask("turn on lamp", {"area": "Kitchen"}).tier == "encoder"  # another context: the tiers run
    assert assistant.ask("turn on lamp2").tier == "encoder" and tier.runs == 3
    no_cache = Assistant([tier], load_profile("this-machine"), Policy(order=["encoder"], cache_from=0.9))
    assert [no_cache.ask("turn on lamp").tier for _ in range(2)] == ["encoder", "encoder"]  # the memo is the cache tier's


class Boom:
    name = "boom"

    def answer(self, text, context=None):
        return Answer("HassNevermind", {}, tier=self.name, confidence=0.5)


@pytest.mark.parametrize("bad, words", [
    ("", "empty"), ("   ", "empty"), ("x" * 2001, "2001 characters"), (b"\xff\xfe on", "UTF-8"),
    (None, "must be text"), (42, "must be text"), ("on\x00", "NUL"), ("on \ud800", "surrogate"),
])
def test_bad_commands_get_a_clear_error_and_nothing_is_counted(bad, words):
    assistant = Assistant([Boom()], load_profile("this-machine"))
    with pytest.raises(AssistError, match=words):
        assistant.ask(bad)
    assert not assistant.answered
    assert assistant.ask("fine").tier == "boom"


def test_the_memo_is_bounded_and_forgets_the_least_recently_used(tmp_path, home, monkeypatch):
    from edgeslm.runtime.tiers import router

    monkeypatch.setattr(router, "MEMO_ENTRIES", 2)
    tier = Counting()
    cache = ExactCache(tmp_path / "cache.sqlite", home.digest())
    assistant = Assistant([tier], load_profile("this-machine"), Policy(order=["encoder"], cache_from=0.9), cache)
    for text in ("turn on a", "turn on b", "turn on a", "turn on c"):  # a used again: b is the oldest
        assistant.ask(text)
    assert len(assistant.memo) == 2
    assert [assistant.ask(t).tier for t in ("turn on a", "turn on c", "turn on b")] == ["memo", "memo", "encoder"]


def test_a_tier_the_policy_skips_after_an_unsure_intent_is_not_tried(templates):
    """The templates are not tried after an unsure encoder answer of an intent the calibration found they
    never fixed; after any other unsure answer they are, and they answer."""
    class Unsure:
        name = "encoder"

        def __init__(self, intent):
            self.intent = intent

        def answer(self, text, context=None):
            return Answer(self.intent, {}, tier=self.name, confidence=0.5, candidates=("HassTurnOn", "HassTurnOff"))

    class Watched:
        name, narrows = "templates", True

        def __init__(self):
            self.runs = 0

        def answer(self, text, context=None, candidates=()):
            self.runs += 1
            return templates.answer(text, context, candidates)

    policy = Policy(order=["encoder", "templates"], thresholds={"encoder": 0.9},
                    skip_after={"templates": ["HassTurnOn"]})
    watched = Watched()
    skipping = Assistant([Unsure("HassTurnOn"), watched], load_profile("this-machine"), policy)
    answer = skipping.ask("turn off the ceiling light")
    assert (answer.tier, answer.intent, watched.runs) == ("encoder", "HassTurnOn", 0)
    looking = Assistant([Unsure("HassTurnOff"), watched], load_profile("this-machine"), policy)
    answer = looking.ask("turn off the ceiling light")
    assert (answer.tier, answer.intent, watched.runs) == ("templates", "HassTurnOff", 1)
    with pytest.raises(Exception, match="skip_after"):
        Policy(skip_after={"oracle": ["HassTurnOn"]})
