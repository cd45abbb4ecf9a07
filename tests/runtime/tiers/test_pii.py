"""PII redaction before a command leaves the device: each kind of PII becomes its placeholder, the
home's names and the numbers of settings stay, and over the whole labelled test set (names from a
list of our own, not the redactor's) at least 95% of the PII is taken out."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.data.household import week
from edgeslm.data.pii_commands import PERSON_NAMES, PII_TYPES, grammar_commands, held_out, overlap, pii_commands
from edgeslm.runtime.tiers.home import load_home, parse_home
from edgeslm.runtime.tiers.pii import PiiError, PiiRedactor, census_names

HOMES = Path(__file__).resolve().parents[3] / "homes"
FAMILY_HOME = """
language: en
floors: [{name: Ground Floor, id: ground}]
areas:
  - {name: Anna's Room, id: anna, floor: ground}
  - {name: Grace Hall, id: grace, floor: ground}
  - {name: Kitchen, id: kitchen, floor: ground}
entities:
  - {name: Will's Lamp, id: light.will_lamp, area: anna}
  - {name: Jordan Heater, id: climate.jordan, area: kitchen}
"""


@pytest.fixture(scope="module")
def homes():
    return [load_home(HOMES / "maple-cottage.yaml"), load_home(HOMES / "harbor-loft.yaml")]


@pytest.fixture(scope="module")
def family():
    home = parse_home(FAMILY_HOME)
    return home, PiiRedactor(home)


@pytest.mark.parametrize("text, kind, value", [
    ("text Maria Gonzalez that the garage is open", "PERSON", "Maria Gonzalez"),
    ("call 415-555-0134", "PHONE", "415-555-0134"),
    ("dial +44 20 7946 0958 please", "PHONE", "+44 20 7946 0958"),
    ("email the report to joe.b@example.org", "EMAIL", "joe.b@example.org"),
    ("navigate to 221B Baker Street", "ADDRESS", "221B Baker Street"),
    ("ship it to 1600 Pennsylvania Ave NW, Washington, DC 20500", "ADDRESS", "1600 Pennsylvania Ave NW, Washington, DC 20500"),
    ("the alarm code is 4821", "CODE", "4821"),
    ("pay with 4111 1111 1111 1111", "CODE", "4111 1111 1111 1111"),
    ("the wifi password is hunter2", "CODE", "hunter2"),
    ("ask oluwaseun adeyemi to close the door", "PERSON", "oluwaseun adeyemi"),
    ("tell Dr. Ramona Estrada I am late", "PERSON", "Dr. Ramona Estrada"),
])
def test_each_kind_of_pii_becomes_its_placeholder(family, text, kind, value):
    _, redactor = family
    red = redactor.redact(text)
    assert [(s.type, s.value) for s in red.spans] == [(kind, value)]
    assert red.text == text.replace(value, f"<{kind}>") and value not in red.text


def test_the_homes_names_and_setting_numbers_stay(family):
    _, redactor = family
    for text in ["turn on the lights in Anna's Room", "set Will's Lamp to 40 percent", "set the Jordan Heater to 21.5",
                 "turn off everything in Grace Hall", "start a timer for 5 minutes", "set the heat to 21 at 6:30 pm",
                 "dim the lights to 50%", "turn the volume up to 35", "set the color temperature to 2700"]:
        red = redactor.redact(text)
        assert red.text == text and not red.spans, text
    # the same first names outside the home's names are people
    red = redactor.redact("call Anna and tell Will that Anna's Room is warm")
    assert red.text == "call <PERSON> and tell <PERSON> that Anna's Room is warm"


def test_several_spans_in_one_command_and_restore_puts_them_back(family):
    _, redactor = family
    text = "tell Priya Raman at priya@example.com that the Kitchen is at 22 degrees and call 212-555-0199"
    red = redactor.redact(text)
    assert red.text == "tell <PERSON> at <EMAIL> that the Kitchen is at 22 degrees and call <PHONE>"
    assert red.restore("<PERSON> gets <EMAIL>") == "Priya Raman gets priya@example.com"
    assert red.restore("<PERSON> and <PERSON>") == "Priya Raman and <PERSON>"  # no second person to put back


def test_text_without_pii_or_words_at_all_passes_through(family):
    _, redactor = family
    for text in ["", "   ", "42", "?!", "turn on the lights", "ok", "x" * 5000]:
        assert redactor.redact(text).text == text


def test_the_redactor_says_what_to_install_when_the_name_lists_are_missing(monkeypatch):
    import edgeslm.runtime.tiers.pii as pii

    def missing(_package):
        raise ModuleNotFoundError("No module named 'names'")

    monkeypatch.setattr(pii.resources, "files", missing)
    with pytest.raises(PiiError, match="pip install 'edgeslm\\[assist\\]'"):
        census_names.__wrapped__()


def test_the_test_set_is_labelled_big_enough_and_its_names_are_not_the_redactors(homes):
    rows = pii_commands(homes[0]) + held_out(homes[0])
    with_pii = [r for r in rows if r.pii]
    assert len(with_pii) >= 300 and len(rows) - len(with_pii) >= 150
    assert {s.type for r in with_pii for s in r.pii} == set(PII_TYPES)
    for r in rows:
        for s in r.pii + r.keep:
            assert r.text[s.start:s.end] == s.value
    assert pii_commands(homes[0]) == pii_commands(homes[0])  # seeded
    given, family = census_names()
    report = overlap(set(given), set(family))
    assert report["people"] == len(PERSON_NAMES) >= 250
    # a real share of our people's names is in neither Census list: the set measures more than lookups
    assert report["given_share"] < 0.8


def _score(redactor, rows):
    spans = covered = chars = chars_covered = keep = kept = clean = clean_hit = 0
    for r in rows:
        red = redactor.redact(r.text)
        hit = {i for s in red.spans for i in range(s.start, s.end)}
        for s in r.pii:
            spans += 1
            cells = set(range(s.start, s.end))
            covered += cells <= hit
            chars += len(cells)
            chars_covered += len(cells & hit)
        for s in r.keep:
            keep += 1
            kept += not (set(range(s.start, s.end)) & hit)
        if not r.pii:
            clean += 1
            clean_hit += bool(red.spans)
    return covered / spans, chars_covered / chars, kept / keep, clean_hit / clean


def test_over_the_whole_test_set_95_percent_of_pii_is_removed_and_home_names_stay(homes):
    for home in homes:
        redactor = PiiRedactor(home)
        span_recall, char_recall, kept, over = _score(redactor, pii_commands(home) + held_out(home))
        assert span_recall >= 0.95 and char_recall >= 0.95, (home.digest()[:8], span_recall, char_recall)
        assert kept >= 0.99 and over <= 0.02, (kept, over)


def test_a_week_of_household_commands_loses_nothing_to_redaction(homes):
    for home in homes:
        redactor = PiiRedactor(home)
        rows = week(home, days=3)
        changed = [r.text for r in rows if redactor.redact(r.text).spans]
        assert len(changed) <= 0.01 * len(rows), changed[:5]


def test_commands_sampled_from_home_assistants_grammar_lose_almost_nothing():
    """Phrasings we did not write: timer names, media titles, number words and plural device words
    stay (before the grammar's own words were known here, 5.8% of these lost a word)."""
    home, texts = grammar_commands(800, seed=3)
    redactor = PiiRedactor(home)
    changed = [redactor.redact(t).text for t in texts if redactor.redact(t).spans]
    assert len(changed) <= 0.01 * len(texts), changed[:10]
