"""What every tier answers: Home Assistant's intent JSON (`{"intent": "HassTurnOn", "slots": {...}}`,
slot values spelled as the home spells them), with the tier that answered, its confidence, and what
the answer cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Answer:
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    tier: str = ""
    confidence: float = 1.0
    latency_ms: float = 0.0
    joules: float = 0.0
    # the intents this tier found likeliest, best first: a later tier may search only these (the
    # templates after the encoder); internal to the router, not part of the answer's JSON
    candidates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["candidates"]
        return out
