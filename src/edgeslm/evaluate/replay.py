"""Replay a stream of commands through the tiered assistant, in time order, and score it: intent and
slot accuracy where the stream has labels, the share answered per tier, CPU seconds, estimated
joules, cache hits and false hits, latency percentiles. Optionally one line per answer to --out."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgeslm.config import Config
from edgeslm.errors import ConfigError, DataError
from edgeslm.evaluate.metrics import latency_summary
from edgeslm.formats import strict_json
from edgeslm.runtime.energy import CpuMeter
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.assemble import check_tiers, generative_model

MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ReplayConfig(Config):
    stream: Path
    home: Path
    tiers: list | None = None  # None: assemble.DEFAULT_TIERS, and generative where the policy orders it
    bundle: Path = Path("runs/demo/intent-early-exit")  # the encoder tier's intent bundle (make demo builds it)
    profile: str = "this-machine"
    limit: int | None = None
    out: Path | None = None
    cache_db: Path | None = None  # default: a fresh cache for this replay only
    policy: Path | None = None  # default: the calibrated policy beside the bundle, if there is one
    remote: str | None = None  # the remote tier's OpenAI-compatible endpoint (off by default)
    generative: Path | None = None  # the generative tier's GGUF or llama.cpp bundle (default: the built-in SmolLM2)
    # release the generative tier after this many seconds of the stream's time without a command for it,
    # and load it again ahead of the commands the habits expect (None: it stays loaded)
    idle_release: float | None = None
    prewarm: bool = True  # with idle_release: False loads it only when a command needs it (cold starts)

    def validate(self) -> None:
        if self.tiers is not None:
            check_tiers(list(self.tiers), "ReplayConfig.tiers")
        if self.generative is not None or "generative" in (self.tiers or ()):
            generative_model(self.generative)  # a missing model fails here, before the stream is read
        if self.limit is not None and self.limit < 1:
            raise ConfigError("ReplayConfig.limit must be at least 1")
        if self.idle_release is not None and not self.idle_release > 0:
            raise ConfigError("ReplayConfig.idle_release must be a number of seconds > 0")


@dataclass(frozen=True)
class Command:
    text: str
    label: str | None = None
    slots: dict[str, Any] | None = None
    ts: float | None = None
    context: dict[str, Any] | None = None


def read_stream(path: Path, limit: int | None = None) -> list[Command]:
    """JSONL rows with text, and optionally label, slots, ts, context; ts must not go backwards."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the stream: {exc.strerror or exc}") from None
    rows: list[Command] = []
    with handle:
        for number, raw in enumerate(handle, 1):
            if limit is not None and len(rows) >= limit:
                break
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{where}: a line of {len(raw)} bytes; the limit is {MAX_LINE_BYTES}")
            if not raw.strip():
                continue
            try:
                row = strict_json.loads(raw)
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not UTF-8 (byte {exc.start})") from None
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not JSON: {exc.msg}") from None
            except (ValueError, RecursionError) as exc:  # NaN, a repeated key, a number too long, nesting too deep
                raise DataError(f"{where}: not JSON: {str(exc)[:80] or 'nested too deeply'}") from None
            rows.append(_command(row, where))
            if rows[-1].ts is not None and len(rows) > 1 and rows[-2].ts is not None and rows[-1].ts < rows[-2].ts:
                raise DataError(f"{where}: ts {rows[-1].ts} is before the previous row's {rows[-2].ts}; "
                                "a stream is replayed in time order")
    if not rows:
        raise DataError(f"{path}: no commands")
    return rows


def _command(row: Any, where: str) -> Command:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise DataError(f"{where}: each row is an object with text (a string)")
    unknown = sorted(set(row) - {"text", "label", "slots", "ts", "context"})
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for key, kind in (("label", str), ("slots", dict), ("ts", int | float), ("context", dict)):
        if row.get(key) is not None and (not isinstance(row[key], kind) or isinstance(row[key], bool)):
            raise DataError(f"{where}: {key} has the wrong type ({type(row[key]).__name__})")
    return Command(row["text"], row.get("label"), row.get("slots"), row.get("ts"), row.get("context"))


def slots_match(expected: dict[str, Any], predicted: dict[str, Any]) -> bool:
    """Every expected slot is there with the same value (names compared without case)."""
    def norm(v: Any) -> Any:
        return v.casefold().strip() if isinstance(v, str) else v
    return all(k in predicted and norm(predicted[k]) == norm(v) for k, v in expected.items())


def build_assistant(config: ReplayConfig, store: Path, policy: Any = None) -> Any:
    """`policy`: overrides the config's (calibration scores tiers before any policy exists)."""
    from edgeslm.runtime.profiles import load_profile
    from edgeslm.runtime.tiers.assemble import assemble, tiers_for
    from edgeslm.runtime.tiers.home import load_home

    if policy is None:
        policy, _ = resolve_policy(config)
    tiers = tiers_for(config.tiers, policy, config.remote)
    profile = load_profile(config.profile)
    engine = None
    if "encoder" in tiers:
        from edgeslm.formats.reader import open_bundle
        from edgeslm.runtime.engines.registry import LoadSettings, load_engine

        # the engine the manifest names: the full-depth int8 graph or the early-exit segments, which both
        # give logits(); no spinning: ORT workers that spin between calls burn a core while the other tiers work
        engine = load_engine(open_bundle(Path(config.bundle)), LoadSettings(threads=profile.threads, spin=False))
    residency = None
    if config.idle_release is not None:
        from edgeslm.runtime.tiers.resident import Residency

        residency = Residency(idle_s=config.idle_release, **({} if config.prewarm else {"min_expected": math.inf}))
    return assemble(load_home(config.home), tiers, profile, engine, str(store), policy=policy,
                    remote=config.remote, generative=config.generative, residency=residency)


def resolve_policy(config: ReplayConfig) -> tuple[Any, str]:
    from edgeslm.runtime.tiers.assemble import default_policy
    from edgeslm.runtime.tiers.policy import load_policy

    if config.policy is not None:
        return load_policy(Path(config.policy)), str(config.policy)
    return default_policy(config.bundle)


def replay(config: ReplayConfig, progress: bool = False) -> dict[str, Any]:
    commands = read_stream(Path(config.stream), config.limit)
    with tempfile.TemporaryDirectory() as tmp:
        assistant = build_assistant(config, Path(config.cache_db or Path(tmp) / "cache.sqlite"))
        answers: list[Answer] = []
        meter = CpuMeter()
        with meter:
            for c in tqdm(commands, desc="replay", disable=not progress, unit="cmd"):
                answers.append(assistant.ask(c.text, c.context, c.ts))
        fallbacks = {k: v for t in assistant.tiers for k, v in getattr(t, "fallbacks", {}).items()}
        # the generative tier's model, and why it gave no answer (the warm-up request included), counted
        generative = next(({"model": str(t.model_path), "declined": dict(t.declined)}
                           for t in assistant.tiers if t.name == "generative"), None)
        residency = assistant.residency_report(next((c.ts for c in reversed(commands) if c.ts is not None), None))
        tiers = [*(["habits"] if assistant.habits is not None else []), *(["cache"] if assistant.cache is not None else []),
                 *(["ngrams"] if assistant.quick is not None else []),
                 *(["semantic"] if assistant.semantic is not None else []), *(t.name for t in assistant.tiers)]
        assistant.close()  # the generative tier's llama.cpp context too: a replay after this one needs the memory
    if config.out:
        with Path(config.out).open("w", encoding="utf-8") as f:
            for c, a in zip(commands, answers, strict=True):
                f.write(json.dumps({"text": c.text, "intent": a.intent, "slots": a.slots, "tier": a.tier,
                                    "confidence": round(a.confidence, 4), "latency_ms": a.latency_ms,
                                    "joules": round(a.joules, 6)}, ensure_ascii=False) + "\n")
    return {**score(commands, answers, meter, config, tiers), "remote_fallbacks": fallbacks,
            **({"generative": generative} if generative else {}), **({"residency": residency} if residency else {})}


def score(commands: list[Command], answers: list[Answer], meter: CpuMeter, config: ReplayConfig,
          tiers: list[str]) -> dict[str, Any]:
    """`tiers`: those the assistant was built with, in the order it tries them."""
    labelled = [(c, a) for c, a in zip(commands, answers, strict=True) if c.label is not None]
    with_slots = [(c, a) for c, a in zip(commands, answers, strict=True) if c.slots]
    shares: dict[str, int] = {}
    for a in answers:
        shares[a.tier] = shares.get(a.tier, 0) + 1
    def wrong(c: Command, a: Answer) -> bool:
        return (c.label is not None and a.intent != c.label) or bool(c.slots and not slots_match(c.slots, a.slots))

    hits = [(c, a) for c, a in zip(commands, answers, strict=True) if a.tier in ("cache", "semantic", "lexical")]
    false_hits = [1 for c, a in hits if wrong(c, a)]
    semantic = [(c, a) for c, a in hits if a.tier == "semantic"]
    # the memo serves the tiers' own unsure answer to a word-for-word repeat: wrong exactly when they were
    memo = [(c, a) for c, a in zip(commands, answers, strict=True) if a.tier == "memo"]
    return {
        "stream": str(config.stream), "home": str(config.home), "tiers": tiers, "n": len(answers),
        "intent_accuracy": round(sum(a.intent == c.label for c, a in labelled) / len(labelled), 4) if labelled else None,
        "slot_accuracy": round(sum(slots_match(c.slots, a.slots) for c, a in with_slots) / len(with_slots), 4)
        if with_slots else None,
        "labelled": len(labelled), "with_slots": len(with_slots),
        "tier_share": {k: round(v / len(answers), 4) for k, v in sorted(shares.items())},
        "cpu_seconds": round(meter.cpu_seconds, 3), "wall_seconds": round(meter.wall_seconds, 3),
        "joules": round(sum(a.joules for a in answers), 4),
        "cache": {"hits": len(hits), "false_hits": len(false_hits),
                  "false_hit_rate": round(len(false_hits) / len(hits), 4) if hits else 0.0,
                  "semantic_hits": len(semantic), "semantic_false_hits": sum(wrong(c, a) for c, a in semantic),
                  "lexical_hits": sum(a.tier == "lexical" for _, a in hits),
                  "lexical_false_hits": sum(wrong(c, a) for c, a in hits if a.tier == "lexical"),
                  "memo_hits": len(memo), "memo_wrong": sum(wrong(c, a) for c, a in memo)},
        "latency": latency_summary([a.latency_ms / 1e3 for a in answers]),
        "profile": config.profile, "policy": resolve_policy(config)[1],
    }
