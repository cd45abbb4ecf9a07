"""Tier 0's exact cache: normalized keys, context and home in the key, bounded, and it survives a restart."""

from __future__ import annotations

import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import ExactCache, normalize

ON = Answer("HassTurnOn", {"name": "Floor Lamp"}, tier="templates")


def test_normalization_keeps_what_changes_meaning():
    assert normalize("  Turn ON the Floor-Lamp!! ") == normalize("turn on the floor-lamp")
    assert normalize("set it to 21.5°") != normalize("set it to 215°")
    assert normalize("dim to 40%") != normalize("dim to 40")
    assert normalize("turn on") != normalize("turn off")


def test_a_hit_after_a_put_and_after_a_restart(tmp_path):
    db = tmp_path / "cache.sqlite"
    cache = ExactCache(db, "home-a")
    assert cache.get("turn on the floor lamp") is None
    cache.put("Turn on the floor lamp.", None, ON)
    hit = cache.get("turn on the FLOOR lamp")
    assert hit is not None and (hit.intent, hit.slots, hit.tier) == ("HassTurnOn", {"name": "Floor Lamp"}, "cache")
    cache.close()
    again = ExactCache(db, "home-a")
    assert again.get("turn on the floor lamp").slots == {"name": "Floor Lamp"}


def test_context_and_home_are_part_of_the_key(tmp_path):
    db = tmp_path / "cache.sqlite"
    cache = ExactCache(db, "home-a")
    cache.put("turn on the lights", {"area": "Kitchen"}, Answer("HassTurnOn", {"area": "Kitchen", "domain": "light"}))
    assert cache.get("turn on the lights", {"area": "Living Room"}) is None
    assert cache.get("turn on the lights") is None
    assert cache.get("turn on the lights", {"area": "Kitchen"}).slots["area"] == "Kitchen"
    cache.close()
    changed = ExactCache(db, "home-b")  # the home changed: what was learned about the old one goes
    assert changed.get("turn on the lights", {"area": "Kitchen"}) is None and len(changed) == 0


def test_the_cache_is_bounded_least_recently_used_first(tmp_path):
    cache = ExactCache(tmp_path / "cache.sqlite", "home-a", max_entries=3)
    for i in range(3):
        cache.put(f"command {i}", None, ON)
    assert cache.get("command 0") is not None  # used: now the most recent
    cache.put("command 3", None, ON)
    assert len(cache) == 3
    assert cache.get("command 1") is None and cache.get("command 0") is not None


def test_an_unusable_cache_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(EdgeslmError, match="cannot open the answer cache"):
        ExactCache(bad, "home-a")
    with pytest.raises(EdgeslmError, match="max_entries"):
        ExactCache(tmp_path / "other.sqlite", "home-a", max_entries=0)
