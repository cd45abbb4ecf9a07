"""The assistant: each command goes to the habits and the caches first, then down the answering tiers
in the policy's order until one answers with at least its tier's confidence threshold; if none
does, the most confident answer is given. Answers confident enough (the policy's `cache_from`) are
remembered by the exact cache, which then answers the same command first next time, and by the
semantic cache, which answers it said another way (when the encoder gives embeddings and the policy's
`semantic_from` is at most 1). An answer no tier was sure enough of is not remembered by the caches, but
the same command said the same way again gets the same tiers' same answer: a bounded memo in memory
serves it (tier "memo") instead of running the tiers again. Before any model runs, the encoder bundle's
n-gram head answers what it is sure of (tier "ngrams", at the policy's `ngrams_from`: where on validation
it lost almost nothing the cascade had right), and the exact cache and, by words, the semantic cache
remember it. Every answer says which tier gave it,
how sure it was, and what it cost (latency, and joules from the device profile's power model).

With a `Residency`, the heavy tiers (resident.py) are released when idle and loaded again ahead of the
commands the habits expect for them; `tick` is that timer, stepped by the stream's own time in a replay."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import replace
from typing import Any, Protocol

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.energy import CpuMeter
from edgeslm.runtime.engines.onnx import MAX_REQUEST_CHARS
from edgeslm.runtime.profiles import DeviceProfile
from edgeslm.runtime.text import text_problem
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.cache import ExactCache, context_key, normalize
from edgeslm.runtime.tiers.habits import Habits
from edgeslm.runtime.tiers.policy import ANSWERING, Policy
from edgeslm.runtime.tiers.resident import Residency, Resident
from edgeslm.runtime.tiers.semantic import SemanticCache, guard_key

MAX_COMMAND_CHARS = MAX_REQUEST_CHARS  # the same limit as /v1/classify's texts
# Unsure answers kept for a command repeated word for word (about 1 kB each). In a replayed household
# week a third of the commands the caches did not answer were such repeats, each paying the encoder
# and often hassil again (benchmarks/household_week.py).
MEMO_ENTRIES = 1024


class AssistError(EdgeslmError):
    """A command no tier can take (empty, too long, not text), said plainly."""


class Tier(Protocol):
    name: str

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer | None: ...


class Assistant:
    def __init__(self, tiers: list[Tier], profile: DeviceProfile, policy: Policy | None = None,
                 cache: ExactCache | None = None, habits: Habits | None = None, semantic: SemanticCache | None = None,
                 residency: Residency | None = None, ngrams: bool = False):
        if not tiers:
            raise EdgeslmError("the assistant needs at least one tier besides the cache and habits")
        answering = [t.name for t in tiers if t.name in ANSWERING]
        self.policy = (policy or Policy()).restrict(answering) if answering else (policy or Policy())
        rank = {name: i for i, name in enumerate(self.policy.order)}
        self.tiers = sorted(tiers, key=lambda t: rank.get(t.name, len(rank)))  # stable: others keep their place
        self.profile, self.cache, self.habits = profile, cache, habits
        encoder = next((t for t in self.tiers if t.name == "encoder" and getattr(t, "embeds", False)), None)
        on = semantic is not None and encoder is not None and self.policy.semantic_from <= 1.0
        self.semantic, self.encoder = (semantic, encoder) if on else (None, None)
        # `ngrams`: ask the encoder bundle's n-gram head first, when it has one and the policy says from where
        self.quick = next((t for t in self.tiers if t.name == "encoder" and getattr(t, "quick_head", None) is not None),
                          None) if ngrams and self.policy.ngrams_from <= 1.0 else None
        self.skip_after = {name: frozenset(intents) for name, intents in self.policy.skip_after.items()}
        self.answered: Counter = Counter()
        self.memo: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.residency = residency
        self.residents = [t for t in self.tiers if isinstance(t, Resident)]
        self._ticked: float | None = None  # the timer's last look, on the assistant's clock
        self._clock_lock = threading.Lock()
        self._stop_clock: threading.Event | None = None

    def ask(self, text: Any, context: dict[str, Any] | None = None, ts: float | None = None) -> Answer:
        """`ts`: when the command was said (a replayed stream's own time); habits learn only from before it."""
        text = check_command(text)
        if self.residents and ts is not None:
            self._catch_up(ts)  # a replay: what the timer did between the last command and this one
        meter = CpuMeter()
        started = time.perf_counter()
        with meter:
            answer = self.habits.answer(text, context, ts) if self.habits is not None else None
            if answer is None:
                answer = self._descend(text, context)
            if self.habits is not None and answer.tier != "none":
                self.habits.observe(answer, context, ts)
        answer.latency_ms = round((time.perf_counter() - started) * 1e3, 3)
        answer.joules = meter.joules(self.profile)
        self.answered[answer.tier] += 1
        if self.residents:
            now = time.time() if ts is None else ts
            for r in self.residents:
                r.started(now)
                if r.used:
                    r.used, r.last_used = False, now
        return answer

    def tick(self, now: float) -> None:
        """The residency timer's look at `now`: release a kept tier idle for `idle_s` unless the habits
        expect commands for it within `lead_s`; load a released one they expect commands for."""
        if self.residency is None or not self.residents:
            return
        cfg = self.residency
        expected = self.habits.expect(now, cfg.lead_s, tuple(r.name for r in self.residents)) \
            if self.habits is not None else {}
        for r in self.residents:
            soon = expected.get(r.name, 0.0) >= cfg.min_expected
            if r.loaded and not soon and r.last_used is not None and now - r.last_used >= cfg.idle_s:
                r.release(now)
            elif not r.loaded and soon:
                r.warm(now)

    def _catch_up(self, now: float) -> None:
        with self._clock_lock:
            if self._ticked is None:
                self._ticked = now
                for r in self.residents:
                    r.started(now)
                return
            step = self.residency.tick_s if self.residency is not None else None
            while step is not None and self._ticked + step < now:
                self._ticked += step
                self.tick(self._ticked)

    def residency_report(self, until: float | None) -> dict[str, Any]:
        return {r.name: r.report(until) for r in self.residents}

    def start_clock(self) -> None:
        """The server's residency timer: `tick` on the wall clock every `tick_s`, in a thread of its own
        (a replay steps it by the stream's time instead)."""
        if self.residency is None or not self.residents or self._stop_clock is not None:
            return
        stop, every = threading.Event(), self.residency.tick_s
        for r in self.residents:
            r.started(time.time())

        def run() -> None:
            while not stop.wait(every):
                self.tick(time.time())
        self._stop_clock = stop
        threading.Thread(target=run, name="residency", daemon=True).start()

    def close(self) -> None:
        """Commit what was learned and close the stores, and the tiers that hold a model's context."""
        if self._stop_clock is not None:
            self._stop_clock.set()
        for part in (self.cache, self.semantic, self.habits, *self.tiers):
            if part is not None and hasattr(part, "close"):
                part.close()

    def _descend(self, text: str, context: dict[str, Any] | None) -> Answer:
        if self.cache is not None and (hit := self.cache.get(text, context)) is not None:
            return hit
        key = (normalize(text), context_key(context))
        if self.cache is not None:
            with self._memo_lock:  # the server answers commands in two threads
                memo = self.memo.get(key)
                if memo is not None:
                    self.memo.move_to_end(key)
            if memo is not None:
                return replace(memo, tier="memo")
        seen = None  # the semantic cache's key for this command: its embedding and its guard
        if self.semantic is not None and self.encoder is not None and self.policy.lexical_from <= 1.0:
            scanned = guard_key(text, self.encoder.matcher.slots(text, None, context))  # no model run
            if (hit := self.semantic.words(text, scanned, context, self.policy.lexical_from)) is not None:
                if self.cache is not None:
                    self.cache.put(text, context, hit)
                return hit
        if self.quick is not None and (quick := self.quick.quick(text, context)) is not None \
                and quick.confidence >= self.policy.ngrams_from:
            if self.cache is not None:
                self.cache.put(text, context, quick)
            if self.semantic is not None:  # its paraphrases with fillers and typos, by words (guard from the same scan)
                self.semantic.put(text, None, guard_key(text, quick.slots), context, quick)
            return quick
        if self.semantic is not None and self.encoder is not None:
            _, embedding, found = self.encoder.probe(text, context)  # the encoder goes on from this pass
            seen = (embedding, guard_key(text, found))
            if (hit := self.semantic.get(*seen, context, self.policy.semantic_from)) is not None:
                if self.cache is not None:  # said this way again, it is an exact hit
                    self.cache.put(text, context, hit)
                return hit
        best: Answer | None = None
        candidates: tuple[str, ...] = ()  # the likeliest intents an earlier tier found, for a tier that narrows
        for tier in self.tiers:
            if best is not None and best.intent in self.skip_after.get(tier.name, ()):
                continue  # on validation this tier never made such an unsure answer right (calibrate.py)
            if candidates and getattr(tier, "narrows", False):
                answer = tier.answer(text, context, candidates)
            else:
                answer = tier.answer(text, context)
            if answer is None:
                continue
            candidates = answer.candidates or candidates
            if answer.confidence >= self.policy.thresholds.get(tier.name, 0.0):
                best = answer
                break
            if best is None or answer.confidence > best.confidence:
                best = answer
        if best is None:
            return Answer("unknown", {}, tier="none", confidence=0.0)
        if self.cache is not None and best.confidence >= self.policy.cache_from:
            self.cache.put(text, context, best)
            if self.semantic is not None and seen is not None:
                self.semantic.put(text, seen[0], seen[1], context, best)
        elif self.cache is not None:  # deterministic tiers: the same command gets this answer again
            with self._memo_lock:
                self.memo[key] = replace(best, candidates=())
                if len(self.memo) > MEMO_ENTRIES:
                    self.memo.popitem(last=False)
        return best


def check_command(text: Any) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AssistError(f"the command is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(text, str):
        raise AssistError(f"the command must be text, not {type(text).__name__}")
    problem = text_problem(text, MAX_COMMAND_CHARS)
    if problem:
        raise AssistError(f"the command {problem}")
    return text
