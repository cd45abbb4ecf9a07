"""The device's state folder, owned by one agent at a time:

  bundles/<sha256>/     an installed bundle (manifest.json at its root), named by its archive's sha256
  bundles/<sha256>.json what the agent measured when it checked it (probe accuracy, signer), and the policy it
                        serves with: the `active` link's one rename swaps bundle and policy together
  policies/<sha256>.json  a verified policy file (named by the sha256 of its bytes) with its .sig beside it
  active, previous      symbolic links to bundles/<sha256>, each replaced in one rename (os.replace)
  downloads/<sha>.part  an archive being downloaded, kept across restarts so the download resumes
  staging/              archives being unpacked
  journal/              commands received and not yet done: a restarted agent carries on with them
  done.json             ids of the last commands done, so a QoS-1 redelivery is not acted on twice
  agent.lock            flock'ed while an agent runs here

Only `active` and `previous` are kept, with the policies their notes name: anything else under bundles/ and
policies/ is removed after each swap.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeslm.agent.protocol import SHA256
from edgeslm.errors import ConfigError
from edgeslm.formats.durable import fsync_dir

DONE_KEPT = 256  # command ids remembered: more than the commands a control plane keeps queued for one device
POINTERS = ("active", "previous")


class DeviceStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        for sub in ("bundles", "policies", "downloads", "staging", "journal"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock_fh: Any = None

    # --- one agent per folder ---
    def lock(self) -> None:
        fh = (self.root / "agent.lock").open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigError(f"{self.root}: another agent is running on this state folder") from None
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    # --- bundles and pointers ---
    def bundle_dir(self, sha: str) -> Path:
        return self.root / "bundles" / sha

    def partial(self, sha: str) -> Path:
        return self.root / "downloads" / f"{sha}.part"

    def pointer(self, name: str) -> str | None:
        """The sha256 `active` or `previous` points to, None when unset or dangling."""
        try:
            target = os.readlink(self.root / name)
        except (FileNotFoundError, OSError):
            return None
        sha = Path(target).name
        if not SHA256.fullmatch(sha) or not self.bundle_dir(sha).is_dir():
            return None
        return sha

    def set_pointer(self, name: str, sha: str | None) -> None:
        """Point `name` at bundles/<sha> in one rename: a reader, or a crash, sees the old target or the new one."""
        link = self.root / name
        if sha is None:
            link.unlink(missing_ok=True)
        else:
            tmp = self.root / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            os.symlink(f"bundles/{sha}", tmp)
            os.replace(tmp, link)
        fsync_dir(self.root)

    def activate(self, sha: str) -> None:
        """bundles/<sha> serves from now on; what served before becomes `previous`."""
        old = self.pointer("active")
        if old != sha:
            if old is not None:
                self.set_pointer("previous", old)  # a crash here leaves active on the old bundle: still consistent
            self.set_pointer("active", sha)
        self.collect()

    def swap_back(self, to: str) -> str | None:
        """Make `to` (an installed bundle) active again; the bundle it replaces becomes `previous`."""
        old = self.pointer("active")
        if old is not None and old != to:
            self.set_pointer("previous", old)
        elif old == to:
            self.set_pointer("previous", None)
        self.set_pointer("active", to)
        self.collect()
        return old

    def policy_path(self, sha: str) -> Path:
        return self.root / "policies" / f"{sha}.json"

    def policy_of(self, bundle_sha: str | None) -> str | None:
        """The sha256 of the policy an installed bundle serves with (its note's), None when it has none."""
        sha = self.note(bundle_sha).get("policy") if bundle_sha else None
        return sha if isinstance(sha, str) and SHA256.fullmatch(sha) else None

    def add_policy(self, sha: str, staged: Path) -> None:
        """Move a verified policy file and its signature (POLICY.sig) into policies/, each in one rename."""
        from edgeslm.formats.signing import policy_signature_path

        target = self.policy_path(sha)
        os.replace(policy_signature_path(staged), policy_signature_path(target))
        os.replace(staged, target)
        fsync_dir(target.parent)

    def kept(self) -> set[str]:
        return {sha for sha in (self.pointer(name) for name in POINTERS) if sha}

    def collect(self, keep: set[str] | None = None) -> None:
        """Remove every bundle neither pointer nor `keep` names, with its note, and whatever staging holds."""
        keep = self.kept() | (keep or set())
        for entry in (self.root / "bundles").iterdir():
            sha = entry.name.removesuffix(".json")
            if sha not in keep:
                _remove(entry)
        policies = {self.policy_of(sha) for sha in keep} - {None}
        for entry in (self.root / "policies").iterdir():
            if entry.name.split(".", 1)[0] not in policies:
                _remove(entry)
        for entry in (self.root / "staging").iterdir():  # (only the worker unpacks, and never while collecting)
            _remove(entry)

    def installed(self) -> list[str]:
        return sorted(p.name for p in (self.root / "bundles").iterdir() if p.is_dir() and SHA256.fullmatch(p.name))

    def note(self, sha: str) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "bundles" / f"{sha}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_note(self, sha: str, data: dict[str, Any]) -> None:
        write_json(self.root / "bundles" / f"{sha}.json", data)

    # --- commands ---
    def done_ids(self) -> list[str]:
        try:
            data = json.loads((self.root / "done.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [x for x in data if isinstance(x, str)] if isinstance(data, list) else []

    def mark_done(self, command_id: str) -> None:
        ids = [x for x in self.done_ids() if x != command_id] + [command_id]
        write_json(self.root / "done.json", ids[-DONE_KEPT:])

    def journal(self) -> list[Path]:
        return sorted((self.root / "journal").glob("*.cmd"))

    def add_to_journal(self, seq: int, command_id: str, payload: bytes) -> Path:
        path = self.root / "journal" / f"{seq:020d}-{command_id}.cmd"
        write_bytes(path, payload)
        return path


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename over it: after a crash, the old file or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

