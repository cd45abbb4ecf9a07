"""`edgeslm select` against exhaustive search on the demo's intent run, for two profiles: this
machine and an emulated 1-thread AVX2 device (benchmarks/profiles/avx2-1thread.yaml).

    .venv/bin/python benchmarks/select_vs_exhaustive.py [--run runs/demo/train-run] [--lock /tmp/edgeslm-cpu.lock]

Per profile: exhaustive search (every built-in encoder recipe x thread count compressed and measured),
select from a cold cache, and for the second profile select again on the first profile's cache (what
a second `select` reuses). The chosen bundle is then measured again in a fresh session (1,000 calls)
against the budget. Each step takes the CPU lock itself and is timed after it holds it. The exhaustive
cache is shared by both profiles (compressed models do not depend on the profile): the second
profile's cold exhaustive time is its warm run plus the recorded compression and measurement time of
every result it reused. Writes runs/demo/select/benchmark.json, frontier plots and bundles.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

from edgeslm.data.records import read_examples
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.profiles import isa_summary
from edgeslm.select.cache import Store, machine_facts
from edgeslm.select.measure import measure_model
from edgeslm.select.search import RunInfo, SelectConfig, select
from edgeslm.train.run import RunFolder

BUDGET = "p90_ms<=5,ram_mb<=150,accuracy>=0.99*fp32"
PROFILES = ["this-machine", str(Path(__file__).parent / "profiles" / "avx2-1thread.yaml")]


@contextmanager
def cpu_lock(path: str | None):
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reused_cost(result: dict, store: Store) -> float:
    """Seconds the cached results a run reused took when they were made."""
    total = 0.0
    seen = set()
    for c in result["candidates"]:
        if "compressed" in c["reused"] and c["artefact"] not in seen:
            seen.add(c["artefact"])
            hit = next(store.root.glob(f"artefacts/{c['artefact']}*/record.json"), None)
            if hit:
                total += json.loads(hit.read_text())["compress_s"]
        if "measured" in c["reused"]:
            total += c["measured"].get("measure_s", 0.0) if isinstance(c["measured"], dict) else 0.0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo/train-run"))
    ap.add_argument("--out", type=Path, default=Path("runs/demo/select"))
    ap.add_argument("--lock", default="/tmp/edgeslm-cpu.lock", help="flock this file around each step ('' for none)")
    ap.add_argument("--budget", default=BUDGET)
    ap.add_argument("--fresh", action="store_true", help="drop the exhaustive cache too (else its results are reused)")
    ap.add_argument("--recipe", dest="recipes", action="append", default=[],
                    help="only these recipes, for select and exhaustive alike (default: every built-in encoder recipe)")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ex_cache = out / "cache-exhaustive"
    if args.fresh:
        shutil.rmtree(ex_cache, ignore_errors=True)
    report: dict = {"budget": args.budget, "recipes": args.recipes or "all built-in encoder recipes",
                    "machine": machine_facts(), "isa": isa_summary(), "profiles": {}}
    first_select_cache = None
    for profile in PROFILES:
        name = Path(profile).stem if profile.endswith(".yaml") else profile
        row: dict = {}
        with cpu_lock(args.lock):
            t0 = time.perf_counter()
            ex = select(args.run, SelectConfig(budget=args.budget, profile=profile, exhaustive=True, cache=ex_cache,
                                                 recipes=args.recipes),
                        plot=out / f"{name}-exhaustive.png", say=print)
            row["exhaustive_wall_s"] = round(time.perf_counter() - t0, 1)
        row["exhaustive_reused_s"] = round(reused_cost(ex, Store(ex_cache)), 1)
        row["exhaustive_cold_s"] = round(row["exhaustive_wall_s"] + row["exhaustive_reused_s"], 1)
        cache = out / f"cache-select-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        with cpu_lock(args.lock):
            t0 = time.perf_counter()
            sel = select(args.run, SelectConfig(budget=args.budget, profile=profile, cache=cache, recipes=args.recipes),
                         out=out / f"{name}-bundle", plot=out / f"{name}-frontier.png", say=print)
            row["select_cold_s"] = round(time.perf_counter() - t0, 1)
        if first_select_cache is not None:
            with cpu_lock(args.lock):
                t0 = time.perf_counter()
                warm = select(args.run, SelectConfig(budget=args.budget, profile=profile, cache=first_select_cache,
                                                   recipes=args.recipes), say=print)
                row["select_warm_s"] = round(time.perf_counter() - t0, 1)
            row["select_warm"] = {"chosen": (warm["chosen"] or {}).get("name"), "compressed": warm["compressed"],
                                  "reused": {c["name"]: c["reused"] for c in warm["candidates"] if c["reused"]}}
        first_select_cache = first_select_cache or cache
        meets = [c for c in ex["candidates"] if c["name"] in ex["meets_budget"]]
        best = max(meets, key=lambda c: c["accuracy"]["val"]) if meets else None
        chosen = sel["chosen"]
        errors = [abs(c["predicted"]["p90_ms"] - c["measured"]["p90_ms"]) / c["measured"]["p90_ms"]
                  for c in ex["candidates"] if c["status"] == "measured"]
        errors50 = [abs(c["predicted"]["p50_ms"] - c["measured"]["p50_ms"]) / c["measured"]["p50_ms"]
                    for c in ex["candidates"] if c["status"] == "measured"]
        check = None
        if chosen:
            info = RunInfo.load(RunFolder(args.run))
            b = open_bundle(out / f"{name}-bundle")
            texts = [e.text for e in read_examples(args.run / "data" / "test.jsonl", labels=info.labels)]
            with cpu_lock(args.lock):
                check = measure_model(b.model_path, b.file("tokenizer.json"), info.labels, info.max_length, info.inputs,
                                      chosen["threads"], texts, calls=1000)
            limits = sel["budget"]["costs"]
            check["meets"] = all(check[k] <= v for k, v in limits.items() if k in ("p50_ms", "p90_ms", "ram_mb"))
        row.update({
            "candidates": len(ex["candidates"]), "exhaustive_compressed": ex["compressed"],
            "select_compressed": sel["compressed"], "select_measured": sel["measured"],
            "best_exhaustive": best and {"name": best["name"], "val": best["accuracy"]["val"], "test": best["accuracy"]["test"],
                                         "p90_ms": best["measured"]["p90_ms"]},
            "chosen": chosen and {"name": chosen["name"], "val": chosen["accuracy"]["val"], "test": chosen["accuracy"]["test"],
                                  "p90_ms": chosen["measured"]["p90_ms"]},
            "chosen_remeasured": check,
            "accuracy_gap_points": best and chosen and round((best["accuracy"]["val"] - chosen["accuracy"]["val"]) * 100, 3),
            "test_accuracy_gap_points": best and chosen and round((best["accuracy"]["test"] - chosen["accuracy"]["test"]) * 100, 3),
            "p90_error_median": round(statistics.median(errors), 4) if errors else None,
            "p50_error_median": round(statistics.median(errors50), 4) if errors50 else None,
            "time_ratio": round(row["select_cold_s"] / row["exhaustive_cold_s"], 3),
            "exhaustive_table": [{k: c[k] for k in ("name", "status", "reason", "predicted", "measured", "accuracy")}
                                 for c in ex["candidates"]],
            "select_table": [{k: c[k] for k in ("name", "status", "reason", "predicted", "measured", "accuracy")}
                             for c in sel["candidates"]],
        })
        report["profiles"][name] = row
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_table")}, indent=1))
        (out / "benchmark.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out / 'benchmark.json'}")


if __name__ == "__main__":
    main()
