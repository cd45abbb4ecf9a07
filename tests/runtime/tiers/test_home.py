"""The home description: both example homes load, share no name, and every malformed home fails
with one error that names its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm.runtime.tiers.home import HomeError, load_home, parse_home

HOMES = Path(__file__).resolve().parents[3] / "homes"
GOOD = """language: en
floors:
  - name: Ground
    id: ground
areas:
  - name: Kitchen
    id: kitchen
    floor: ground
entities:
  - name: Kitchen Light
    id: light.kitchen
    area: kitchen
    state: "on"
    attributes:
      brightness: 10
timers: []
media:
  - title: Song
"""


def names(home) -> set[str]:
    return ({x.name.lower() for x in (*home.floors, *home.areas, *home.entities)}
            | {m.lower() for m in home.media} | {x.id for x in (*home.floors, *home.areas, *home.entities)})


def test_the_example_homes_load_and_share_no_name_or_id():
    homes = [load_home(p) for p in sorted(HOMES.glob("*.yaml"))]
    assert len(homes) >= 2
    for i, a in enumerate(homes):
        assert a.language == "en" and len(a.areas) >= 4 and len(a.entities) >= 12
        for b in homes[i + 1:]:
            assert not names(a) & names(b)


def test_a_home_reads_as_written_and_hashes_by_content():
    home = parse_home(GOOD)
    light = home.entities[0]
    assert (light.id, light.domain, light.area, light.state, light.attributes) == (
        "light.kitchen", "light", "kitchen", "on", {"brightness": 10})
    assert home.area("kitchen").floor == "ground" and home.media == ("Song",)
    reflowed = parse_home(GOOD.replace("    state: \"on\"\n", "    state: 'on'\n"))
    assert reflowed.digest() == home.digest()
    assert parse_home(GOOD.replace("brightness: 10", "brightness: 11")).digest() != home.digest()


@pytest.mark.parametrize("change, line, words", [
    (("language: en\n", ""), 1, "no language"),
    (("    id: kitchen\n    floor", "    id: kitchen\n    colour: red\n    floor"), 8, "unknown field 'colour'"),
    (("    floor: ground\n", "    floor: attic\n"), 6, "floor 'attic' is not among"),
    (("    area: kitchen\n", "    area: cellar\n"), 10, "area 'cellar' is not among"),
    (("id: light.kitchen", "id: kitchen_light"), 10, "domain.object_id"),
    (("id: light.kitchen", "id: Light.Kitchen"), 10, "domain.object_id"),
    (("  - name: Kitchen Light\n", "  - name: ''\n"), 10, "non-empty string"),
    (("    attributes:\n      brightness: 10\n", "    attributes: [1, 2]\n"), 14, "attributes must be a mapping"),
    (("    state: \"on\"\n", "    state: [1]\n"), 13, "state must be"),
    (("media:\n  - title: Song\n", "media:\n  - Song\n"), 18, r"media\[0\] must be a mapping"),
    (("    id: ground\n", "    id: ground\n    id: again\n"), 5, "given twice"),
    (("  - name: Kitchen\n", "  - name: Kitchen\n   bad indent: [\n"), 7, "not valid YAML"),
])
def test_a_malformed_home_names_its_line_and_field(change, line, words):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(HomeError, match=words) as err:
        parse_home(text)
    assert f"line {line}" in str(err.value), str(err.value)


def test_duplicate_ids_name_both_places():
    text = GOOD.replace("timers:", "  - name: Other Light\n    id: light.kitchen\ntimers:")
    with pytest.raises(HomeError, match=r"line 16: entities\[1\].*used twice.*line 10"):
        parse_home(text)


@pytest.mark.parametrize("raw, words", [
    (b"", "must be a mapping"), (b"- a\n- b\n", "must be a mapping"), (b"\xff\xfe", "not UTF-8"),
    (b"language: en\nareas: {}\n", "must be a list"), (b"!!python/object:os.system {}\n", "not valid YAML"),
])
def test_files_that_are_no_home(tmp_path, raw, words):
    path = tmp_path / "home.yaml"
    path.write_bytes(raw)
    with pytest.raises(HomeError, match=words) as err:
        load_home(path)
    assert str(path) in str(err.value)


def test_a_missing_or_huge_file_is_a_clear_error(tmp_path):
    with pytest.raises(HomeError, match="cannot read"):
        load_home(tmp_path / "absent.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (5 << 20))
    with pytest.raises(HomeError, match="at most"):
        load_home(big)


# Junk in, a HomeError out: never another exception, never a half-read home.
YAMLISH = st.lists(st.sampled_from(list("abc:-[]{}'\"!&*#|>%@` \n\t0123456789.") + [
    "areas", "entities", "id", "name", "floor", "language", "light.x", "\n  - "]), max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(YAMLISH, st.text(max_size=200),
                 st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD)))))
def test_any_text_is_a_home_or_a_home_error(text):
    try:
        home = parse_home(text)
    except HomeError:
        return
    assert home.language and all(e.id.count(".") == 1 for e in home.entities)
