"""The home matcher's blind scan: one rapidfuzz call over every name and n-gram, checked against the
plain loop it replaced (kept here as the reference) on two weeks of each example home's commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.data.household import week
from edgeslm.runtime.tiers.cache import normalize
from edgeslm.runtime.tiers.home import load_home
from edgeslm.runtime.tiers.slots import HomeMatcher, Match

HOMES = sorted((Path(__file__).resolve().parents[3] / "homes").glob("*.yaml"))


def reference_scan(matcher: HomeMatcher, text: str) -> list[Match]:
    """Each name, longest first, at its best n-gram of one word fewer, as many or one more; ties go to
    the narrower, then the earlier n-gram; n-grams overlapping an earlier name are skipped."""
    from rapidfuzz import fuzz

    words = normalize(text).split()
    found: list[Match] = []
    for kind, value, norm, _ in sorted(matcher.names, key=lambda n: -len(n[2])):
        size = len(norm.split())
        best = None
        for width in sorted({size - 1, size, size + 1} - {0}):
            for i in range(0, len(words) - width + 1):
                if any(i < m.end and m.start < i + width for m in found):
                    continue
                score = fuzz.ratio(" ".join(words[i:i + width]), norm)
                if score >= matcher.threshold and (best is None or score > best.score):
                    best = Match(kind, value, score, i, i + width)
        if best is not None:
            found.append(best)
    return sorted(found, key=lambda m: m.start)


@pytest.mark.parametrize("home_path", HOMES, ids=lambda p: p.stem)
def test_the_scan_finds_what_the_plain_loop_found(home_path):
    home = load_home(home_path)
    matcher = HomeMatcher(home)
    texts = [c.text for seed in (0, 1) for c in week(home, seed=seed)]
    texts += ["", "the", "turn on the the the lamp lamp", "kitchen kitchen kitchen"]
    # names said with a word fewer or more ("the floorlamp", "the floor standing lamp"): found at width +-1
    joined = [e.name.lower().replace(" ", "", 1) for e in home.entities if " " in e.name]
    texts += [f"turn on the {name}" for name in joined]
    assert any(len(matcher.find(f"turn on the {name}")) for name in joined)
    found_any = 0
    for text in texts:
        got = matcher.find(text)
        assert got == reference_scan(matcher, text), text
        found_any += bool(got)
    assert found_any > len(texts) // 2  # the weeks name things: a scan that finds nothing fails here


def test_two_names_never_share_a_word():
    home = load_home(HOMES[0])
    matcher = HomeMatcher(home)
    names = [e.name for e in home.entities[:2]]
    text = f"turn on the {names[0]} and the {names[1]}"
    spans = [(m.start, m.end) for m in matcher.find(text)]
    assert len(spans) >= 2
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))



def test_a_scan_remembered_for_another_command_in_between_is_not_handed_out():
    """The server answers commands in two threads sharing one matcher: another thread may replace the
    remembered scan between any two steps of this one. Here it does so right after every read of it."""
    home = load_home(HOMES[0])
    one, two = "turn on the " + home.entities[0].name, "turn off the " + home.entities[1].name
    want = {t: HomeMatcher(home).find(t) for t in (one, two)}
    assert want[one] != want[two]
    other = HomeMatcher(home)
    other.find(two)
    elsewhere = other._last  # what the other thread remembers: "two" and its names

    class Racing(HomeMatcher):
        @property
        def _last(self):
            value = self.__dict__["_last"]
            self.__dict__["_last"] = elsewhere  # the other thread writes right after this read
            return value

        @_last.setter
        def _last(self, value):
            self.__dict__["_last"] = value

    racing = Racing(home)
    racing.find(one)  # remembers "one"...
    racing.__dict__["_last"] = (tuple(normalize(one).split()), want[one])
    assert racing.find(one) == want[one]  # ...and it is "one"'s names it answers with, never "two"'s
