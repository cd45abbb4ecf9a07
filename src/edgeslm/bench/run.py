"""Dispatch a benchmark to the code for the bundle's family, after every check that needs no work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.loadgen import import_loadgen
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import open_bundle

DEFAULT_OUT = Path("runs/bench")


def run_bench(config: BenchConfig, progress: bool = False) -> dict[str, Any]:
    bundle = open_bundle(Path(config.bundle))  # verified once here: hashing a GGUF is not free
    out = Path(config.out) if config.out is not None else DEFAULT_OUT / bundle.manifest.name / config.scenario
    if bundle.manifest.family == "encoder":
        if config.vs == "llama-cpp":
            raise ConfigError("--vs llama-cpp compares decoder bundles; for an encoder use --vs ort or --vs torch")
        import_loadgen()
        from edgeslm.bench.encoder import run_encoder_bench
        return run_encoder_bench(config, bundle, out, progress)
    from edgeslm.bench.decoder import check_decoder_request, run_decoder_bench

    check_decoder_request(config)
    import_loadgen()
    return run_decoder_bench(config, bundle, out, progress)
