"""`edgeslm bench`: MLPerf-Tiny-style scenarios on one bundle, optionally beside a plain baseline."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option


@click.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--scenario", type=click.Choice(["single-stream", "offline", "server"]), default="single-stream",
              show_default=True)
@click.option("--vs", type=click.Choice(["torch", "ort", "llama-cpp"]),
              help="Run this plain baseline in the same process, alternating, and report the ratio.")
@click.option("--data", type=click.Path(path_type=Path), help="Labelled JSONL/CSV: the queries (encoders).")
@click.option("--profile", default="this-machine", show_default=True, help="Power model and thread budget.")
@click.option("--threads", type=int, help="Engine threads (default: the profile's).")
@click.option("--queries", type=int, default=1024, show_default=True)
@click.option("--duration", "min_duration_s", type=float, default=10.0, show_default=True,
              help="Server scenario: seconds of load.")
@click.option("--concurrency", type=int, default=32, show_default=True, help="Server scenario: clients.")
@click.option("--new-tokens", type=int, default=64, show_default=True, help="Decoders: tokens generated a round.")
@click.option("--rounds", type=int, default=10, show_default=True, help="Decoders: rounds a side.")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
@handle_errors
def bench(bundle: Path, scenario: str, vs: str | None, data: Path | None, profile: str, threads: int | None,
          queries: int, min_duration_s: float, concurrency: int, new_tokens: int, rounds: int, seed: int,
          as_json: bool) -> None:
    """Latency percentiles, throughput, accuracy, peak RSS and energy of BUNDLE."""
    from edgeslm.bench.config import BenchConfig
    from edgeslm.bench.run import run_bench

    config = BenchConfig(bundle=bundle, scenario=scenario, vs=vs, data=data, profile=profile, threads=threads,
                         queries=queries, min_duration_s=min_duration_s, concurrency=concurrency,
                         new_tokens=new_tokens, rounds=rounds, seed=seed)
    emit(run_bench(config, progress=not as_json), as_json, _text)


def _text(r: dict) -> str:
    lines = [f"{r['model']} · {r['scenario']} · {r['threads']} threads · profile {r['profile']}"]
    for name, side in r.get("sides", {}).items():
        parts = [f"{name:8s}"]
        if "latency" in side:
            parts.append(f"p50 {side['latency']['p50_ms']:.3f} ms  p90 {side['latency']['p90_ms']:.3f} ms")
        if "throughput_qps" in side:
            parts.append(f"{side['throughput_qps']:.0f} q/s")
        if "tok_s_median" in side:
            parts.append(f"{side['tok_s_median']:.1f} tok/s  first token p50 {side['ttft_ms_p50']:.0f} ms")
        if "accuracy" in side:
            parts.append(f"accuracy {side['accuracy']:.4f}")
        if "joules_per_query" in side:
            parts.append(f"{side['joules_per_query'] * 1000:.2f} mJ/query")
        lines.append("  ".join(parts))
    if "server" in r:
        s = r["server"]
        lines.append(f"server x{s['clients']}: {s['throughput_qps']:.0f} q/s (mean batch {s['mean_batch']}), "
                     f"p50 {s['latency']['p50_ms']:.2f} ms p90 {s['latency']['p90_ms']:.2f} ms; "
                     f"{s['ratio_vs_offline']:.2f}× offline batch throughput")
    if "ratio" in r:
        lines.append(f"ratio {r['ratio']['value']:.3f}: {r['ratio']['definition']}")
    if "joules_per_token" in r:
        lines.append(f"energy estimate {r['joules_per_token'] * 1000:.1f} mJ/token ({r['energy_model']})")
    if "bandwidth_bound_tok_s" in r:
        lines.append(f"memory-bandwidth bound: {r['bandwidth_bound_tok_s']:.0f} tok/s "
                     f"({r['memory_read_gb_s']:.1f} GB/s read / {r['model_bytes'] / 1e6:.0f} MB of weights)")
    lines.append(f"peak RSS {r['peak_rss_mb']} MB")
    return "\n".join(lines)
