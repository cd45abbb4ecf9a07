"""A week of one household's commands (data/household.py: routines, habits, 15% noisy), replayed
through the tiers and through single tiers, on each example home. Reports accuracy, the share per
tier, CPU seconds and the ratio of CPU to the encoder alone, side by side in one process.

    .venv/bin/python benchmarks/household_week.py --bundle runs/demo/intent-int8-static
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
CONFIGS = {"encoder alone": ["encoder"], "templates alone": ["templates"], "templates + encoder": ["templates", "encoder"],
           "all tiers": ["habits", "cache", "templates", "encoder"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="runs/demo/intent-int8-static")
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result: dict = {"bundle": args.bundle, "seed": args.seed, "homes": {},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    with tempfile.TemporaryDirectory() as tmp:
        for home_path in args.homes:
            rows = week(load_home(home_path), seed=args.seed)
            stream = Path(tmp) / (Path(home_path).stem + ".jsonl")
            stream.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
            per = {}
            for name, tiers in CONFIGS.items():
                r = replay(ReplayConfig(stream=stream, home=Path(home_path), tiers=tiers, bundle=Path(args.bundle)))
                per[name] = {k: r[k] for k in ("intent_accuracy", "slot_accuracy", "tier_share", "cpu_seconds", "joules",
                                               "cache", "latency")}
                print(home_path, name, per[name]["intent_accuracy"], per[name]["slot_accuracy"],
                      per[name]["cpu_seconds"], per[name]["tier_share"], file=sys.stderr)
            base = per["encoder alone"]["cpu_seconds"]
            for v in per.values():
                v["cpu_vs_encoder_alone"] = round(v["cpu_seconds"] / base, 3) if base else None
            result["homes"][home_path] = {"commands": len(rows), "noisy": sum(r.noisy for r in rows), "replays": per}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
