"""Batch-1 latency of the random-convolution features alone (models/conv_features.py, unfitted: the cost does
not depend on the biases' values), in ONNX Runtime on one thread, for the settings the series configs chose
between. The README's "features measured alone" figures.

    flock /tmp/edgeslm-cpu.lock .venv/bin/python benchmarks/conv_features_latency.py --json
    .venv/bin/python benchmarks/conv_features_latency.py --setting 500:5000/4/diff+ppv+mpv

A setting is LENGTH:FEATURES/STRIDE[/OPTIONS], OPTIONS as series_fuse.py's (diff, and the poolings).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from series_fuse import parse_setting  # noqa: E402  (the same setting strings)

from edgeslm.models.conv_features import ConvFeatureClassifier  # noqa: E402

# FordA is 500 long, ECG5000 140
SETTINGS = ["500:10000/1", "500:10000/2", "500:5000/2", "500:5000/4", "500:2500/4", "140:10000/2", "140:5000/4",
            "500:5000/4/diff", "500:5000/4/ppv+mpv", "500:5000/4/ppv+mpv+mipv", "500:5000/4/diff+ppv+mpv",
            "500:5000/4/diff+ppv+mpv+mipv", "140:5000/4/diff+ppv+mpv+mipv", "140:10000/2/diff+ppv+mpv+mipv"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--setting", action="append", help="LENGTH:FEATURES/STRIDE[/OPTIONS] (default: the list above)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for setting in args.setting or SETTINGS:
        length, rest = setting.split(":")
        length = int(length)
        features, stride, diff, pooling, _ = parse_setting(rest)  # aug changes the fit, not the graph
        model = ConvFeatureClassifier(length, 1, 2, features, stride, diff, pooling).eval()
        buffer = io.BytesIO()
        torch.onnx.export(model, (torch.zeros(2, length, 1),), buffer, dynamo=False, opset_version=17,
                          input_names=["series"], output_names=["logits"], dynamic_axes={"series": {0: "batch"}})
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).normal(size=(1, length, 1)).astype(np.float32)
        for _ in range(30):
            session.run(None, {"series": x})
        times = []
        for _ in range(args.calls):
            started = time.perf_counter()
            session.run(None, {"series": x})
            times.append(time.perf_counter() - started)
        rows.append({"setting": setting, "length": length, "features": model.features, "asked": features,
                     "stride": stride, "diff": diff, "pooling": pooling, "p50_ms": round(float(np.median(times)) * 1e3, 3)})
        print(f"{setting}: {model.features} features, p50 {rows[-1]['p50_ms']} ms", file=sys.stderr)
    if args.json:
        print(json.dumps({"threads": 1, "batch": 1, "calls": args.calls, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
