"""The generative tier kept only while needed, on a replayed household week (data/household.py): all tiers
with the generative tier last, three ways side by side in one process: always loaded; released after
--idle seconds without a command for it and loaded again by the command that needs it (cold starts);
released the same way and loaded ahead of the times the habits learned it answers (pre-warm). Reports,
per way: the share of the week the model was loaded, loads, cold starts, pre-warms used and wasted, the
latency of the generative tier's own answers (p50 / max) and of all answers (p99), CPU seconds.

    .venv/bin/python benchmarks/residency_week.py --idle 1800
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from edgeslm.data.household import week
from edgeslm.evaluate.replay import ReplayConfig, replay
from edgeslm.runtime.tiers.home import load_home

ROOT = Path(__file__).resolve().parents[1]
TIERS = ["habits", "cache", "templates", "encoder", "generative"]
WAYS = {"always loaded": {}, "released when idle": {"prewarm": False}, "released, habits pre-warm": {"prewarm": True}}


def percentile(xs: list[float], q: float) -> float | None:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else None


def one(stream: Path, home: str, bundle: Path, idle: float | None, prewarm: bool, tmp: Path) -> dict:
    out = tmp / "answers.jsonl"
    r = replay(ReplayConfig(stream=stream, home=Path(home), tiers=TIERS, bundle=bundle, out=out,
                            idle_release=idle, prewarm=prewarm))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    gen = [row["latency_ms"] for row in rows if row["tier"] == "generative"]
    span = r.get("residency", {}).get("generative", {})
    return {"intent_accuracy": r["intent_accuracy"], "cpu_seconds": r["cpu_seconds"],
            "generative_answers": len(gen), "generative_p50_ms": percentile(gen, 0.5),
            "generative_max_ms": max(gen) if gen else None, "p99_ms": r["latency"]["p99_ms"], "residency": span}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("runs/demo/intent-early-exit"))
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--idle", type=float, default=1800.0, help="seconds without a command before the release")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result: dict = {"idle_s": args.idle, "seed": args.seed, "homes": {},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    with tempfile.TemporaryDirectory() as tmp:
        for home in args.homes:
            rows = week(load_home(home), seed=args.seed)
            stream = Path(tmp) / "week.jsonl"
            stream.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows), encoding="utf-8")
            span = (rows[-1].ts - rows[0].ts) if rows and rows[0].ts is not None else None
            result["homes"][home] = {"commands": len(rows), "span_s": span, "ways": {}}
            for way, kw in WAYS.items():
                got = one(stream, home, args.bundle, None if not kw else args.idle, kw.get("prewarm", True), Path(tmp))
                if span and got["residency"]:
                    got["loaded_share"] = round(got["residency"]["resident_s"] / span, 3)
                result["homes"][home]["ways"][way] = got
                print(Path(home).stem, way, json.dumps(got), file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
