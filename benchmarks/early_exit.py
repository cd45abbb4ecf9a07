"""Early exit against the full int8 intent encoder, side by side in one run:

    .venv/bin/python benchmarks/early_exit.py [--demo runs/demo] [--rounds 400] [--threads 2]

On the held-out test split of the demo's intent run (DEMO/train-run/data/test.jsonl; the exit
thresholds were chosen on its validation split): accuracy and macro-F1 of both engines and the share
of sentences answered at each exit (also on the demo's noisy copy of that split, when there is one);
the median and p90 latency of one predict() call at batch 1 and batch 8, the two engines taking turns
in blocks (compress/measure.py) with ONNX Runtime's spinning off for both, so neither's idle workers
slow the other. Also the first segment's embedding: its latency, and how often a test sentence's
nearest validation sentence (cosine) has the same intent, as a semantic cache would use it. Builds
DEMO/intent-early-exit from the demo's run first when it is missing or stale (about a minute and a
half). Prints JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.data.records import read_examples
from edgeslm.evaluate.metrics import classification_metrics, latency_summary
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.train.run import RunFolder


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def accuracy(engine: Any, rows: list[Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    results = [r for i in range(0, len(rows), 64) for r in engine.predict([ex.text for ex in rows[i:i + 64]])]
    m = classification_metrics([ex.label for ex in rows], [r["label"] for r in results], engine.labels)
    return {k: m[k] for k in ("accuracy", "macro_f1", "n")}, results


def embedding_neighbours(engine: EarlyExitClassifier, index: list[Any], queries: list[Any]) -> dict[str, Any]:
    """Nearest validation sentence of each test sentence by cosine: how often it has the same intent,
    overall and among pairs above a few similarity levels (a semantic cache serves only close pairs)."""
    def embed(rows: list[Any]) -> np.ndarray:
        return np.concatenate([engine.embed([ex.text for ex in rows[i:i + 64]]) for i in range(0, len(rows), 64)])

    a, b = embed(index), embed(queries)
    sims = b @ a.T  # [queries, index]; unit vectors, so cosine
    best = sims.argmax(axis=1)
    sim = sims[np.arange(len(queries)), best]
    same = np.asarray([queries[i].label == index[j].label for i, j in enumerate(best)])
    levels = {}
    for level in (0.9, 0.95, 0.98):
        hit = sim >= level
        levels[str(level)] = {"share": round(float(hit.mean()), 4),
                              "same_intent": round(float(same[hit].mean()), 4) if hit.any() else None}
    return {"index": len(index), "queries": len(queries), "same_intent": round(float(same.mean()), 4), "above": levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"))
    parser.add_argument("--rounds", type=int, default=400, help="timed calls per engine and batch size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from edgeslm.compress.early_exit import ensure_early_exit
    from edgeslm.compress.measure import interleaved_latency

    run, ee_dir, int8_dir = args.demo / "train-run", args.demo / "intent-early-exit", args.demo / "intent-int8-static"
    started = time.perf_counter()
    built = ensure_early_exit(run, ee_dir)
    build_s = time.perf_counter() - started
    early = EarlyExitClassifier.from_bundle(open_bundle(ee_dir), threads=args.threads, spin=False)
    full = OnnxClassifier.from_bundle(open_bundle(int8_dir), threads=args.threads, spin=False)
    rows = read_examples(RunFolder(run).split("test"), labels=full.labels)
    val = read_examples(RunFolder(run).split("val"), labels=full.labels)

    early_acc, early_results = accuracy(early, rows)
    full_acc, _ = accuracy(full, rows)
    exits = [r["exit_layer"] for r in early_results]
    shares = {str(n): round(exits.count(n) / len(exits), 4) for n in early.layers}

    noisy_path = args.demo / "eval" / "test-noisy.jsonl"  # the demo's typo-and-filler copy of the same test split
    noisy = {}
    if noisy_path.is_file():
        noisy_rows = read_examples(noisy_path, labels=full.labels)
        noisy_early, noisy_results = accuracy(early, noisy_rows)
        noisy_exits = [r["exit_layer"] for r in noisy_results]
        noisy = {"data": str(noisy_path), "int8-full": accuracy(full, noisy_rows)[0], "early-exit": noisy_early,
                 "exit_share": {str(n): round(noisy_exits.count(n) / len(noisy_exits), 4) for n in early.layers}}

    texts = [ex.text for ex in rows]
    variants = {"int8-full": full, "early-exit": early}
    latency = {f"batch{b}": interleaved_latency(variants, texts, batch=b, rounds=args.rounds if b == 1 else args.rounds // 2)
               for b in (1, 8)}
    ratio = {k: round(v["early-exit"]["p50_ms"] / v["int8-full"]["p50_ms"], 3) for k, v in latency.items()}
    embed_s = []
    for text in texts[: args.rounds]:
        t0 = time.perf_counter()
        early.embed([text])
        embed_s.append(time.perf_counter() - t0)

    plan = open_bundle(ee_dir).manifest.provenance["early_exit"]
    print(json.dumps({
        "cpu": cpu_name(), "threads": args.threads, "spinning": False, "test_split": str(RunFolder(run).split("test")),
        "early_exit_bundle": str(ee_dir), "built_now": built, "build_seconds": round(build_s, 1),
        "thresholds": plan["calibration"]["thresholds"], "calibrated_on": "val",
        "accuracy": {"int8-full": full_acc, "early-exit": early_acc,
                     "drop": round(full_acc["accuracy"] - early_acc["accuracy"], 4)},
        "exit_share": shares,
        "noisy_test": noisy,
        "latency": latency, "latency_ratio_p50": ratio,
        "embed_batch1": {k: v for k, v in latency_summary(embed_s).items() if k in ("p50_ms", "p90_ms")},
        "embedding_nearest_val": embedding_neighbours(early, val, rows),
    }, indent=2))


if __name__ == "__main__":
    main()
