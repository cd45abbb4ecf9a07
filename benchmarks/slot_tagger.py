"""The learned slot tagger (issue 12, tier 2): slots with and without it, through the encoder tier of an
early-exit bundle that carries one (the same engine, its tagger switched off for "without").

- household weeks (data/household.py) of each example home, with seeds the other benchmarks do not use;
- generated held-out sentences: Home Assistant's validation templates filled with held-out names (never
  trained on), half made noisy, against a home built from those held-out names.

Reports slot accuracy (every expected slot right, as replay scores it) and named-target accuracy (the
expected name, area and floor values right, where there are any), clean and noisy rows apart, and the
encoder tier's CPU per command.

    .venv/bin/python benchmarks/slot_tagger.py --bundle runs/demo/intent-early-exit
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from edgeslm.data import ha_slots
from edgeslm.data.ha_intents import SPAN_KINDS, slot_sentences
from edgeslm.data.household import week
from edgeslm.data.noise import add_noise_spans
from edgeslm.evaluate.replay import slots_match
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.early_exit import EarlyExitClassifier
from edgeslm.runtime.tiers.encoder import EncoderTier
from edgeslm.runtime.tiers.home import Area, Entity, Floor, Home, load_home
from edgeslm.runtime.tiers.slots import HomeMatcher

ROOT = Path(__file__).resolve().parents[1]
NAMED = SPAN_KINDS  # the slots that name something in the home


def score(tier: EncoderTier, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Slot and named-target accuracy, clean and noisy apart, and CPU ms per command (the best of three
    passes over all rows: other processes share these cores)."""
    out: dict[str, Any] = {}
    for group in ("clean", "noisy"):
        part = [r for r in rows if r["noisy"] == (group == "noisy")]
        slots_ok = named_ok = named_n = 0
        for r in part:
            answer = tier.answer(r["text"], r.get("context"))
            slots_ok += slots_match(r["slots"], answer.slots)
            named = {k: v for k, v in r["slots"].items() if k in NAMED}
            if named:
                named_n += 1
                named_ok += slots_match(named, answer.slots)
        out[group] = {"n": len(part), "slot_accuracy": round(slots_ok / max(1, len(part)), 4),
                      "named_n": named_n, "named_accuracy": round(named_ok / max(1, named_n), 4)}
    passes = []
    for _ in range(3):
        t0 = time.process_time()
        for r in rows:
            tier.answer(r["text"], r.get("context"))
        passes.append(time.process_time() - t0)
    out["cpu_ms_per_command"] = round(1000 * min(passes) / max(1, len(rows)), 3)
    return out


def household_rows(home: Home, seed: int) -> list[dict[str, Any]]:
    return [{"text": r.text, "slots": r.slots, "context": r.context, "noisy": r.noisy} for r in week(home, seed) if r.slots]


def heldout_home_and_rows(n: int, seed: int) -> tuple[Home, list[dict[str, Any]]]:
    """A home of the held-out names, areas and floors, and `n` generated sentences naming them, half noisy."""
    def held(values: list[str]) -> list[str]:
        from edgeslm.data.ha_intents import HaIntentsConfig, stable_fraction

        share = HaIntentsConfig().heldout_values
        return [v for v in values if stable_fraction("value::" + v) < share]

    floors = [Floor(f"f{i}", v) for i, v in enumerate(held(ha_slots.FLOORS))]
    areas = [Area(f"a{i}", v) for i, v in enumerate(held(ha_slots.AREAS))]
    entities = [Entity(f"{domain}.e{i}_{j}", v) for i, (domain, values) in enumerate(sorted(ha_slots.NAMES.items()))
                for j, v in enumerate(held(values))]
    home = Home("en", tuple(floors), tuple(areas), tuple(entities))
    rng = random.Random(seed + 1)
    rows = []
    for s in slot_sentences(n, seed, heldout=True):
        if not s.spans:
            continue
        slots: dict[str, Any] = {}
        for start, end, kind in s.spans:
            slots.setdefault(kind, s.text[start:end])
        noisy = rng.random() < 0.5
        text = add_noise_spans(s.text, list(s.spans), rng)[0] if noisy else s.text
        rows.append({"text": text, "slots": slots, "noisy": noisy})
    return home, rows


def compare(engine: EarlyExitClassifier, home: Home, rows: list[dict[str, Any]]) -> dict[str, Any]:
    tagger = engine.tagger
    out = {}
    for name, on in (("matching only", False), ("tagger + matching", True)):
        engine.tagger = tagger if on else None
        out[name] = score(EncoderTier(engine, HomeMatcher(home)), rows)
    engine.tagger = tagger
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="runs/demo/intent-early-exit")
    ap.add_argument("--homes", nargs="+", default=[str(p) for p in sorted((ROOT / "homes").glob("*.yaml"))])
    ap.add_argument("--seeds", nargs="+", type=int, default=[201, 202])
    ap.add_argument("--generated", type=int, default=1500, help="generated held-out sentences (0: skip)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    engine = EarlyExitClassifier.from_bundle(open_bundle(Path(args.bundle)), threads=1)
    if engine.tagger is None:
        print(f"error: {args.bundle} carries no slot tagger", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"bundle": args.bundle, "seeds": args.seeds, "household": {}}
    for path in args.homes:
        home = load_home(Path(path))
        rows = [r for seed in args.seeds for r in household_rows(home, seed)]
        result["household"][Path(path).stem] = compare(engine, home, rows)
        print(path, json.dumps(result["household"][Path(path).stem]), file=sys.stderr)
    if args.generated:
        home, rows = heldout_home_and_rows(args.generated, seed=args.seeds[0])
        result["generated_heldout"] = {"home": {"names": len(home.entities), "areas": len(home.areas),
                                                "floors": len(home.floors)}, **compare(engine, home, rows)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
