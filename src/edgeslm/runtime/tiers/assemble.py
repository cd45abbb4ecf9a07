"""One place that builds the assistant from tier names, for `replay` and `serve --home` alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeslm.errors import ConfigError
from edgeslm.runtime.profiles import DeviceProfile
from edgeslm.runtime.tiers.home import Home
from edgeslm.runtime.tiers.policy import POLICY_FILE, Policy, load_policy
from edgeslm.runtime.tiers.router import Assistant

TIERS = ("habits", "cache", "templates", "encoder", "remote")
DEFAULT_TIERS = ("habits", "cache", "templates", "encoder")  # remote only when an endpoint is given  # the order answers are tried in


def check_tiers(tiers: list[str], where: str) -> None:
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        raise ConfigError(f"{where}: {', '.join(unknown) or 'none given'}; choose from {', '.join(TIERS)}")
    if not set(tiers) - {"cache", "habits"}:
        raise ConfigError(f"{where}: the cache and habits only repeat what another tier answered; add one")


def assemble(home: Home, tiers: list[str], profile: DeviceProfile, engine: Any = None, store: str = ":memory:",
             warm: bool = True, policy: Policy | None = None, remote: str | None = None) -> Assistant:
    """`engine`: anything with `predict(texts)` (the encoder tier's intent classifier); `store`: the
    SQLite file that keeps the cache and habits across restarts; `policy`: the router's order and
    thresholds (the built-in default when None); `remote`: the OpenAI-compatible endpoint of the
    remote tier (off unless given; it sees only PII-redacted text)."""
    check_tiers(tiers, "tiers")
    answering: list[Any] = []
    if "templates" in tiers:
        from edgeslm.runtime.tiers.templates import TemplateTier

        answering.append(TemplateTier(home))
    if "encoder" in tiers:
        from edgeslm.runtime.tiers.encoder import EncoderTier
        from edgeslm.runtime.tiers.slots import HomeMatcher

        if engine is None:
            raise ConfigError("the encoder tier needs an intent classifier bundle")
        answering.append(EncoderTier(engine, HomeMatcher(home)))
    if "remote" in tiers and not remote:
        raise ConfigError("the remote tier needs an endpoint: --remote URL (an OpenAI-compatible server)")
    if warm:  # hassil compiles its grammar on first use (about 0.4 s): not on a user's request
        for tier in answering:
            tier.answer("turn on the light")
    if "remote" in tiers:  # not warmed: that would send a request to the endpoint at every start
        from edgeslm.runtime.tiers.remote import RemoteTier

        answering.append(RemoteTier(str(remote), home, api_key=os.environ.get("EDGESLM_REMOTE_API_KEY")))
    cache = habits = None
    if "cache" in tiers:
        from edgeslm.runtime.tiers.cache import ExactCache

        cache = ExactCache(store, home.digest())
    if "habits" in tiers:
        from edgeslm.runtime.tiers.habits import Habits

        habits = Habits(store, home.digest())
    return Assistant(answering, profile, policy, cache=cache, habits=habits)


def default_policy(bundle: Any) -> tuple[Policy, str]:
    """The policy `make demo` wrote beside the bundles, else the built-in one; and which it was."""
    path = Path(bundle).parent / POLICY_FILE
    if path.is_file():
        return load_policy(path), str(path)
    return Policy(), "built-in (no calibrated policy beside the bundle)"
