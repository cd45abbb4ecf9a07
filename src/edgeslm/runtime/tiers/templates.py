"""Tier 1: Home Assistant's own intent grammars, matched by hassil (the library HA's Assist uses),
with slot lists made from the home the way HA makes them: entity names carry their domain (and device
class) as context, areas and floors their names. The device's own area, when known, fills an area the
command leaves out ("turn on the lights in here"). Exact or nothing: a match answers with confidence
1, anything else goes to the next tier."""

from __future__ import annotations

from typing import Any

from edgeslm.errors import EdgeslmError
from edgeslm.runtime.tiers.answer import Answer
from edgeslm.runtime.tiers.home import Home

NARROWED_KEPT = 256  # grammars cut to a few intents, kept for reuse (a few hundred kB each at most)


class TemplateTier:
    name = "templates"
    narrows = True  # answer() can search only the intents a tier before it found likely

    def __init__(self, home: Home):
        try:
            import home_assistant_intents
            from hassil import Intents
            from hassil.intents import TextSlotList
        except ImportError:
            raise EdgeslmError("the template tier needs hassil and home-assistant-intents: "
                               "pip install 'edgeslm[assist]'") from None
        data = home_assistant_intents.get_intents(home.language)
        if data is None:
            raise EdgeslmError(f"home-assistant-intents has no grammar for language {home.language!r}")
        self.home = home
        self.intents = Intents.from_dict(data)
        self._narrowed: dict[tuple[str, ...], Any] = {}
        # hassil parses an intent's templates the first time a command reaches them: on a device's first
        # commands that was 0.6 s of CPU (a household week replayed, 2-core EPYC). All at start: 0.3 s once.
        # Its prefilter (each template's required words, cached on the template) likewise: 0.02-0.03 s of the
        # first commands' CPU; here with the same rules recognize() merges.
        for intent in self.intents.intents.values():
            for block in intent.data:
                rules = {**self.intents.expansion_rules, **block.expansion_rules}
                for sentence in block.sentences:
                    sentence.get_required_clauses(rules)
        self.skip_words = list(data.get("skip_words", []))
        names = []
        for e in home.entities:
            context: dict[str, Any] = {"domain": e.domain}
            if "device_class" in e.attributes:
                context["device_class"] = e.attributes["device_class"]
            names.append((e.name, e.name, context))
        self.slot_lists = {
            "name": TextSlotList.from_tuples(names, allow_template=False, name="name"),
            "area": TextSlotList.from_tuples([(a.name, a.name) for a in home.areas], allow_template=False, name="area"),
            "floor": TextSlotList.from_tuples([(f.name, f.name) for f in home.floors], allow_template=False,
                                              name="floor"),
        }

    def answer(self, text: str, context: dict[str, Any] | None = None, candidates: tuple[str, ...] = ()) -> Answer | None:
        """`candidates`: search only these intents' templates (those a tier before found likeliest, likeliest
        first); all of them when empty. The likeliest alone is searched first and the others only when it
        does not match: most unsure answers this tier sees are confirmed by it (second_look's confirms on the
        validation weeks: 433 of 626 chances), and one intent's templates cost a fraction of three's. Where
        the likeliest and another both match, the likeliest wins (hassil would rank the two by wildcards
        and literal text, which knows nothing of the command's meaning)."""
        from hassil import recognize_best

        intent_context = {}
        for key, value in (context or {}).items():
            intent_context[key] = {"value": value, "text": value} if isinstance(value, str) else value
        groups = [self._narrow(candidates[:1]), self._narrow(candidates[1:])] if candidates else [self.intents]
        for intents in groups:
            if not intents.intents:
                continue
            result = recognize_best(text, intents, slot_lists=self.slot_lists, skip_words=self.skip_words,
                                    intent_context=intent_context or None, language=self.home.language)
            if result is not None:
                slots = {name: entity.value for name, entity in result.entities.items()}
                return Answer(result.intent.name, slots, tier=self.name, confidence=1.0)
        return None

    def _narrow(self, candidates: tuple[str, ...]) -> Any:
        """The grammar with only these intents (hassil's Intents, sharing the parsed templates)."""
        from hassil import Intents

        key = tuple(sorted(set(candidates)))
        narrowed = self._narrowed.get(key)
        if narrowed is None:
            full = self.intents
            narrowed = Intents(full.language, {k: full.intents[k] for k in key if k in full.intents}, full.slot_lists,
                               full.expansion_rules, full.skip_words, full.settings)
            if len(self._narrowed) >= NARROWED_KEPT:
                self._narrowed.pop(next(iter(self._narrowed)))
            self._narrowed[key] = narrowed
        return narrowed
