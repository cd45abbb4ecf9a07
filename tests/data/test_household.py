"""The household-week generator: time-ordered, reproducible, answers spelled as the home spells them."""

from __future__ import annotations

import json
from pathlib import Path

from edgeslm.data.household import USUAL, week
from edgeslm.evaluate.replay import read_stream
from edgeslm.runtime.tiers.home import load_home

HOMES = Path(__file__).resolve().parents[2] / "homes"


def test_a_week_is_ordered_reproducible_and_names_only_this_homes_things(tmp_path):
    home = load_home(HOMES / "harbor-loft.yaml")
    rows = week(home, seed=3)
    assert rows == week(home, seed=3) and rows != week(home, seed=4)
    assert [r.ts for r in rows] == sorted(r.ts for r in rows) and len(rows) >= 7 * 40
    names = {e.name for e in home.entities}
    areas = {a.name for a in home.areas}
    for r in rows:
        assert r.label.startswith("Hass")
        assert r.slots.get("name", next(iter(names))) in names and r.slots.get("area", next(iter(areas))) in areas
    noisy = sum(r.noisy for r in rows) / len(rows)
    assert 0.08 < noisy < 0.22
    first_usual = min((r.ts for r in rows if r.text in USUAL), default=None)
    assert first_usual is not None and first_usual - rows[0].ts >= 3 * 86_400  # a habit needs days to form
    path = tmp_path / "week.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    assert len(read_stream(path)) == len(rows)  # replay reads it as written
