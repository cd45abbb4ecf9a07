"""What every benchmark shares: the validated config and peak RSS."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgeslm.config import Config
from edgeslm.errors import ConfigError

SCENARIOS = ("single-stream", "multi-stream", "offline", "server")  # LoadGen's four, in its order
BASELINES = ("ort", "torch", "llama-cpp")
# closed: MLPerf's rule, no caching of any kind between queries; open: adaptive tiers may run
DIVISIONS = ("closed", "open")
MODES = ("accuracy", "performance")


@dataclass(frozen=True)
class Quick:
    """What --quick changes (tests, smoke runs): LoadGen's limits shrunk, a smaller accuracy sample.
    Explicit --min-duration / --min-queries / --accuracy-samples still win."""

    min_duration_s: float = 0.5
    min_queries_encoder: int = 64
    min_queries_decoder: int = 8
    accuracy_samples_encoder: int = 128
    accuracy_samples_decoder: int = 4


QUICK = Quick()


@dataclass(frozen=True)
class BenchConfig(Config):
    VERSION: ClassVar[int] = 2  # 2: LoadGen drives the scenarios (queries/block/concurrency/rounds went)

    bundle: Path
    scenario: str = "single-stream"
    vs: str | None = None
    data: Path | None = None  # labelled JSONL/CSV: the QSL (encoders), prompts (decoders, optional)
    division: str = "closed"
    out: Path | None = None  # LoadGen's logs, one folder per side and mode; None: runs/bench/<model>/<scenario>
    quick: bool = False
    min_duration_s: float | None = None  # None: LoadGen's default (or --quick's)
    min_queries: int | None = None  # None: LoadGen's default (or --quick's)
    target_qps: float | None = None  # server scenario; None: half the single-query rate found while warming up
    samples_per_query: int = 8  # multi-stream: LoadGen's multi_stream_samples_per_query
    accuracy_samples: int | None = None  # accuracy mode's QSL size; None: the whole file (or --quick's)
    repeats: int = 1  # performance runs a side; the order of the sides alternates, the ratio is their median
    profile: str = "this-machine"  # power model for the energy estimate, thread budget
    threads: int | None = None
    batch: int = 32  # the batcher's max batch; the baselines' chunk in offline
    warmup: int = 32  # queries a side before LoadGen starts; they also give LoadGen its latency/QPS hints
    seed: int | None = None  # LoadGen's qsl/sample-index/schedule seeds; None: LoadGen's own
    new_tokens: int = 64  # decoders: tokens generated a query (greedy, end-of-text ignored)

    def validate(self) -> None:
        for name, allowed in (("scenario", SCENARIOS), ("division", DIVISIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"BenchConfig.{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.vs is not None and self.vs not in BASELINES:
            raise ConfigError(f"BenchConfig.vs must be one of {', '.join(BASELINES)}, not {self.vs!r}")
        for name, low in (("samples_per_query", 1), ("repeats", 1), ("batch", 1), ("warmup", 1),
                          ("min_queries", 1), ("accuracy_samples", 1), ("threads", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"BenchConfig.{name} must be at least {low}, got {value}")
        for name in ("min_duration_s", "target_qps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"BenchConfig.{name} must be positive, got {value}")
        if not 2 <= self.new_tokens <= 1024:
            raise ConfigError(f"BenchConfig.new_tokens must be in [2, 1024] (time per output token needs two), "
                              f"got {self.new_tokens}")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
