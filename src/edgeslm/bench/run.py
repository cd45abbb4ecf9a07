"""Dispatch a benchmark to the scenario code for the bundle's family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslm.bench.loadgen import BenchConfig
from edgeslm.bundle.reader import open_bundle
from edgeslm.errors import ConfigError


def run_bench(config: BenchConfig, progress: bool = False) -> dict[str, Any]:
    family = open_bundle(Path(config.bundle)).manifest.family
    if family == "encoder":
        if config.vs == "llama-cpp":
            raise ConfigError("--vs llama-cpp compares decoder bundles; for an encoder use --vs ort or --vs torch")
        from edgeslm.bench.encoder import run_encoder_bench
        return run_encoder_bench(config, progress)
    if config.scenario != "single-stream":
        raise ConfigError("decoder bundles run the single-stream scenario: llama.cpp serves one sequence at a time")
    if config.vs not in (None, "llama-cpp"):
        raise ConfigError(f"--vs {config.vs} compares encoder bundles; for a decoder use --vs llama-cpp")
    from edgeslm.bench.decoder import run_decoder_bench
    return run_decoder_bench(config, progress)
