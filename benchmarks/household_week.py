"""A week of one household's commands (data/household.py: routines, habits, 15% noisy), replayed
through the tiers and through single tiers, on each example home. Reports accuracy, the share per
tier, CPU seconds and the ratio of CPU to the encoder alone, side by side in one process; and the
generative tier alone on the first GENERATIVE_COMMANDS commands (the issue allows that many for the
generative comparison, at about half a CPU second a command), with the CPU of all tiers on the same
commands against it.

The assistant's encoder is the early-exit bundle `make demo` builds (--bundle); the baseline "encoder
alone" is the full-depth int8 graph (--baseline), the tier as it was before early exits; the early-exit
encoder alone is reported too, and the bundle's n-gram head alone (its answer to every command, however
unsure: all tiers ask it first and take only what it is sure of). Per replay: CPU microseconds and estimated microjoules per answer.

    .venv/bin/python benchmarks/household_week.py --skip-generative
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
# name: (tiers, which bundle the encoder tier uses)
CONFIGS = {"encoder alone": (["encoder"], "baseline"), "early-exit encoder alone": (["encoder"], "bundle"),
           "templates alone": (["templates"], "bundle"), "templates + encoder": (["templates", "encoder"], "bundle"),
           "all tiers": (["habits", "cache", "ngrams", "templates", "encoder"], "bundle")}
GENERATIVE_COMMANDS = 300
KEYS = ("intent_accuracy", "slot_accuracy", "tier_share", "cpu_seconds", "joules", "cache", "latency")


def run(args: argparse.Namespace, home_path: str, stream: Path, tiers: list[str], limit: int | None = None,
        bundle: str = "bundle") -> dict:
    r = replay(ReplayConfig(stream=stream, home=Path(home_path), tiers=tiers, bundle=Path(getattr(args, bundle)), limit=limit,
                            generative=args.generative, policy=args.policy))
    out = {"commands": r["n"], "encoder_bundle": getattr(args, bundle) if "encoder" in tiers else None, **{k: r[k] for k in KEYS},
           "us_per_answer": round(r["cpu_seconds"] / r["n"] * 1e6), "uj_per_answer": round(r["joules"] / r["n"] * 1e6),
           **({"generative": r["generative"]} if "generative" in r else {})}
    print(home_path, ",".join(tiers), r["n"], out["intent_accuracy"], out["slot_accuracy"], out["cpu_seconds"],
          out["tier_share"], file=sys.stderr)
    return out


def head_alone(args: argparse.Namespace, home_path: str, rows: list) -> dict:
    """The bundle's n-gram head answering every command itself (whatever its confidence), as a tier alone."""
    from edgeslm.evaluate.replay import slots_match
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.energy import CpuMeter
    from edgeslm.runtime.engines.registry import LoadSettings, load_engine
    from edgeslm.runtime.profiles import load_profile
    from edgeslm.runtime.tiers.encoder import EncoderTier
    from edgeslm.runtime.tiers.slots import HomeMatcher

    home = load_home(home_path)
    tier = EncoderTier(load_engine(open_bundle(Path(args.bundle)), LoadSettings(threads=1, spin=False)), HomeMatcher(home))
    if tier.quick_head is None:
        return {"commands": len(rows), "note": f"{args.bundle} has no n-gram head"}
    meter = CpuMeter()
    with meter:
        answers = [tier.quick(r.text, r.context, raw=True) for r in rows]
    pairs = list(zip(answers, rows, strict=True))
    return {"commands": len(rows), "intent_accuracy": round(sum(a.intent == r.label for a, r in pairs) / len(rows), 4),
            "slot_accuracy": round(sum(slots_match(r.slots, a.slots) for a, r in pairs if r.slots)
                                   / max(1, sum(bool(r.slots) for r in rows)), 4),
            "cpu_seconds": round(meter.cpu_seconds, 3), "joules": round(meter.joules(load_profile("this-machine")), 4),
            "us_per_answer": round(meter.cpu_seconds / len(rows) * 1e6),
            "uj_per_answer": round(meter.joules(load_profile("this-machine")) / len(rows) * 1e6)}


def median_of(runs: list[dict]) -> dict:
    """One replay's figures with CPU and energy the median over the repeats (answers do not change)."""
    out = dict(runs[len(runs) // 2])
    for key in ("cpu_seconds", "joules", "us_per_answer", "uj_per_answer"):
        values = sorted(r[key] for r in runs)
        out[key] = values[len(values) // 2]
    out["cpu_seconds_runs"] = [r["cpu_seconds"] for r in runs]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="runs/demo/intent-early-exit", help="the assistant's encoder bundle")
    ap.add_argument("--baseline", default="runs/demo/intent-int8-static", help="the encoder-alone baseline's bundle")
    ap.add_argument("--policy", type=Path, help="default: the calibrated policy beside --bundle")
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="only the first N commands of each week (a quick check)")
    ap.add_argument("--repeats", type=int, default=3, help="replays of each config; CPU figures are their median")
    ap.add_argument("--skip-generative", action="store_true", help="leave out the generative tier alone (minutes)")
    ap.add_argument("--generative-commands", type=int, default=GENERATIVE_COMMANDS,
                    help="the generative tier alone replays this many first commands")
    ap.add_argument("--generative", type=Path, help="its GGUF or llama.cpp bundle (default: the built-in SmolLM2-135M)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result: dict = {"bundle": args.bundle, "baseline": args.baseline, "seed": args.seed, "repeats": args.repeats, "homes": {},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    with tempfile.TemporaryDirectory() as tmp:
        for home_path in args.homes:
            rows = week(load_home(home_path), seed=args.seed)[:args.limit]
            stream = Path(tmp) / (Path(home_path).stem + ".jsonl")
            stream.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
            runs: dict[str, list[dict]] = {}
            for _ in range(args.repeats):  # round robin, so a slower minute of the machine hits every config
                for name, (tiers, bundle) in CONFIGS.items():
                    runs.setdefault(name, []).append(run(args, home_path, stream, tiers, bundle=bundle))
            runs["n-gram head alone"] = [head_alone(args, home_path, rows) for _ in range(args.repeats)]
            per = {name: median_of(rs) for name, rs in runs.items()}
            base = per["encoder alone"]["cpu_seconds"]
            for v in per.values():
                v["cpu_vs_encoder_alone"] = round(v["cpu_seconds"] / base, 3) if base else None
            if not args.skip_generative:
                first = min(args.generative_commands, len(rows))
                per["generative alone"] = run(args, home_path, stream, ["generative"], limit=first)
                if first < len(rows):  # all tiers once more on the commands the generative tier saw
                    per[f"all tiers, first {first}"] = run(args, home_path, stream, CONFIGS["all tiers"][0], limit=first)
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
