"""What every scenario shares: the validated config, the seeded query set, and peak RSS."""

from __future__ import annotations

import random
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError

SCENARIOS = ("single-stream", "offline", "server")
BASELINES = ("ort", "torch", "llama-cpp")


@dataclass(frozen=True)
class BenchConfig(Config):
    bundle: Path
    scenario: str = "single-stream"
    vs: str | None = None
    data: Path | None = None  # labelled JSONL/CSV: queries and the accuracy check (encoders)
    profile: str = "this-machine"  # power model for the energy estimate, thread budget
    threads: int | None = None
    queries: int = 1024  # MLPerf SingleStream's minimum query count
    min_duration_s: float = 10.0  # server scenario: how long the clients keep sending
    concurrency: int = 32  # server scenario: closed-loop clients
    batch: int = 32  # offline scenario batch (and the server's max batch)
    block: int = 32  # queries per alternating block when a baseline runs beside us
    warmup: int = 32
    seed: int = 0
    prompt_tokens: int = 40  # decoders: prompt length, tokens generated a round, rounds a side
    new_tokens: int = 64
    rounds: int = 10

    def validate(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"BenchConfig.scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        if self.vs is not None and self.vs not in BASELINES:
            raise ConfigError(f"BenchConfig.vs must be one of {', '.join(BASELINES)}, not {self.vs!r}")
        for name, low in (("queries", 16), ("concurrency", 1), ("batch", 1), ("block", 1), ("warmup", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"BenchConfig.{name} must be at least {low}")
        if self.min_duration_s <= 0:
            raise ConfigError("BenchConfig.min_duration_s must be positive")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("BenchConfig.threads must be at least 1")


def sample_queries(rows: list[Any], n: int, seed: int) -> list[Any]:
    """n queries drawn with replacement, as LoadGen does, so a small labelled set still gives a stable p90."""
    rng = random.Random(seed)
    return [rows[rng.randrange(len(rows))] for _ in range(n)]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

