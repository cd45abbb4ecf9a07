"""`edgeslm bench`: MLPerf LoadGen's scenarios on one bundle, optionally beside a plain baseline."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--scenario", type=click.Choice(["single-stream", "multi-stream", "offline", "server"]),
              default="single-stream", show_default=True)
@click.option("--vs", type=click.Choice(["torch", "ort", "llama-cpp"]),
              help="Run this plain baseline under the same LoadGen settings and report the ratio.")
@click.option("--data", type=click.Path(path_type=Path), help="Labelled JSONL/CSV: the QSL (encoders), prompts (decoders).")
@click.option("--division", type=click.Choice(["closed", "open"]), default="closed", show_default=True,
              help="closed: no caching between queries (MLPerf); open: adaptive tiers may answer.")
@click.option("--out", type=click.Path(path_type=Path), help="LoadGen's logs [default: runs/bench/MODEL/SCENARIO].")
@click.option("--quick", is_flag=True, help="Short LoadGen limits and a small accuracy sample (smoke tests).")
@click.option("--min-duration", "min_duration_s", type=float, help="LoadGen's min duration, seconds.")
@click.option("--min-queries", type=int, help="LoadGen's min query count.")
@click.option("--target-qps", type=float, help="Server scenario's Poisson rate [default: from the warm-up].")
@click.option("--samples-per-query", type=int, default=8, show_default=True, help="Multi-stream.")
@click.option("--accuracy-samples", type=int, help="Accuracy mode's sample count [default: the whole QSL].")
@click.option("--repeats", type=int, default=1, show_default=True, help="Performance runs a side, order alternating.")
@click.option("--profile", default="this-machine", show_default=True, help="Power model and thread budget.")
@click.option("--threads", type=int, help="Engine threads (default: the profile's).")
@click.option("--new-tokens", type=int, default=64, show_default=True, help="Decoders: tokens generated a query.")
@click.option("--seed", type=int, help="LoadGen's sample and schedule seeds [default: LoadGen's].")
@json_option
@handle_errors
def bench(bundle: Path, as_json: bool, **options: object) -> None:
    """Latency, throughput, accuracy, peak RSS and energy of BUNDLE, measured by MLPerf LoadGen."""
    from edgeslm.bench.config import BenchConfig
    from edgeslm.bench.run import run_bench

    emit(run_bench(BenchConfig(bundle=bundle, **options), progress=not as_json), as_json, _text)  # type: ignore[arg-type]


def _text(r: dict) -> str:
    lines = [f"{r['model']} · {r['scenario']} · {r['division']} division · {r['threads']} threads · LoadGen logs in {r['out']}"]
    for name, side in r["sides"].items():
        parts = [f"{name:9s} {side['loadgen_result']:7s}"]
        lat = side.get("query_latency") or side["latency"]
        parts.append(f"p50 {lat['p50_ms']:.3f} ms  p90 {lat['p90_ms']:.3f} ms")
        if "ttft" in side:
            parts.append(f"TTFT p50 {side['ttft']['p50_ms']:.1f} ms  TPOT p50 {side['tpot']['p50_ms']:.2f} ms")
        for key in ("samples_per_s", "completed_samples_per_s"):
            if key in side["throughput"]:
                parts.append(f"{side['throughput'][key]:.0f} samples/s")
        if "accuracy" in side:
            parts.append(f"accuracy {side['accuracy']:.4f}")
        if "joules_per_query" in side:
            parts.append(f"{side['joules_per_query'] * 1000:.2f} mJ/query")
        lines.append("  ".join(parts))
        if side["invalid_reasons"]:
            lines.append(f"{'':9s} INVALID: {'; '.join(side['invalid_reasons'])}")
    if "ratio" in r:
        lines.append(f"ratio {r['ratio']['value']:.3f}: {r['ratio']['definition']}")
    if isinstance(r.get("accuracy"), dict):
        lines.append(f"greedy agreement with llama-cpp: {r['accuracy']['exact_match']:.2f} exact, "
                     f"{r['accuracy']['token_agreement']:.2f} of tokens")
    if "bandwidth_bound_tok_s" in r:
        lines.append(f"memory-bandwidth bound: {r['bandwidth_bound_tok_s']:.0f} tok/s")
    lines.append(f"peak RSS {r['peak_rss_mb']} MB")
    return "\n".join(lines)
