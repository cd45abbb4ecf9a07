"""Reproduce the README's compression figures with one command:

    .venv/bin/python benchmarks/compression.py [--out runs/demo] [--recipe NAME ...]

Trains the demo intent model if needed (as `make demo` does), compresses it with every built-in
encoder recipe (each measured side by side with fp32 and ONNX Runtime's plain quantize_dynamic,
interleaved, in its own run), then prints the comparison table and writes
OUT/compression.json and OUT/compression.png. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeslm.compress.recipe import builtin_names
from edgeslm.demo.run import DemoConfig, run_demo
from edgeslm.formats.reader import open_bundle
from edgeslm.report.compare import compare_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--recipe", action="append", help="only these recipes (default: all built-in)")
    args = parser.parse_args()
    recipes = args.recipe or builtin_names()
    evalset = Path("evalsets/home-commands-en.jsonl")
    run_demo(DemoConfig(out=args.out, evalset=evalset if evalset.is_file() else None, recipes=recipes), echo=print)
    rows = [(r, open_bundle(args.out / f"intent-{r}").manifest.provenance["compression"]) for r in recipes]
    (args.out / "compression.json").write_text(json.dumps(dict(rows), indent=2), encoding="utf-8")
    # compression.png is the demo report's own plot of these rows (report/demo.py)
    print(compare_table(rows))
    print(f"wrote {args.out / 'compression.json'} and {args.out / 'compression.png'}")


if __name__ == "__main__":
    main()
