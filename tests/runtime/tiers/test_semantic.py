"""The semantic cache: its guard keeps near-duplicates that mean something else apart, its store is
bounded and survives a restart, and through the assistant it answers a command said another way
from the encoder's own first-segment pass, never a reversal or another device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import ExactCache
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.policy import Policy
from edgeslm.runtime.tiers.router import Assistant
from edgeslm.runtime.tiers.semantic import SemanticCache, guard_key
from edgeslm.runtime.tiers.slots import HomeMatcher

HOMES = Path(__file__).resolve().parents[3] / "homes"


@pytest.fixture(scope="module")
def home():
    return load_home(HOMES / "maple-cottage.yaml")


@pytest.fixture(scope="module")
def matcher(home):
    return HomeMatcher(home)


def key(matcher, text, context=None):
    return guard_key(text, matcher.slots(text, None, context))


def unit(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("a, b", [
    ("turn on the ceiling light", "please turn on the ceiling light"),
    ("turn on the ceiling light", "could you turn on the celing light"),  # a typo in the name
    ("lock the front door", "lock the front door now"),
    ("set the floor lamp to 40%", "set the floor lamp to 40 percent please"),
])
def test_the_guard_lets_paraphrases_be_compared(matcher, a, b):
    assert key(matcher, a) == key(matcher, b)


@pytest.mark.parametrize("a, b", [
    ("turn on the ceiling light", "turn off the ceiling light"),  # the reversal
    ("lock the front door", "unlock the front door"),
    ("turn on the ceiling light", "turn on the floor lamp"),  # another device
    ("turn off the lights in the kitchen", "turn off the lights in the garage"),  # another area
    ("set the floor lamp to 40%", "set the floor lamp to 60%"),  # another number
    ("turn on the ceiling light", "is the ceiling light on"),  # a question, not a command
    ("turn on the ceiling light", "trun of the ceiling light"),  # a typo in a guard word: a miss, never a wrong hit
])
def test_the_guard_keeps_what_means_something_else_apart(matcher, a, b):
    assert key(matcher, a) != key(matcher, b)


def test_the_context_is_part_of_the_guard(matcher):
    assert key(matcher, "turn on the lights", {"area": "Kitchen"}) != key(matcher, "turn on the lights", {"area": "Garage"})


def test_hits_need_the_same_guard_and_a_close_embedding(tmp_path):
    cache = SemanticCache(tmp_path / "c.sqlite", "home-a")
    on = Answer("HassTurnOn", {"name": "Ceiling Light"}, tier="encoder")
    cache.put("turn on the ceiling light", unit(1, 0, 0), "g-on", None, on)
    hit = cache.get(unit(0.95, 0.3, 0), "g-on", None, threshold=0.9)
    assert hit is not None and hit.intent == "HassTurnOn" and hit.tier == "semantic" and 0.9 <= hit.confidence <= 1
    assert cache.get(unit(0.5, 0.8, 0), "g-on", None, threshold=0.9) is None  # too far
    assert cache.get(unit(1, 0, 0), "g-off", None, threshold=0.9) is None  # another guard, however close
    assert cache.get(unit(1, 0, 0), "g-on", {"area": "Kitchen"}, threshold=0.9) is None  # another context
    assert cache.get(unit(1, 0, 0), "g-on", None, threshold=1.01) is None  # off
    assert cache.get(unit(1, 0, 0, 0), "g-on", None, threshold=0.5) is None  # another encoder's width: never compared


def test_word_hits_need_the_same_guard_and_nearly_the_same_words(tmp_path):
    cache = SemanticCache(tmp_path / "c.sqlite", "home-a")
    dim = Answer("HassLightSet", {"name": "Reading Sconce", "brightness": 40}, tier="encoder")
    cache.put("dim the reading sconce to 40 percent", unit(1, 0, 0), "g-40", None, dim)
    for said in ("Dim the reading sconce to 40 percent, thank you!", "could you dim the reading sconce to 40 percent"):
        hit = cache.words(said, "g-40", None, threshold=0.95)
        assert hit is not None and (hit.intent, hit.slots, hit.tier) == (dim.intent, dim.slots, "lexical"), said
    assert cache.words("dim the reading sconce to 40 percennt", "g-40", None, threshold=0.95) is not None  # a typo
    assert cache.words("brighten the sconce in the reading nook", "g-40", None, threshold=0.95) is None  # other words
    assert cache.words("dim the reading sconce to 40 percent", "g-30", None, threshold=0.5) is None  # another guard
    assert cache.words("dim the reading sconce to 40 percent", "g-40", {"area": "Den"}, threshold=0.5) is None
    assert cache.words("dim the reading sconce to 40 percent", "g-40", None, threshold=1.01) is None  # off


def test_it_survives_a_restart_forgets_a_changed_home_and_stays_bounded(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = SemanticCache(path, "home-a", max_entries=3)
    for i in range(5):
        cache.put(f"command {i}", unit(1, i, 0), "g", None, Answer("HassTurnOn", {}, tier="encoder"))
    assert len(cache) == 3
    cache.close()
    again = SemanticCache(path, "home-a", max_entries=3)
    assert len(again) == 3 and again.get(unit(1, 4, 0), "g", None, threshold=0.99) is not None
    again.close()
    assert len(SemanticCache(path, "home-b")) == 0


class Counted:
    """An ONNX Runtime session that counts its runs."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.mark.model
def test_the_assistant_serves_a_paraphrase_from_the_encoder_pass_and_never_a_reversal(early_exit_bundle, home, tmp_path):
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.registry import LoadSettings, load_engine
    from edgeslm.runtime.tiers.encoder import EncoderTier

    engine = load_engine(open_bundle(early_exit_bundle), LoadSettings(threads=1, spin=False))
    tier = EncoderTier(engine, HomeMatcher(home))
    assert tier.embeds
    store = str(tmp_path / "a.sqlite")
    policy = Policy(order=["encoder"], thresholds={"encoder": 0.0}, cache_from=0.0, semantic_from=0.8)
    assistant = Assistant([tier], load_profile("this-machine"), policy, cache=ExactCache(store, home.digest()),
                          semantic=SemanticCache(store, home.digest()))
    first = assistant.ask("turn on the ceiling light")
    assert first.tier == "encoder"
    # a semantic hit costs the first segment only: with no early exit allowed, the encoder alone would run all
    saved, engine.thresholds = engine.thresholds, [1.01] * len(engine.thresholds)
    engine.sessions = [Counted(s) for s in engine.sessions]
    again = assistant.ask("please turn on the ceiling light")
    assert again.tier == "semantic" and (again.intent, again.slots) == (first.intent, first.slots)
    assert [s.runs for s in engine.sessions] == [1] + [0] * (len(engine.sessions) - 1)
    assert assistant.ask("turn on the bedside lamp").tier == "encoder"  # a miss goes on from the same pass
    assert [s.runs for s in engine.sessions] == [2] + [1] * (len(engine.sessions) - 1)
    engine.thresholds = saved
    assert assistant.ask("please turn on the ceiling light").tier == "cache"  # said this way again: exact
    for other in ("turn off the ceiling light", "turn on the floor lamp", "is the ceiling light on"):
        assert assistant.ask(other).tier == "encoder", other
    # by words, before the encoder runs: the fillers around a known command; never a reversal
    words = Assistant([tier], load_profile("this-machine"), Policy.from_dict({**policy.to_dict(), "lexical_from": 0.9}),
                      cache=ExactCache(store, home.digest()), semantic=SemanticCache(store, home.digest()))
    said = words.ask("turn on the ceiling light right now thank you")
    assert said.tier == "lexical" and (said.intent, said.slots) == (first.intent, first.slots)
    off = words.ask("turn off the ceiling light right now thank you")  # from "turn off ..." above, never "on"
    assert off.intent == "HassTurnOff" and off.slots == first.slots


def test_an_entry_without_an_embedding_answers_by_words_only(tmp_path, home, matcher):
    cache = SemanticCache(tmp_path / "s.sqlite", home.digest())
    text = "turn on the ceiling light"
    g = key(matcher, text)
    cache.put(text, None, g, None, Answer("HassTurnOn", {"name": "Ceiling Light"}, tier="ngrams", confidence=0.9))
    assert cache.get(unit(1, 0, 0), g, None, 0.0) is None  # nothing to compare an embedding with
    hit = cache.words("please turn on the ceiling light", g, None, 0.9)
    assert hit is not None and (hit.tier, hit.intent, hit.slots) == ("lexical", "HassTurnOn", {"name": "Ceiling Light"})
    # beside an entry with an embedding, the lookup by embedding still finds that one
    cache.put("switch the ceiling light on", unit(1, 0, 0), g, None, Answer("HassTurnOn", {"name": "Ceiling Light"}))
    assert cache.get(unit(1, 0.1, 0), g, None, 0.9).intent == "HassTurnOn"
