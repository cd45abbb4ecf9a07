"""Dispatch a benchmark to the scenario code for the bundle's family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslm.bench.config import BenchConfig
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import open_bundle


def run_bench(config: BenchConfig, progress: bool = False) -> dict[str, Any]:
    bundle = open_bundle(Path(config.bundle))  # verified once here: hashing a GGUF is not free
    if bundle.manifest.family == "encoder":
        if config.vs == "llama-cpp":
            raise ConfigError("--vs llama-cpp compares decoder bundles; for an encoder use --vs ort or --vs torch")
        from edgeslm.bench.encoder import run_encoder_bench
        return run_encoder_bench(config, bundle, progress)
    if config.scenario != "single-stream":
        raise ConfigError("decoder bundles run the single-stream scenario: llama.cpp serves one sequence at a time")
    if config.vs not in (None, "llama-cpp"):
        raise ConfigError(f"--vs {config.vs} compares encoder bundles; for a decoder use --vs llama-cpp")
    from edgeslm.bench.decoder import run_decoder_bench
    from edgeslm.runtime.energy import joules
    from edgeslm.runtime.profiles import load_profile

    profile = load_profile(config.profile)
    result = run_decoder_bench(bundle, vs=config.vs, prompt_tokens=config.prompt_tokens,
                               new_tokens=config.new_tokens, rounds=config.rounds,
                               threads=config.threads or profile.threads, seed=config.seed, progress=progress)
    energy = joules(result["cpu_seconds"], result["wall_seconds"], profile)
    result.update({"scenario": config.scenario, "model": bundle.manifest.name,
                   "profile": profile.name, "joules_per_token": round(energy / result["tokens_generated"], 5),
                   "energy_model": f"{profile.watts_idle} W idle, {profile.watts_busy} W busy, linear in CPU "
                                   "utilisation, over the edgeslm rounds (prefill included)"})
    if "per_token_ms_ratio" in result:
        result["ratio"] = {"value": result["per_token_ms_ratio"],
                           "definition": "edgeslm p50 ms per decoded token / llama-cpp's (below 1: edgeslm is faster)"}
    return result
