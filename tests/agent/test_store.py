"""The device folder: `active` and `previous` move by one rename each, only they are kept, a rollback swaps
them, done command ids are remembered (bounded), and one agent at a time holds the folder."""

from __future__ import annotations

import os

import pytest

from edgeslm.agent.store import DONE_KEPT, DeviceStore
from edgeslm.errors import ConfigError

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _install(store: DeviceStore, sha: str) -> None:
    store.bundle_dir(sha).mkdir()
    (store.bundle_dir(sha) / "manifest.json").write_text("{}")
    store.write_note(sha, {"name": sha[:1]})


def test_activate_keeps_active_and_previous_only(tmp_path):
    store = DeviceStore(tmp_path)
    assert store.pointer("active") is None
    for sha in (A, B, C):
        _install(store, sha)
        store.activate(sha)
    assert os.readlink(tmp_path / "active") == f"bundles/{C}" and store.pointer("previous") == B
    assert store.installed() == [B, C] and store.note(A) == {} and store.note(C) == {"name": "c"}
    assert store.swap_back(B) == C
    assert (store.pointer("active"), store.pointer("previous")) == (B, C)
    store.activate(B)  # activating what is active changes nothing
    assert (store.pointer("active"), store.pointer("previous")) == (B, C)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary link left behind


def test_a_dangling_or_foreign_pointer_reads_as_unset(tmp_path):
    store = DeviceStore(tmp_path)
    os.symlink(f"bundles/{A}", tmp_path / "active")  # a crash took the folder: no bundle behind the link
    assert store.pointer("active") is None
    (tmp_path / "elsewhere").mkdir()
    os.replace(tmp_path / "active", tmp_path / "old")
    os.symlink("../elsewhere", tmp_path / "active")
    assert store.pointer("active") is None


def test_collect_removes_leftovers(tmp_path):
    store = DeviceStore(tmp_path)
    _install(store, A)
    store.activate(A)
    _install(store, B)  # unpacked, never activated (a crash before the swap)
    (tmp_path / "staging" / f"{C}.123").mkdir()
    store.collect()
    assert store.installed() == [A] and not list((tmp_path / "staging").iterdir())
    _install(store, B)
    store.collect(keep={B})  # an install in progress keeps its bundle
    assert store.installed() == [A, B]


def test_done_ids_are_bounded(tmp_path):
    store = DeviceStore(tmp_path)
    for i in range(DONE_KEPT + 10):
        store.mark_done(f"c{i}")
    done = store.done_ids()
    assert len(done) == DONE_KEPT and done[-1] == f"c{DONE_KEPT + 9}" and "c0" not in done


def test_one_agent_per_folder(tmp_path):
    first, second = DeviceStore(tmp_path), DeviceStore(tmp_path)
    first.lock()
    with pytest.raises(ConfigError, match="another agent"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()
