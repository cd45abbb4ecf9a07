"""Why int8 recipes start with one weight scale per matrix: time ONNX Runtime's two CPU integer
MatMul kernels with per-tensor and per-column (per-channel) weight scales, at the shape of a
MiniLM FFN layer on a ~10-token command.

    .venv/bin/python benchmarks/int8_kernels.py [--tokens 10] [--k 384] [--n 1536] [--threads 2]

Prints the median µs per call over interleaved blocks. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def session(kind: str, per_column: bool, tokens: int, k: int, n: int, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shape = (n,) if per_column else ()
    inits = [numpy_helper.from_array(rng.integers(-127, 127, size=(k, n), dtype=np.int8), "w"),
             numpy_helper.from_array(np.full(shape, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(shape, np.int8), "w_zero"),
             numpy_helper.from_array(np.zeros(n, np.float32), "bias")]
    if kind == "static":  # a calibrated activation scale: QuantizeLinear + MatMulIntegerToFloat
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
                  numpy_helper.from_array(np.array(128, np.uint8), "x_zero")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
                 helper.make_node("MatMulIntegerToFloat", ["xq", "w", "x_scale", "w_scale", "x_zero", "w_zero", "bias"],
                                  ["y"], domain="com.microsoft")]
    else:  # the range measured on every call
        nodes = [helper.make_node("DynamicQuantizeMatMul", ["x", "w", "w_scale", "w_zero", "bias"], ["y"],
                                  domain="com.microsoft")]
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--k", type=int, default=384)
    ap.add_argument("--n", type=int, default=1536)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=30)
    args = ap.parse_args()
    x = np.random.default_rng(1).normal(size=(1, args.tokens, args.k)).astype(np.float32)
    sessions = {f"{kind} {'per-column' if pc else 'per-tensor'}": session(kind, pc, args.tokens, args.k, args.n, args.threads)
                for kind in ("static", "dynamic") for pc in (False, True)}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.blocks):
        for name, s in sessions.items():
            start = time.perf_counter()
            for _ in range(200):
                s.run(None, {"x": x})
            times[name].append((time.perf_counter() - start) / 200 * 1e6)
    print(json.dumps({name: round(statistics.median(t), 1) for name, t in times.items()}, indent=2))


if __name__ == "__main__":
    main()
