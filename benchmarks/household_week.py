"""A week of one household's commands (data/household.py: routines, habits, 15% noisy), replayed
through the tiers and through single tiers, on each example home. Reports accuracy, the share per
tier, CPU seconds and the ratio of CPU to the encoder alone, side by side in one process; and the
generative tier alone on the first GENERATIVE_COMMANDS commands (the issue allows that many for the
generative comparison, at about half a CPU second a command), with the CPU of all tiers on the same
commands against it.

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
GENERATIVE_COMMANDS = 300
KEYS = ("intent_accuracy", "slot_accuracy", "tier_share", "cpu_seconds", "joules", "cache", "latency")


def run(args: argparse.Namespace, home_path: str, stream: Path, tiers: list[str], limit: int | None = None) -> dict:
    r = replay(ReplayConfig(stream=stream, home=Path(home_path), tiers=tiers, bundle=Path(args.bundle), limit=limit,
                            generative=args.generative))
    out = {"commands": r["n"], **{k: r[k] for k in KEYS}, **({"generative": r["generative"]} if "generative" in r else {})}
    print(home_path, ",".join(tiers), r["n"], out["intent_accuracy"], out["slot_accuracy"], out["cpu_seconds"],
          out["tier_share"], file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="runs/demo/intent-int8-static")
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="only the first N commands of each week (a quick check)")
    ap.add_argument("--skip-generative", action="store_true", help="leave out the generative tier alone (minutes)")
    ap.add_argument("--generative", type=Path, help="its GGUF or llama.cpp bundle (default: the built-in SmolLM2-135M)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result: dict = {"bundle": args.bundle, "seed": args.seed, "homes": {},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    with tempfile.TemporaryDirectory() as tmp:
        for home_path in args.homes:
            rows = week(load_home(home_path), seed=args.seed)[:args.limit]
            stream = Path(tmp) / (Path(home_path).stem + ".jsonl")
            stream.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
            per = {}
            for name, tiers in CONFIGS.items():
                per[name] = run(args, home_path, stream, tiers)
            base = per["encoder alone"]["cpu_seconds"]
            for v in per.values():
                v["cpu_vs_encoder_alone"] = round(v["cpu_seconds"] / base, 3) if base else None
            if not args.skip_generative:
                first = min(GENERATIVE_COMMANDS, len(rows))
                per["generative alone"] = run(args, home_path, stream, ["generative"], limit=first)
                if first < len(rows):  # all tiers once more on the commands the generative tier saw
                    per[f"all tiers, first {first}"] = run(args, home_path, stream, CONFIGS["all tiers"], limit=first)
                same = per[f"all tiers, first {first}"] if first < len(rows) else per["all tiers"]
                gen = per["generative alone"]["cpu_seconds"]
                per["all tiers"]["cpu_vs_generative_alone"] = round(same["cpu_seconds"] / gen, 4) if gen else None
                per["all tiers"]["cpu_vs_generative_alone_commands"] = first
            result["homes"][home_path] = {"commands": len(rows), "noisy": sum(r.noisy for r in rows), "replays": per}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
