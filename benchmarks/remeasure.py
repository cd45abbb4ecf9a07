"""Re-measure batch-1 latency of compressed bundles against fp32 and ONNX Runtime's plain int8,
several times, without recompressing: one compression report is one sample of a noisy machine.

    .venv/bin/python benchmarks/remeasure.py runs/demo/intent-structured50-int8 runs/demo/intent-int8-static --repeats 5

Each repeat interleaves every contender in blocks (compress/measure.py, spinning off, as the
compression reports do); the table gives each bundle's median ratio to ORT int8 and its range.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edgeslm.compress.measure import interleaved_latency
from edgeslm.data.records import read_examples
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.train.run import RunFolder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--run", type=Path, default=Path("runs/demo/train-run"), help="the training run (fp32 + ORT int8)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=300, help="batch-1 calls per contender per repeat")
    args = ap.parse_args()
    bundles = [open_bundle(b) for b in args.bundles]  # each verified once
    first, m = bundles[0], bundles[0].manifest

    def clf(path: Path) -> OnnxClassifier:  # the run's own exports, with the first bundle's tokenizer settings
        return OnnxClassifier(path, first.file(m.tokenizer["file"]), m.labels, m.tokenizer["max_length"],
                              m.tokenizer.get("inputs", ["input_ids", "attention_mask"]), 2, spin=False)

    run = RunFolder(args.run)
    contenders = {"fp32": clf(run.fp32_onnx), "ort-dynamic-int8": clf(run.ort_dynamic_int8)}
    for bundle in bundles:
        contenders[bundle.manifest.name] = OnnxClassifier.from_bundle(bundle, threads=2, spin=False)
    texts = [ex.text for ex in read_examples(run.split("test"))]
    ratios: dict[str, list[float]] = {n: [] for n in contenders if n != "ort-dynamic-int8"}
    for _ in range(args.repeats):
        lat = interleaved_latency(contenders, texts, batch=1, rounds=args.rounds)
        for n in ratios:
            ratios[n].append(round(lat[n]["p50_ms"] / lat["ort-dynamic-int8"]["p50_ms"], 3))
    out = {n: {"median_vs_ort_int8": statistics.median(r), "min": min(r), "max": max(r), "ratios": r}
           for n, r in ratios.items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
