"""`edgeslm eval`: score a bundle on labelled data with the device runtime (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import table


@click.command("eval")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), required=True, help="JSONL or CSV with text,label.")
@click.option("--threads", type=int, help="ONNX Runtime intra-op threads (default: cores, at most 4).")
@json_option
@handle_errors
def eval_(bundle: Path, data: Path, threads: int | None, as_json: bool) -> None:
    """Accuracy, macro-F1 and batch-1 latency percentiles of BUNDLE on DATA."""
    from edgeslm.evaluate.runner import evaluate_bundle

    result = evaluate_bundle(bundle, data, threads=threads, progress=not as_json)
    emit(result, as_json, _text)


def _text(r: dict) -> str:
    lat = r["latency"]
    lines = [
        f"{r['name']} on {r['data']}: n={r['n']}",
        f"accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}",
        f"latency batch 1 ({r['threads']} threads): p50 {lat['p50_ms']:.2f} ms  p90 {lat['p90_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms",
    ]
    if r["confusions"]:
        lines.append("most confused:")
        lines.append(table([[c["true"], c["predicted"], c["count"]] for c in r["confusions"][:5]], ["true", "predicted", "n"]))
    return "\n".join(lines)
