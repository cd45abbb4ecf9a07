"""How a decoder samples one answer: the one contract that the llama.cpp engine and the HTTP API both check.

The ranges, and why (llama-cpp-python 0.3, llama.cpp's sampler chain):
  max_tokens   integer in [1, 131072] (the largest context an engine opens); an engine also refuses more
               than its own context, and a server more than its configured limit.
  temperature  number in [0, 2]; 0 is greedy (llama-cpp-python then switches to its greedy sampler).
  top_p        number in [0, 1]; 0 keeps only the likeliest token (llama.cpp always keeps at least one), so
               it is greedy too, as OpenAI's API allows.
  seed         integer in [0, 2**32 - 2], or None for the engine's own. llama.cpp reads it as a uint32 and
               takes 2**32 - 1 (what -1 wraps to) as "pick a random seed": refusing it and -1 keeps every
               seeded request reproducible.
  stop         at most 4 strings (OpenAI's limit), each non-empty and at most 200 characters: the engine
               holds back that much streamed text while a stop string may still be forming. A lone
               string is one stop string.
  grammar      GBNF text, non-empty, at most 20,000 characters; json_schema: a JSON Schema object; not
               both. Whether llama.cpp can compile them is the engine's check: it needs the model's vocab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError

MAX_TOKENS = 131072
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**32 - 2  # 2**32 - 1 is llama.cpp's "random seed"
MAX_STOP = 4
MAX_STOP_CHARS = 200
MAX_GRAMMAR_CHARS = 20_000


class SamplingError(ConfigError, ValueError):
    """A sampling value out of range. A ValueError as well, as the engine's request errors always were."""


@dataclass(frozen=True)
class SamplingConfig(Config):
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()  # None, a string or a list are taken too, and kept as a tuple
    seed: int | None = None  # None: the engine's own seed
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        stop = self.stop
        object.__setattr__(self, "stop", () if stop is None else (stop,) if isinstance(stop, str)
                           else tuple(stop) if isinstance(stop, list) else stop)
        try:
            super().__post_init__()
        except SamplingError:
            raise
        except ConfigError as exc:  # a wrong type, found by Config
            raise SamplingError(str(exc)) from None
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))

    def validate(self) -> None:
        check_max_tokens(self.max_tokens)
        if not 0 <= self.temperature <= MAX_TEMPERATURE:  # NaN fails both comparisons
            raise SamplingError(f"temperature must be a number in [0, {MAX_TEMPERATURE:g}], got {self.temperature!r}")
        if not 0 <= self.top_p <= 1:
            raise SamplingError(f"top_p must be a number in [0, 1], got {self.top_p!r}")
        if len(self.stop) > MAX_STOP:
            raise SamplingError(f"stop must be a string or a list of at most {MAX_STOP} strings, got {len(self.stop)}")
        if not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in self.stop):
            raise SamplingError(f"each stop string must be non-empty and at most {MAX_STOP_CHARS} characters")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise SamplingError(f"seed must be an integer in [0, 2**32 - 2], got {self.seed!r}")
        if self.grammar is not None and (not self.grammar.strip() or len(self.grammar) > MAX_GRAMMAR_CHARS):
            raise SamplingError(f"grammar must be a non-empty GBNF string of at most {MAX_GRAMMAR_CHARS} characters")
        if self.grammar is not None and self.json_schema is not None:
            raise SamplingError("give either grammar or json_schema, not both")


def check_max_tokens(value: Any, name: str = "max_tokens") -> int:
    """The max_tokens range, for a field that carries it under another name (OpenAI's max_completion_tokens)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKENS:
        raise SamplingError(f"{name} must be an integer in [1, {MAX_TOKENS}], got {value!r}")
    return value
