"""Calibrate the router's policy on labelled validation streams (never an evaluation set): every
answering tier answers every command once, with its CPU time measured; then every order of the
tiers and every threshold on a grid is scored as a cascade from those answers, and the cheapest
cascade that reaches the target accuracy wins. When none does, the cheapest one within `tolerance`
of the most accurate wins: a tenth of a point is not worth twice the energy. The cache
remembers answers only above the confidence where the chosen cascade was right at least
`cache_precision` of the time, so a cache hit is as good as a fresh answer.

The validation streams are household weeks of the example homes drawn with seeds the benchmarks
do not use (data/household.py), or a labelled stream of the user's own with `--stream`."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.evaluate.replay import Command, read_stream, slots_match
from edgeslm.runtime.tiers.policy import ANSWERING, Policy

VALIDATION_SEEDS = [101, 102]  # the household benchmarks use seed 0
GRID = 24  # threshold candidates per tier: quantiles of the confidences seen
# The word-similarity floor for the semantic cache's answers before any model runs: the validation weeks
# hold almost no two commands with the same guard that mean different things, so on them any threshold
# looks safe (0.47 did, 2026-12-03). Real speech is not a generator's: only fillers and typos around the
# same words (token set ratio >= 0.9) are trusted without the encoder; calibration may raise it.
LEXICAL_FLOOR = 0.9
# A later tier is skipped after an unsure answer of some intent only when it had at least this many such
# commands on validation and fixed no more of them than it broke: an intent seen a few times keeps it.
SECOND_LOOK_CHANCES = 20


@dataclass(frozen=True)
class CalibrateConfig(Config):
    homes: list  # home YAML paths; with `stream`, exactly one
    bundle: Path = Path("runs/demo/intent-early-exit")
    tiers: list = field(default_factory=lambda: ["templates", "encoder"])
    target_accuracy: float = 0.97
    tolerance: float = 0.002  # when no cascade reaches the target: accuracy given up for the cheapest
    cache_precision: float = 0.995
    stream: Path | None = None  # a labelled stream of the user's; default: validation household weeks
    seeds: list = field(default_factory=lambda: list(VALIDATION_SEEDS))
    profile: str = "this-machine"

    def validate(self) -> None:
        if not self.homes:
            raise ConfigError("CalibrateConfig.homes: give at least one home")
        if self.stream is not None and len(self.homes) != 1:
            raise ConfigError("CalibrateConfig: a stream belongs to one home; give exactly one with it")
        unknown = [t for t in self.tiers if t not in ANSWERING]
        if unknown or not self.tiers:
            raise ConfigError(f"CalibrateConfig.tiers: {', '.join(unknown) or 'none'}; choose from {', '.join(ANSWERING)}")
        if not 0 <= self.tolerance < 0.1:
            raise ConfigError("CalibrateConfig.tolerance: a share of accuracy in [0, 0.1)")
        for name in ("target_accuracy", "cache_precision"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"CalibrateConfig.{name}: a share in (0, 1]")


@dataclass
class Table:
    """What each tier answered on each command: confidence (-1: no answer), right or not, CPU seconds."""

    tiers: list[str]
    confidence: np.ndarray  # [commands, tiers]
    correct: np.ndarray  # [commands, tiers] bool
    cpu: np.ndarray  # [commands, tiers] seconds
    # for the semantic cache, when the encoder gives embeddings: per command its embedding, and the key
    # (home, context, guard) an entry must share to be compared, and what it means (intent and slots)
    embedding: np.ndarray | None = None  # [commands, hidden]
    guard: list[tuple[str, str, str]] = field(default_factory=list)
    meaning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    # a tier that narrows its search to the intents an earlier tier found likeliest (the templates after
    # the encoder): its (confidence, correct, cpu) columns when it comes after that tier, by tier index
    narrowed: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    narrowed_after: int | None = None  # the index of the tier whose candidates it narrows to
    scan_guard: list[tuple[str, str, str]] = field(default_factory=list)  # the guard from the home matcher's scan alone
    intent: np.ndarray | None = None  # [commands, tiers] the intent each tier answered ("" for none)
    # the encoder bundle's n-gram head, when it has one: per command its (confidence, right) [commands] each
    quick: tuple[np.ndarray, np.ndarray] | None = None


def answer_table(config: CalibrateConfig, progress: bool = False) -> Table:
    from edgeslm.evaluate.replay import ReplayConfig, build_assistant
    from edgeslm.runtime.tiers.cache import context_key, normalize
    from edgeslm.runtime.tiers.semantic import guard_key

    confidence, correct, cpu, intents = [], [], [], []
    quick: list[tuple[float, bool]] = []
    embeddings, guards, meanings, texts, scan_guards = [], [], [], [], []
    narrow: dict[str, list[tuple[float, bool, float, str]]] = {}
    # the encoder first: a tier that narrows to its candidates is also scored that way
    names = sorted(config.tiers, key=lambda n: n != "encoder")
    for home, commands in _streams(config):
        replay_config = ReplayConfig(stream=Path("-"), home=Path(home), tiers=list(config.tiers), bundle=config.bundle,
                                     profile=config.profile)
        assistant = build_assistant(replay_config, Path(":memory:"), Policy())
        by_name = {t.name: t for t in assistant.tiers}
        for c in tqdm(commands, desc=f"calibrate {Path(home).stem}", disable=not progress, unit="cmd"):
            row: dict[str, tuple[float, bool, float, str]] = {}
            candidates: tuple[str, ...] = ()
            for name in names:
                tier = by_name[name]
                started = time.process_time()
                if getattr(tier, "embeds", False):  # the probe the router makes; the answer goes on from it
                    _, embedding, found = tier.probe(c.text, c.context)
                    embeddings.append(embedding)
                    guards.append((str(home), context_key(c.context), guard_key(c.text, found)))
                    meanings.append(json.dumps([c.label, c.slots or {}], sort_keys=True))
                    texts.append(normalize(c.text))
                    scan_guards.append((str(home), context_key(c.context),
                                        guard_key(c.text, tier.matcher.slots(c.text, None, c.context))))
                answer = tier.answer(c.text, c.context)
                row[name] = _scored(c, answer, time.process_time() - started)
                if getattr(tier, "quick_head", None) is not None:
                    quick.append(_scored(c, tier.quick(c.text, c.context), 0.0)[:2])
                if answer is not None and name == "encoder":
                    candidates = answer.candidates
                if candidates and getattr(tier, "narrows", False):
                    started = time.process_time()
                    answer = tier.answer(c.text, c.context, candidates)
                    narrow.setdefault(name, []).append(_scored(c, answer, time.process_time() - started))
            confidence.append([row[n][0] for n in config.tiers])
            correct.append([row[n][1] for n in config.tiers])
            cpu.append([row[n][2] for n in config.tiers])
            intents.append([row[n][3] for n in config.tiers])
    columns = {config.tiers.index(n): tuple(np.array(col) for col in list(zip(*rows, strict=True))[:3])
               for n, rows in narrow.items() if len(rows) == len(confidence)}
    return Table(list(config.tiers), np.array(confidence), np.array(correct, dtype=bool), np.array(cpu),
                 np.stack(embeddings) if embeddings else None, guards, meanings, texts, columns,
                 config.tiers.index("encoder") if columns else None, scan_guards, np.array(intents, dtype=object),
                 (np.array([q[0] for q in quick]), np.array([q[1] for q in quick], dtype=bool))
                 if quick and len(quick) == len(confidence) else None)


def _scored(c: Command, answer: Any, cpu: float) -> tuple[float, bool, float, str]:
    """(confidence or -1 for no answer, right or not, CPU seconds, the intent or "")."""
    ok = answer is not None and answer.intent == c.label and (not c.slots or slots_match(c.slots, answer.slots))
    return (-1.0 if answer is None else answer.confidence, ok, cpu, "" if answer is None else answer.intent)


def _streams(config: CalibrateConfig) -> list[tuple[str, list[Command]]]:
    if config.stream is not None:
        commands = read_stream(Path(config.stream))
        if any(c.label is None for c in commands):
            raise ConfigError(f"{config.stream}: calibration needs a label on every command")
        return [(str(config.homes[0]), commands)]
    from edgeslm.data.household import week
    from edgeslm.runtime.tiers.home import load_home

    out = []
    for home in config.homes:
        rows = [r for seed in config.seeds for r in week(load_home(home), seed=seed)]
        # "the usual" and "again" are the habits' to answer, not an answering tier's
        out.append((str(home), [Command(r.text, r.label, r.slots, r.ts, r.context) for r in rows
                                if not _is_habit_phrase(r.text)]))
    return out


def _is_habit_phrase(text: str) -> bool:
    from edgeslm.runtime.tiers.habits import habit_phrase

    return habit_phrase(text) is not None


def cascade(table: Table, order: tuple[int, ...], thresholds: tuple[float, ...],
            skip: dict[str, list[str]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score one cascade from the table: per command, right or not, its confidence and its CPU
    seconds. A tier stops the descent at or above its threshold; when none does, the most confident
    answer seen is given. `skip` (Policy.skip_after): a tier is not tried, nor paid for, after an unsure
    answer of one of its intents, as the router does."""
    n = len(table.confidence)
    done = np.zeros(n, dtype=bool)
    ok = np.zeros(n, dtype=bool)
    conf = np.full(n, -1.0)
    cost = np.zeros(n)
    best_conf = np.full(n, -1.0)
    best_ok = np.zeros(n, dtype=bool)
    best_intent = np.full(n, "", dtype=object)
    for step, (tier, threshold) in enumerate(zip(order, (*thresholds, 0.0)[:len(order)], strict=True)):
        live = ~done
        if skip and table.intent is not None and skip.get(table.tiers[tier]):
            live &= ~((best_conf >= 0) & np.isin(best_intent, skip[table.tiers[tier]]))
        c, right, spent = _column(table, tier, list(order[:step]))
        cost[live] += spent[live]
        better = live & (c > best_conf)
        best_conf[better], best_ok[better] = c[better], right[better]
        if table.intent is not None:
            best_intent[better] = table.intent[better, tier]
        take = live & (c >= threshold) & (c >= 0)  # c < 0: the tier gave no answer
        stop = ~done if step == len(order) - 1 else take
        ok[stop] = np.where(take[stop], right[stop], best_ok[stop])
        conf[stop] = np.where(take[stop], c[stop], best_conf[stop])
        done |= stop
    return ok, conf, cost


def choose(table: Table, target: float, cache_precision: float,
           tolerance: float = 0.0) -> tuple[Policy, dict[str, Any]]:
    grids = []
    for i in range(len(table.tiers)):
        seen = table.confidence[:, i][table.confidence[:, i] >= 0]
        qs = np.unique(np.quantile(seen, np.linspace(0, 1, GRID))) if len(seen) else np.array([1.0])
        grids.append(sorted({0.0, 1.0, *np.round(qs, 4).tolist()}))
    scored = []  # (accuracy, cpu, order, thresholds)
    for order in itertools.permutations(range(len(table.tiers))):
        for thresholds in itertools.product(*(grids[t] for t in order[:-1])):
            ok, _, cost = cascade(table, order, thresholds)
            scored.append((float(ok.mean()), float(cost.mean()), order, thresholds))
    accuracy, cpu, order, thresholds = pick(scored, target, tolerance)
    ok, conf, _ = cascade(table, order, thresholds)
    cache_from = _precise_from(conf, ok, cache_precision)
    names = [table.tiers[i] for i in order]
    solo = {name: {"accuracy": round(float(table.correct[:, i].mean()), 4),
                   "answered": round(float((table.confidence[:, i] >= 0).mean()), 4),
                   "cpu_ms": round(float(table.cpu[:, i].mean()) * 1e3, 3)} for i, name in enumerate(table.tiers)}
    most = max(scored, key=lambda s: (s[0], -s[1]))
    measured = {"commands": len(ok), "accuracy": round(accuracy, 4), "cpu_ms_per_answer": round(cpu * 1e3, 3),
                "reached_target": accuracy >= target, "tolerance": tolerance, "tiers_alone": solo,
                "most_accurate": {"order": [table.tiers[i] for i in most[2]], "accuracy": round(most[0], 4),
                                  "cpu_ms_per_answer": round(most[1] * 1e3, 3)}}
    policy = Policy(order=names, thresholds={n: float(t) for n, t in zip(names, thresholds, strict=False)},
                    cache_from=cache_from, target_accuracy=target)
    return policy, measured


def second_look(table: Table, policy: Policy, chances: int = SECOND_LOOK_CHANCES) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Which unsure answers a later tier of the policy's cascade is not worth trying on: per later tier and
    per intent of the most confident earlier answer, the commands that reached it (`chances`), those its
    answer made right (`fixes`), made wrong (`breaks`), and made sure enough to be cached (`confirms`: right
    both times, its confidence at least the policy's cache_from; a cached answer seeds the semantic cache, which
    then answers the command's paraphrases: on a replayed household week, skipping the templates' confirmations
    of the encoder's HassTurnOn cost a point of accuracy). Skipped where it had at least `chances` and
    fixed and confirmed no more than it broke: the validation accuracy cannot drop, and the CPU it cost is saved.
    Returns (Policy.skip_after, what was counted, and the cascade's accuracy and CPU with the skips)."""
    if table.intent is None:  # a table without the tiers' intents: nothing to tell them apart by
        return {}, {}
    order = [table.tiers.index(name) for name in policy.order if name in table.tiers]
    counts: dict[str, dict[str, list[int]]] = {}
    for k in range(len(table.confidence)):
        best = None  # the most confident earlier answer: (confidence, right, intent)
        for step, t in enumerate(order):
            name = table.tiers[t]
            c, right, _ = (col[k] for col in _column(table, t, order[:step]))
            taken = c >= 0 and (c >= policy.thresholds.get(name, 0.0) or step == len(order) - 1)
            if best is not None:
                n = counts.setdefault(name, {}).setdefault(best[2], [0, 0, 0, 0])
                n[0] += 1
                n[1] += bool(taken and right and not best[1])
                n[2] += bool(taken and best[1] and not right)
                n[3] += bool(taken and right and best[1] and c >= policy.cache_from)
            if taken:
                break
            if c >= 0 and (best is None or c > best[0]):
                best = (c, bool(right), str(table.intent[k, t]))
    skip = {tier: sorted(i for i, (n, fixes, breaks, confirms) in per.items() if n >= chances and fixes + confirms <= breaks)
            for tier, per in counts.items()}
    skip = {tier: intents for tier, intents in skip.items() if intents}
    ok, _, cost = cascade(table, tuple(order), tuple(policy.thresholds.get(table.tiers[t], 0.0) for t in order[:-1]), skip)
    return skip, {"chances": chances, "counts": {t: {i: dict(zip(("chances", "fixes", "breaks", "confirms"), v, strict=True))
                                                    for i, v in sorted(per.items())} for t, per in counts.items()},
                  "accuracy": round(float(ok.mean()), 4), "cpu_ms_per_answer": round(float(cost.mean()) * 1e3, 3)}


def _column(table: Table, tier: int, before: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tier's (confidence, correct, cpu) columns: its narrowed search when it comes after the tier it narrows to."""
    if tier in table.narrowed and table.narrowed_after in before:
        return table.narrowed[tier]
    return table.confidence[:, tier], table.correct[:, tier], table.cpu[:, tier]


def semantic_pairs(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """What a semantic cache would have served on the validation commands in their order: for each
    command, the nearest earlier one with the same key said another way; (cosine, same meaning) [pairs]."""
    cos, same = [], []
    if table.embedding is None:
        return np.zeros(0), np.zeros(0, dtype=bool)
    earlier: dict[tuple[str, str, str], list[int]] = {}
    for i, key in enumerate(table.guard):
        js = [j for j in earlier.get(key, []) if table.text[j] != table.text[i]]  # the same words: the exact cache's
        if js:
            sims = table.embedding[js] @ table.embedding[i]
            best = int(sims.argmax())
            cos.append(float(sims[best]))
            same.append(table.meaning[js[best]] == table.meaning[i])
        earlier.setdefault(key, []).append(i)
    return np.array(cos), np.array(same, dtype=bool)


def lexical_pairs(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """Like semantic_pairs, by words before any model runs: for each command, the earlier one whose full
    guard is this command's scanned guard and whose words are nearest (token set ratio / 100), said
    another way; (similarity, same meaning) [pairs]."""
    from rapidfuzz import fuzz, process

    sim, same = [], []
    earlier: dict[tuple[str, str, str], list[int]] = {}
    for i, key in enumerate(table.guard):
        js = [j for j in earlier.get(table.scan_guard[i], []) if table.text[j] != table.text[i]] if table.scan_guard else []
        if js:
            _, score, k = process.extractOne(table.text[i], [table.text[j] for j in js], scorer=fuzz.token_set_ratio)
            sim.append(score / 100)
            same.append(table.meaning[js[k]] == table.meaning[i])
        earlier.setdefault(key, []).append(i)
    return np.array(sim), np.array(same, dtype=bool)


def semantic_threshold(cos: np.ndarray, same: np.ndarray, precision: float, min_hits: int = 20) -> float:
    """The lowest score (cosine, or word similarity) above which at least `min_hits` nearest pairs meant the same at least `precision`
    of the time; 1.01 (off) when there is no such cosine."""
    return lossless_from(cos, np.ones(len(cos), dtype=bool), ~same, precision, min_hits)


def quick_threshold(conf: np.ndarray, right: np.ndarray, had: np.ndarray, precision: float, min_hits: int = 20) -> float:
    """The n-gram head's `ngrams_from`: the lowest confidence above which at least `min_hits` of its answers
    (conf -1: none) lost at most 1 - `precision` of them to the cascade it stands in front of (`had`: the
    cascade was right; its answer wrong: lost). Not its own precision: a command both get wrong (a generated
    label the home matcher reads another way) costs nothing by answering it sooner. 1.01 (off) when none."""
    answered = conf >= 0
    return lossless_from(conf, answered, had & ~right & answered, precision, min_hits)


def lossless_from(score: np.ndarray, answered: np.ndarray, lost: np.ndarray, precision: float, min_hits: int) -> float:
    """The lowest score at which, over the answers scoring at least as high (at least `min_hits` of them),
    at most 1 - `precision` were `lost`; 1.01 (off) when there is no such score."""
    order = np.argsort(-score, kind="stable")
    lost_so_far = np.cumsum(lost[order])
    n = np.arange(1, len(score) + 1)
    good = [k for k in np.nonzero(lost_so_far <= (1 - precision) * n + 1e-9)[0] if k + 1 >= min_hits and answered[order][k]]
    return float(round(score[order][good[-1]], 4)) if good else 1.01


def pick(scored: list[tuple], target: float, tolerance: float) -> tuple:
    """(accuracy, cpu, ...) candidates -> the cheapest reaching `target`; when none does, the cheapest
    within `tolerance` of the most accurate (ties on CPU go to the more accurate)."""
    floor = target if any(s[0] >= target for s in scored) else max(s[0] for s in scored) - tolerance
    return min((s for s in scored if s[0] >= floor - 1e-12), key=lambda s: (s[1], -s[0]))


def _precise_from(conf: np.ndarray, ok: np.ndarray, precision: float) -> float:
    """The lowest confidence above which answers were right at least `precision` of the time (1.0
    when even the most confident ones were not)."""
    order = np.argsort(-conf)
    right = np.cumsum(ok[order]) / np.arange(1, len(ok) + 1)
    good = np.nonzero(right >= precision)[0]
    if not len(good):
        return 1.0
    return float(min(1.0, max(0.0, conf[order][good[-1]])))


def calibrate(config: CalibrateConfig, progress: bool = False) -> Policy:
    table = answer_table(config, progress)
    policy, measured = choose(table, config.target_accuracy, config.cache_precision, config.tolerance)
    cos, same = semantic_pairs(table)
    semantic_from = semantic_threshold(cos, same, config.cache_precision)
    hits = cos >= semantic_from
    measured["semantic"] = {"pairs": len(cos), "from": semantic_from, "hits": int(hits.sum()),
                            "wrong_hits": int((hits & ~same).sum())}
    sim, alike = lexical_pairs(table)
    lexical_from = max(LEXICAL_FLOOR, semantic_threshold(sim, alike, config.cache_precision))
    hits = sim >= lexical_from
    measured["lexical"] = {"pairs": len(sim), "from": lexical_from, "hits": int(hits.sum()),
                           "wrong_hits": int((hits & ~alike).sum())}
    ngrams_from = 1.01
    if table.quick is not None:  # answers before any model runs, where they lose what the cascade had right rarely
        conf, right = table.quick
        had, _, _ = cascade(table, tuple(table.tiers.index(n) for n in policy.order),
                            tuple(policy.thresholds.get(n, 0.0) for n in policy.order[:-1]))
        ngrams_from = quick_threshold(conf, right, had, config.cache_precision)
        taken = (conf >= ngrams_from) & (conf >= 0)
        measured["ngrams"] = {"commands": len(conf), "accuracy_alone": round(float(right.mean()), 4), "from": ngrams_from,
                              "answers": int(taken.sum()), "wrong": int((taken & ~right).sum()),
                              "cascade_wrong": int((taken & ~had).sum()), "lost": int((taken & had & ~right).sum())}
    skip, looked = second_look(table, policy)
    measured["second_look"] = looked
    policy = Policy.from_dict({**policy.to_dict(), "semantic_from": semantic_from, "lexical_from": lexical_from,
                               "ngrams_from": ngrams_from, "skip_after": skip})
    source = {"stream": str(config.stream)} if config.stream else {"household_weeks": list(config.seeds)}
    return Policy.from_dict({**policy.to_dict(), "calibration": {
        **measured, **source, "homes": [Path(h).name for h in config.homes], "bundle": Path(config.bundle).name,
        "cache_precision": config.cache_precision, "profile": config.profile}})
