"""`ha-intents`: Home Assistant's English smart-home grammars, sampled into labelled commands.

Every English intent is covered, wildcard ones included (timer names, media, list items,
broadcast messages). Instead of hassil's exhaustive enumeration, which returns near-identical
sentences when capped, each template is walked at random: every alternative, optional and
permutation order gets its chance. Splits hold out whole templates and slot values, so a test
score measures generalization to unseen phrasings and unseen names, not memorized templates.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from edgeslm.config import Config
from edgeslm.data import ha_slots
from edgeslm.data.noise import add_noise
from edgeslm.data.records import Example
from edgeslm.data.splits import DatasetSplits
from edgeslm.errors import ConfigError, DataError


@dataclass(frozen=True)
class HaIntentsConfig(Config):
    language: str = "en"
    seed: int = 13
    per_intent_train: int = 450  # sampled train sentences an intent aims for
    min_per_template: int = 6
    per_intent_eval: int = 120  # val and test sentences per intent
    val_templates: float = 0.1  # share of each intent's templates held out for validation
    test_templates: float = 0.1  # ... and for test
    heldout_values: float = 0.2  # share of names/areas/items never used in training
    noise_copies: float = 0.3  # noisy extra copies of the train set, as a share of it
    min_train_per_intent: int = 250  # closed intents ("never mind") are topped up with variants

    def validate(self) -> None:
        if self.language != "en":
            raise ConfigError("ha-intents: only language 'en' is built in")
        for name in ("val_templates", "test_templates", "heldout_values", "noise_copies"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"ha-intents: {name} must be in [0, 1)")
        if self.val_templates + self.test_templates >= 0.5:
            raise ConfigError("ha-intents: val_templates + test_templates must leave most templates for training")
        if self.per_intent_train < 10 or self.per_intent_eval < 1 or self.min_per_template < 1:
            raise ConfigError("ha-intents: per_intent_train >= 10, per_intent_eval >= 1, min_per_template >= 1")


@dataclass(frozen=True)
class Template:
    intent: str
    text: str
    sentence: Any  # hassil Sentence
    rules: dict[str, Any]
    name_domains: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.intent}::{self.text}"


def load_grammar(language: str = "en") -> Any:
    try:
        import home_assistant_intents
        from hassil import Intents
    except ImportError:
        raise DataError(
            "ha-intents needs the packages hassil and home-assistant-intents: pip install 'edgeslm[build]'"
        ) from None
    return Intents.from_dict(home_assistant_intents.get_intents(language))


def templates(grammar: Any) -> list[Template]:
    out = []
    for intent_name, intent in sorted(grammar.intents.items()):
        for data in intent.data:
            rules = {**grammar.expansion_rules, **(data.expansion_rules or {})}
            domains = _name_domains(intent_name, data)
            for sentence in data.sentences:
                out.append(Template(intent_name, sentence.text, sentence, rules, domains))
    return out


def _name_domains(intent_name: str, data: Any) -> tuple[str, ...]:
    required = (data.requires_context or {}).get("domain")
    if required:
        domains = [required] if isinstance(required, str) else list(required)
    elif (data.slots or {}).get("domain"):
        domains = [data.slots["domain"]]
    else:
        domains = ha_slots.NAME_DOMAINS_BY_INTENT.get(intent_name, [])
    domains = [d for d in domains if d in ha_slots.NAMES]
    return tuple(domains or ha_slots.NAMES)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` alone: the same split on every machine and run."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class Sampler:
    """Random walks over hassil expressions, filling slots from one side of the value split."""

    def __init__(self, grammar: Any, rng: random.Random, heldout: bool, heldout_share: float):
        self.grammar = grammar
        self.rng = rng
        self.heldout = heldout
        self.heldout_share = heldout_share
        self._rbnf = None

    def pool(self, values: list[str]) -> list[str]:
        chosen = [v for v in values if (stable_fraction("value::" + v) < self.heldout_share) == self.heldout]
        return chosen or values

    def sentence(self, template: Template) -> str:
        self.template = template
        return " ".join(self.walk(template.sentence.expression, template.rules).split())

    def walk(self, expr: Any, rules: dict[str, Any]) -> str:
        from hassil.expression import Alternative, ListReference, Permutation, RuleReference, Sequence, TextChunk

        if isinstance(expr, TextChunk):
            return expr.original_text
        if isinstance(expr, Alternative):
            return self.walk(self.rng.choice(expr.items), rules)
        if isinstance(expr, Permutation):
            items = list(expr.items)
            self.rng.shuffle(items)
            return " ".join(self.walk(item, rules) for item in items)
        if isinstance(expr, Sequence):
            return "".join(self.walk(item, rules) for item in expr.items)
        if isinstance(expr, RuleReference):
            return self.walk(rules[expr.rule_name].expression, rules)
        if isinstance(expr, ListReference):
            return self.slot(expr.list_name, rules)
        raise DataError(f"ha-intents: unexpected grammar element {type(expr).__name__}")

    def slot(self, list_name: str, rules: dict[str, Any]) -> str:
        from hassil.intents import RangeSlotList, TextSlotList

        if list_name == "name":
            domain = self.rng.choice(self.template.name_domains)
            return self.rng.choice(self.pool(ha_slots.NAMES[domain]))
        if list_name == "area":
            return self.rng.choice(self.pool(ha_slots.AREAS))
        if list_name == "floor":
            return self.rng.choice(self.pool(ha_slots.FLOORS))
        if list_name in ha_slots.WILDCARDS:
            return self.rng.choice(self.pool(ha_slots.WILDCARDS[list_name]))
        slot_list = self.grammar.slot_lists.get(list_name)
        if isinstance(slot_list, TextSlotList):
            value = self.rng.choice(slot_list.values)
            return self.walk(value.text_in, rules)
        if isinstance(slot_list, RangeSlotList):
            return self.number(slot_list)
        raise DataError(f"ha-intents: no values for slot list {{{list_name}}}")

    def number(self, slot_list: Any) -> str:
        steps = (slot_list.stop - slot_list.start) // slot_list.step
        value: float = slot_list.start + self.rng.randint(0, steps) * slot_list.step
        if slot_list.fraction_type is not None and self.rng.random() < 0.2:
            value += 0.5
        if slot_list.words and self.rng.random() < 0.25 and float(value).is_integer():
            if self._rbnf is None:
                from hassil.sample import get_rbnf_engine

                self._rbnf = get_rbnf_engine("en")
            words = sorted(set(self._rbnf.format_number(int(value)).text_by_ruleset.values()))
            if words:
                return self.rng.choice(words)
        return str(int(value)) if float(value).is_integer() else str(value)


def template_split(template: Template, n_templates: int, config: HaIntentsConfig) -> str:
    """train, val or test for a whole template. Intents with fewer than five templates keep them
    all for training; their val/test sentences differ from training by held-out names only."""
    if n_templates < 5:
        return "train"
    f = stable_fraction(f"{config.seed}::{template.key}")
    if f < config.test_templates:
        return "test"
    if f < config.test_templates + config.val_templates:
        return "val"
    return "train"


def build(config: HaIntentsConfig) -> DatasetSplits:
    grammar = load_grammar(config.language)
    by_intent: dict[str, list[Template]] = defaultdict(list)
    for t in templates(grammar):
        by_intent[t.intent].append(t)

    rng = random.Random(config.seed)
    train_sampler = Sampler(grammar, rng, heldout=False, heldout_share=config.heldout_values)
    eval_sampler = Sampler(grammar, rng, heldout=True, heldout_share=config.heldout_values)
    rows: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    holdout: dict[str, bool] = {}
    for intent, tpls in sorted(by_intent.items()):
        parts: dict[str, list[Template]] = defaultdict(list)
        for t in tpls:
            parts[template_split(t, len(tpls), config)].append(t)
        holdout[intent] = bool(parts["val"] or parts["test"])
        for split in ("train", "val", "test"):
            pool = parts[split] or parts["train"]  # small intents: eval on held-out values only
            sampler = train_sampler if split == "train" else eval_sampler
            target = config.per_intent_train if split == "train" else config.per_intent_eval
            per_template = max(config.min_per_template if split == "train" else 1, math.ceil(target / len(pool)))
            for t in pool:
                for _ in range(per_template):
                    rows[split].append(Example(sampler.sentence(t), intent, group=t.key))

    rows = _dedupe(rows)
    _fill_closed_intents(rows, sorted(by_intent), config)
    noise_rng = random.Random(config.seed + 1)
    n_noisy = int(len(rows["train"]) * config.noise_copies)
    noisy = [
        Example(add_noise(ex.text, noise_rng), ex.label, ex.group)
        for ex in noise_rng.sample(rows["train"], n_noisy)
    ]
    labels = sorted(by_intent)
    topped = _top_up(rows["train"] + noisy, labels, grammar, config)
    train = rows["train"] + noisy + topped
    seen = {ex.text.lower() for ex in train}  # augmentation may recreate an eval text: eval loses it
    for split in ("val", "test"):
        rows[split] = [ex for ex in rows[split] if ex.text.lower() not in seen]
    meta = {
        "source": "home-assistant-intents " + _version("home-assistant-intents") + ", hassil " + _version("hassil"),
        "templates": {s: len({e.group for e in rows[s]}) for s in rows},
        "intents_with_template_holdout": sum(holdout.values()),
        "noisy_train_copies": n_noisy,
        "topped_up": len(topped),
        "config": config.to_dict(),
    }
    return DatasetSplits(train=train, val=rows["val"], test=rows["test"], labels=labels, meta=meta)


def _dedupe(rows: dict[str, list[Example]]) -> dict[str, list[Example]]:
    """Drop texts the grammar gives two intents, repeats, and eval texts also seen in training."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for split in rows.values():
        for ex in split:
            labels_of[ex.text.lower()].add(ex.label)
    train_texts = {ex.text.lower() for ex in rows["train"]}
    out = {}
    for split, examples in rows.items():
        seen: set[str] = set()
        kept = []
        for ex in examples:
            key = ex.text.lower()
            if key in seen or len(labels_of[key]) > 1 or (split != "train" and key in train_texts):
                continue
            seen.add(key)
            kept.append(ex)
        out[split] = kept
    return out


def _top_up(train: list[Example], labels: list[str], grammar: Any, config: HaIntentsConfig) -> list[Example]:
    """Variants for intents whose grammar yields few distinct sentences: Home Assistant's own skip
    words ("please", "can you", which it strips before matching) around them, and noise."""
    rng = random.Random(config.seed + 3)
    skip = [w for w in getattr(grammar, "skip_words", []) if w] or ["please"]
    counts = Counter(ex.label for ex in train)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in train:
        by_label[ex.label].append(ex)
    out = []
    for label in labels:
        for _ in range(max(0, config.min_train_per_intent - counts[label])):
            ex = rng.choice(by_label[label])
            text = ex.text
            if rng.random() < 0.6:
                word = rng.choice(skip)
                text = f"{word} {text}" if rng.random() < 0.6 else f"{text} {word}"
            if rng.random() < 0.5:
                text = add_noise(text, rng)
            out.append(Example(text, label, ex.group))
    return out


def _fill_closed_intents(rows: dict[str, list[Example]], intents: list[str], config: HaIntentsConfig) -> None:
    """Some intents have a closed language ("never mind", "what time is it"): every sentence is in
    training, so none can be held out. Their val/test rows are noisy variants instead (fillers,
    typos), never identical to a training text: a robustness check, marked by their group."""
    rng = random.Random(config.seed + 2)
    train_texts = {ex.text.lower() for ex in rows["train"]}
    for split in ("val", "test"):
        present = {ex.label for ex in rows[split]}
        for intent in intents:
            if intent in present:
                continue
            sources = [ex for ex in rows["train"] if ex.label == intent]
            made: dict[str, Example] = {}
            for _ in range(config.per_intent_eval * 4):
                if len(made) >= max(1, config.per_intent_eval // 4):
                    break
                ex = rng.choice(sources)
                text = add_noise(ex.text, rng, strength=1.5)
                if text.lower() not in train_texts and text.lower() not in made:
                    made[text.lower()] = Example(text, intent, group="noisy::" + ex.group)
            rows[split].extend(made.values())


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def label_counts(examples: list[Example]) -> Counter:
    return Counter(ex.label for ex in examples)


# Slot spans, for a slot tagger: the same random walks, with each name, area and floor value marked as it
# is filled. Private-use characters mark them: the grammars never hold them and whitespace clean-up keeps them.
SPAN_KINDS = ("name", "area", "floor")
_OPEN = {kind: chr(0xE000 + i) for i, kind in enumerate(SPAN_KINDS)}
_KIND_OF = {mark: kind for kind, mark in _OPEN.items()}
_CLOSE = "\ue00f"


@dataclass(frozen=True)
class SlotSentence:
    text: str
    intent: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, kind) character spans of the slot values filled
    template: str


class SpanSampler(Sampler):
    """A Sampler whose sentences come with the character spans of the name, area and floor values it filled.
    A share of values is title-cased, as homes spell them ("Floor Lamp") and people sometimes type them."""

    title_share = 0.3

    def slot(self, list_name: str, rules: dict[str, Any]) -> str:
        value = super().slot(list_name, rules)
        if list_name not in _OPEN:
            return value
        if self.rng.random() < self.title_share:
            value = value.title()
        return f"{_OPEN[list_name]}{value}{_CLOSE}"

    def tagged(self, template: Template) -> SlotSentence:
        marked = self.sentence(template)
        text: list[str] = []
        spans, start, kind = [], 0, ""
        for ch in marked:
            if ch in _KIND_OF:
                start, kind = len(text), _KIND_OF[ch]
            elif ch == _CLOSE:
                spans.append((start, len(text), kind))
            else:
                text.append(ch)
        return SlotSentence("".join(text), template.intent, tuple(spans), template.key)


def slot_sentences(n: int, seed: int, heldout: bool, config: HaIntentsConfig | None = None) -> list[SlotSentence]:
    """`n` sentences with their slot spans. heldout=False: the dataset's training templates and training
    values; heldout=True: its validation templates and held-out values (names never trained on), so a
    tagger validated on them is measured on unseen phrasings and unseen names. Templates that fill a name,
    area or floor are drawn four times as often as the rest, which teach what is not a slot."""
    config = config or HaIntentsConfig()
    grammar = load_grammar(config.language)
    by_intent: dict[str, list[Template]] = defaultdict(list)
    for t in templates(grammar):
        by_intent[t.intent].append(t)
    want = {"val"} if heldout else {"train"}
    pool = [t for tpls in by_intent.values() for t in tpls if template_split(t, len(tpls), config) in want]
    rng = random.Random(seed)
    sampler = SpanSampler(grammar, rng, heldout=heldout, heldout_share=config.heldout_values)
    weights = [4.0 if any(f"{{{k}}}" in t.text for k in SPAN_KINDS) or "<" in t.text else 1.0 for t in pool]
    out = []
    for t in rng.choices(pool, weights, k=n):
        out.append(sampler.tagged(t))
    return out
