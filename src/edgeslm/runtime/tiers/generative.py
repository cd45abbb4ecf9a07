"""Tier 3: a small generative model (SmolLM2-135M-Instruct through llama.cpp) writes the intent JSON
itself, few-shot, under a grammar made from HA's intent schema and the home's names, so it can only
answer a known intent with that intent's slots and the home's exact spellings.

The prompt is one fixed prefix (a line of instructions, then worked examples filled in with this
home's names) followed by the request; the grammar carries the whole home. The engine keeps the
prefix's KV cache between calls, so a request pays for its own few tokens. With a `prompt_cache`
folder, that KV cache is also written to a file (llama.cpp's state file, keyed by the model file, the
context size and the prefix's tokens) and read back by the next tier opened on the same model and
home: evaluating SmolLM2's 3,300-token prefix takes 10-20 s of CPU on 2 cores, reading it back a
fraction of a second. At most PROMPT_FILES such files are kept (the oldest go).

Confidence: the probability the model gives the intent it wrote, under the grammar: the product,
over the tokens that spell the intent's name, of each token's probability renormalized over the
tokens the grammar allowed there (llama_sampler.CheckedSampler._logprob). Tokens the grammar forces
count 1. It says how sure the model was of the intent, not of the slots.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.home import Home
from edgeslm.runtime.tiers.intent_grammar import Schema, for_home, intent_grammar, intent_schema

log = logging.getLogger(__name__)
PROMPT_FILES = 4  # prefix state files kept in a prompt_cache folder (about 25 kB a token for SmolLM2-135M)
MAX_ANSWER_TOKENS = 96  # the longest answers (a timer with three numbers, a named list item) take ~45
MAX_COMMAND_TOKENS = 128  # a spoken command is a sentence; a longer one is declined, not truncated
# Each turn of the prompt is "Command: ...\nJSON: {...}". The request ends in ANSWER_OPEN, so the model
# starts at the intent's name (five fewer decode steps than writing the opening itself), and its
# first token is the one every example's answer has there (` "`): a prompt ending in a space would
# leave it mid-token, which this model does not recover from.
ANSWER_OPEN = '{"intent":'

# Worked examples, phrased for this module (not Home Assistant's test sentences). {light} and the
# like take a device of that domain from the home, {area:light} an area holding one, {n} a number;
# the label is what Home Assistant's own recognizer (the template tier) answers for the filled-in
# sentence, so slot names and values are HA's. Examples the home cannot fill, or HA cannot read, are
# left out. The ones marked "here" are said in the {area:light} room: the device's context.
EXAMPLES = (
    ("turn on the {light}", False), ("switch the {fan} off", False), ("{switch} on", False),
    ("shut the {cover}", False), ("{light} off", False), ("switch on the {area:light} lights", False),
    ("turn off the lights in the {area:light}", False), ("turn the {area:light} lights off", False),
    ("{area:light} lights on", False), ("switch off all the lights in the {area:light}", False),
    ("turn on the light in the {area:light}", False), ("turn the lights on", True), ("lights off", True),
    ("switch off the lights", True),
    ("set the {light} to {n}%", False), ("set the {area:light} brightness to {n} percent", False),
    ("what's the temperature in the {area:temperature}", False), ("is the {lock} locked", False),
    ("lock the {lock}", False), ("unlock the {lock}", False), ("open the {cover}", False),
    ("set the {cover} position to {n}%", False), ("is the {light} on", False), ("what is the {sensor}", False),
    ("set the {fan} speed to {n}%", False), ("set the {climate} to {t} degrees", False),
    ("start a timer for {n} minutes", False), ("cancel the timer", False), ("how much time is left on the timer", False),
    ("resume the {media_player}", False), ("set the {media_player} volume to {n}%", False),
    ("what time is it", False), ("what's the weather like", False), ("never mind", False),
    ("add milk to my shopping list", False), ("start the {vacuum}", False), ("turn off the lights on the {floor}", False),
)
# Each phrasing filled in three times with other names, shuffled: on 40 commands of a household week
# one round got the intent 0.45-0.65 right, three 0.80, five no better (0.75) at 40% more prompt.
EXAMPLE_ROUNDS = 3
NOISY_EXAMPLES = 4  # copies with typos and fillers (data.noise), so misspelt commands look familiar


class GenerativeError(EdgeslmError):
    """The generative tier cannot be built for this home or engine, said plainly."""


class ContextTooSmall(GenerativeError):
    """The engine's context cannot hold this home's prompt, a command and its answer: `need` tokens."""

    def __init__(self, message: str, need: int):
        super().__init__(message)
        self.need = need


class GenerativeTier:
    name = "generative"

    def __init__(self, engine: Any, home: Home, max_tokens: int = MAX_ANSWER_TOKENS, seed: int = 0,
                 prompt_cache: Path | None = None, reopen: Any = None):
        """`engine`: a LlamaEngine of its own (another user of it would evict the prefix's KV cache);
        `prompt_cache`: a folder where the prefix's KV cache is kept across openings (None: evaluated
        by the first request)."""
        try:
            import home_assistant_intents
        except ImportError:
            raise GenerativeError("the generative tier needs hassil and home-assistant-intents: "
                                  "pip install 'edgeslm[assist]'") from None
        data = home_assistant_intents.get_intents(home.language)
        if data is None:
            raise GenerativeError(f"home-assistant-intents has no grammar for language {home.language!r}")
        self.engine, self.home, self.max_tokens = engine, home, max_tokens
        self.schema: Schema = for_home(intent_schema(data), home)
        self.examples = few_shot(home, self.schema, seed, rounds=EXAMPLE_ROUNDS)
        self.said, self.spelled = said_names(home)
        self._saying = {kind: {exact: said for said, exact in names.items()} for kind, names in self.spelled.items()}
        self.grammar = intent_grammar(self.schema, self.said, lead=" ")
        self.prefix = prefix_text([(t, self._say(c), self._say(a)) for t, c, a in self.examples])
        self.declined: Counter = Counter()  # why a request got no answer from this tier
        self.last: Any = None  # the engine's DoneEvent for the last request (tokens, cache reuse, timings)
        prefix_tokens = engine.tokenize(self.prefix)
        need = len(prefix_tokens) + MAX_COMMAND_TOKENS + max_tokens
        if need > engine.n_ctx:
            raise ContextTooSmall(f"the prompt for this home needs a context of {need} tokens; open the "
                                  f"engine with n_ctx >= {need} (it has {engine.n_ctx})", need)
        self.prompt_cache = None if prompt_cache is None else Path(prompt_cache)
        self.primed = "no" if self.prompt_cache is None else self._prime(self.prompt_cache, prefix_tokens)
        self._reopen, self._prefix_tokens = reopen, prefix_tokens  # `resume`: a new engine, same prompt
        self.model_path = Path(engine.model_path)

    @property
    def can_suspend(self) -> bool:
        return self._reopen is not None

    def suspend(self) -> None:
        """Free the engine (model and KV cache) and keep the rest: the prompt, grammar and schema built
        from the home (1.6 s of hassil and grammar work on 2 cores) are what `resume` reuses."""
        if not self.can_suspend:
            raise GenerativeError("this tier was built on an engine it cannot reopen; close it instead")
        self.engine.close()
        self.engine = None

    def resume(self) -> None:
        """A new engine for the same prompt, its prefix read back from `prompt_cache` when it is there."""
        if self.engine is None:
            self.engine = self._reopen()
            self.primed = "no" if self.prompt_cache is None else self._prime(self.prompt_cache, self._prefix_tokens)

    def _prime(self, folder: Path, tokens: list[int]) -> str:
        """The prefix's KV cache from its file ("loaded"), else evaluated and written there ("written";
        "evaluated" when the file cannot be written: the tier works the same, the next opening pays again)."""
        model = Path(self.engine.model_path)
        stat = model.stat()
        key = hashlib.sha256(json.dumps([str(model.resolve()), stat.st_size, stat.st_mtime_ns, self.engine.n_ctx,
                                         tokens]).encode()).hexdigest()[:32]
        path = folder / f"prefix-{key}.kvstate"
        if self.engine.load_prompt(path, tokens):
            path.touch()  # most recently used: the last to go
            return "loaded"
        self.engine.prefill(tokens)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.engine.save_prompt(path)
            for old in sorted(folder.glob("prefix-*.kvstate"), key=lambda p: p.stat().st_mtime)[:-PROMPT_FILES]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # a full disk or a read-only folder: nothing is lost but the saving
            log.warning("cannot keep the generative tier's prompt state in %s: %s", folder, exc)
            return "evaluated"
        return "written"

    def close(self) -> None:
        """Free the engine (its model and KV cache): the tier owns it."""
        if self.engine is not None:
            self.engine.close()

    def prompt(self, text: str, context: dict[str, Any] | None = None) -> str:
        """The whole prompt for a command: the fixed prefix, the request, the answer's opening."""
        return self.prefix + self._request(text, context) + ANSWER_OPEN

    def _request(self, text: str, context: dict[str, Any] | None) -> str:
        # one line (whitespace collapsed): a newline in the text cannot start a turn of its own
        return _request(" ".join(text.split()), self._say(context))

    def _say(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """A context or an answer with its names as the prompt says them (`said_names`)."""
        if not value:
            return value
        if "slots" in value:
            return {**value, "slots": self._say(value["slots"])}
        return {k: self._saying.get(k, {}).get(v, v) if isinstance(v, str) else v for k, v in value.items()}

    def answer(self, text: str, context: dict[str, Any] | None = None) -> Answer | None:
        from edgeslm.runtime.engines.llama import collect

        if self.engine.control_tokens_in(text):
            self.declined["refused"] += 1  # parsed as control tokens, they would forge the prompt's structure
            return None
        request = self._request(text, context)
        if len(self.engine.tokenize(request)) > MAX_COMMAND_TOKENS:
            self.declined["too long"] += 1
            return None
        out, done = collect(self.engine.complete(self.prefix + request + ANSWER_OPEN, max_tokens=self.max_tokens,
                                                 temperature=0.0, grammar=self.grammar, logprobs=True))
        self.last = done
        if done.finish_reason != "stop":  # the answer did not close within max_tokens
            self.declined["unfinished"] += 1
            return None
        try:
            value = json.loads(ANSWER_OPEN + out)  # the grammar admits only JSON of this shape...
            intent, slots = value["intent"], _plain_numbers(value["slots"])
        except (ValueError, KeyError, TypeError, AttributeError):
            self.declined["unparsable"] += 1  # ...so this would be a bug, counted rather than raised mid-request
            return None
        for kind, names in self.spelled.items():  # back to the home's own spelling
            if isinstance(slots.get(kind), str):
                slots[kind] = names.get(slots[kind], slots[kind])
        area = (context or {}).get("area")
        if isinstance(area, str) and not {"name", "area", "floor"} & set(slots) and "area" in self.schema[intent].slots:
            slots["area"] = area  # as HA fills an area the command leaves out from the satellite's room
        return Answer(intent, slots, tier=self.name, confidence=intent_confidence(done.token_logprobs))


def intent_confidence(token_logprobs: tuple[tuple[str, float], ...]) -> float:
    """exp(sum of the log-probabilities of the tokens that overlap the intent's name), the answer
    going on from ANSWER_OPEN as ` "Name", ...`: see the module's docstring."""
    text = "".join(piece for piece, _ in token_logprobs)
    start = text.find('"') + 1
    end = text.find('"', start)
    if start <= 0 or end < 0:
        return 0.0
    total, at = 0.0, 0
    for piece, logprob in token_logprobs:
        if at < end and at + len(piece) > start:
            total += logprob
        at += len(piece)
    return round(math.exp(total), 6)


# -- the prompt ------------------------------------------------------------------------------------
def said_names(home: Home) -> tuple[Home, dict[str, dict[str, str]]]:
    """The home with its entity, area and floor names in lowercase, as commands say them, and per slot
    the way back to the home's spelling. The model copies "desk lamp" from "turn on the desk lamp"
    more often than it turns it into "Desk Lamp" (on the household weeks of both homes, intent and
    slots both right: 0.59 against 0.55). When two names differ only by case, the home keeps its
    spelling."""
    import dataclasses

    spelled = {kind: {x.name.lower(): x.name for x in items}
               for kind, items in (("name", home.entities), ("area", home.areas), ("floor", home.floors))}
    counts = [len({x.name for x in items}) for items in (home.entities, home.areas, home.floors)]
    if [len(m) for m in spelled.values()] != counts:
        return home, {}
    said = dataclasses.replace(
        home, floors=tuple(dataclasses.replace(f, name=f.name.lower()) for f in home.floors),
        areas=tuple(dataclasses.replace(a, name=a.name.lower()) for a in home.areas),
        entities=tuple(dataclasses.replace(e, name=e.name.lower()) for e in home.entities))
    return said, spelled


def prefix_text(examples: list[tuple[str, dict[str, Any] | None, dict[str, Any]]]) -> str:
    """The fixed part of every request: one line of instructions, then the worked examples (this home's
    names, in the format the request continues). A list of the home's devices and areas before them
    did not help on the household weeks of both homes (intent 0.80 against 0.83 without, with slots
    0.58 against 0.59): the grammar holds every name already, so the shorter prompt it is."""
    head = "Each smart-home command below is turned into Home Assistant's intent JSON.\n\n"
    return head + "".join(f"{_request(text, context)}{json.dumps(answer, ensure_ascii=False)}\n\n"
                          for text, context, answer in examples)


def few_shot(home: Home, schema: Schema, seed: int = 0,
             rounds: int = 1) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """EXAMPLES filled in with this home's names (`rounds` times, each with other names drawn) and
    labelled by Home Assistant's recognizer, with a few noisy copies, shuffled: (text, context, answer)."""
    from edgeslm.data.noise import add_noise
    from edgeslm.runtime.tiers.templates import TemplateTier

    rng = random.Random(seed)
    templates = TemplateTier(home)
    area_name = {a.id: a.name for a in home.areas}
    by_domain: dict[str, list[str]] = {}
    areas_with: dict[str, list[str]] = {}
    for e in home.entities:
        by_domain.setdefault(e.domain, []).append(e.name)
        kind = "temperature" if e.domain == "climate" or e.attributes.get("device_class") == "temperature" else e.domain
        if e.area and area_name[e.area] not in areas_with.get(kind, []):
            areas_with.setdefault(kind, []).append(area_name[e.area])
    fill = {f"{{{d}}}": names for d, names in by_domain.items()}
    fill.update({f"{{area:{k}}}": v for k, v in areas_with.items()})
    fill["{floor}"] = [f.name for f in home.floors]
    out, seen = [], set()
    for phrase, here in [e for _ in range(rounds) for e in EXAMPLES]:
        text = phrase
        for key, names in fill.items():
            if key in text and names:
                text = text.replace(key, rng.choice(names).lower())
        text = text.replace("{n}", str(rng.choice([10, 15, 20, 30, 40, 45, 60, 70, 80, 90])))
        text = text.replace("{t}", str(rng.choice([18, 19, 20, 21, 22, 23])))
        if "{" in text:
            continue  # the home has nothing to fill it with
        context = None
        if here:
            context = {"area": rng.choice(areas_with.get("light") or [a.name for a in home.areas])}
        answer = templates.answer(text, context)
        if answer is None or answer.intent not in schema or (text, str(context)) in seen:
            continue
        seen.add((text, str(context)))
        out.append((text, context, {"intent": answer.intent, "slots": _ordered_slots(answer.slots, schema[answer.intent].slots)}))
    for text, context, answer in rng.sample(out, min(NOISY_EXAMPLES, len(out))):
        if not context:
            out.append((add_noise(text, rng), context, answer))
    rng.shuffle(out)
    return out


def _request(text: str, context: dict[str, Any] | None) -> str:
    """One turn up to its answer: "Command: ...\nJSON: ", after "Room: ...\n" when the device knows it."""
    area = (context or {}).get("area")
    room = f"Room: {area}\n" if isinstance(area, str) else ""
    return f"{room}Command: {text}\nJSON: "


def _ordered_slots(slots: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain_number(slots[k]) for k in order if k in slots}


def _plain_numbers(slots: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain_number(v) for k, v in slots.items()}


def _plain_number(value: Any) -> Any:
    """HA's recognizer gives 40.0 for "40%": written as 40, as people and the grammar write it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
