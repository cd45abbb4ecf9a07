"""Serving overhead, the two figures issue 10 asks for, each over 3 seeds (median):
single-stream p50 through edgeslm's serving path / a raw ONNX Runtime session on the same file, and
32 closed-loop clients' throughput / offline batch-32 throughput measured in the same run.

    .venv/bin/python benchmarks/serving_overhead.py runs/demo/intent-int8-static --data evalsets/home-commands-en.jsonl

The queries only time the model (and check its accuracy in the same run); nothing is trained on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.run import run_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    single, server = [], []
    for seed in args.seeds:
        r = run_bench(BenchConfig(bundle=args.bundle, scenario="single-stream", vs="ort", data=args.data, seed=seed))
        single.append({"seed": seed, "edgeslm_p50_ms": r["sides"]["edgeslm"]["latency"]["p50_ms"],
                       "ort_p50_ms": r["sides"]["ort"]["latency"]["p50_ms"], "ratio": r["ratio"]["value"]})
        r = run_bench(BenchConfig(bundle=args.bundle, scenario="server", data=args.data, seed=seed))
        server.append({"seed": seed, "server_qps": r["server"]["throughput_qps"], "offline_qps": r["offline"]["edgeslm"],
                       "mean_batch": r["server"]["mean_batch"], "ratio_vs_offline": r["server"]["ratio_vs_offline"]})
    out = {"single_stream_vs_ort": {"median": statistics.median(s["ratio"] for s in single), "goal": "<= 1.05",
                                    "runs": single},
           "server32_vs_offline32": {"median": statistics.median(s["ratio_vs_offline"] for s in server), "goal": ">= 0.95",
                                     "runs": server}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
