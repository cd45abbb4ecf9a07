"""The micro-benchmark a profile runs once (per CPU, thread count and run): one encoder layer's linear
algebra as an ONNX graph with random weights, timed in each dtype the recipes produce (fp32, int8
dynamic, int8 with frozen activation scales, 4-bit blocks); a trivial session for the per-call
overhead; memory read bandwidth; the tokenizer; and three anchors, the run's own fp32 export (fused and
unfused) and its plain int8 quantization, whose time the synthetic layer does not explain becomes the
per-layer costs of costmodel.py. About 20 s a thread count here, cached (cache.py) by CPU, thread
count and run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.select.costmodel import Calibration, EncoderShape, layer_macs

CALIBRATION_VERSION = 4  # bump when what is measured changes: cached calibrations go stale (4: cache_bytes, refills)
REFILL_CALLS = 3  # an anchor's first calls after another anchor ran, not counted


def _time_ms(fn: Callable[[], Any], calls: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _layer_graph(path: Path, seq: int, hidden: int, ffn: int, seed: int = 0) -> None:
    """x [1, seq, d] -> Q, K, V, O projections (d x d) and FFN up (d x f) and down (f x d), summed so
    nothing is pruned away: the matrices one encoder layer multiplies, at the model's width."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def weight(name: str, rows: int, cols: int) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal((rows, cols)) * 0.05).astype(np.float32), name))
        return name

    for i, name in enumerate("qkvo"):
        nodes.append(helper.make_node("MatMul", ["x", weight(f"w_{name}", hidden, hidden)], [f"{name}"], name=f"mm{i}"))
    nodes.append(helper.make_node("MatMul", ["x", weight("w_up", hidden, ffn)], ["up"], name="mm_up"))
    nodes.append(helper.make_node("MatMul", ["up", weight("w_down", ffn, hidden)], ["down"], name="mm_down"))
    nodes.append(helper.make_node("Sum", ["q", "k", "v", "o", "down"], ["y"]))
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _trivial_graph(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "trivial", [helper.make_tensor_value_info("x", TensorProto.INT64, [1, None])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _variants(folder: Path, fp32: Path, x: np.ndarray, reduce_range: bool) -> dict[str, Path]:
    """The layer graph in every dtype select's recipes produce, with the same quantizers they use."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    from edgeslm.compress.onnx_quant import quiet_ort_quantizer
    from edgeslm.compress.static_scales import fold_integer_matmuls, freeze_activation_scales

    out = {"fp32": fp32}
    with quiet_ort_quantizer():
        quantize_dynamic(str(fp32), str(folder / "int8.onnx"), op_types_to_quantize=["MatMul"], reduce_range=reduce_range,
                         weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        out["int8"] = folder / "int8.onnx"
        model = onnx.load(str(out["int8"]))
        freeze_activation_scales(model, [{"x": x}])
        fold_integer_matmuls(model)
        onnx.save(model, str(folder / "int8-static.onnx"))
        out["int8-static"] = folder / "int8-static.onnx"
        algo = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=4)
        q = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=4, block_size=32, is_symmetric=True, accuracy_level=4,
                                 algo_config=algo)
        q.process()
        onnx.save(q.model.model, str(folder / "int4.onnx"))
        out["int4"] = folder / "int4.onnx"
    return out


def bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
    """One thread's read bandwidth: the best of a few sums over a buffer far larger than the caches."""
    buf = np.ones(mb * 2**20 // 8, dtype=np.float64)
    best = min(_time_ms(lambda: buf.sum(), repeats, warmup=1))
    return buf.nbytes / (best / 1e3) / 1e9


def last_level_cache_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> float:
    """The largest data cache cpu0 reports (sysfs `index*/size`, e.g. "32768K"); 0 when it says nothing."""
    best = 0.0
    for index in root.glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:], 1)
        digits = size[:-1] if size[-1:] in "KMG" else size
        if digits.isdigit():
            best = max(best, float(int(digits) * unit))
    return best


def median_tokens(tokenizer: Any, texts: list[str]) -> int:
    return int(statistics.median(len(tokenizer.encode(t).ids) for t in texts))


def int8_reference(fp32_fused: Path, out: Path, reduce_range: bool) -> Path:
    """The run's fused fp32 export quantized with ONNX Runtime's quantize_dynamic as the recipes do it
    (int8 MatMul and Attention, one scale per matrix), no guard, no repair: the calibration's int8 anchor."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeslm.compress.onnx_quant import quiet_ort_quantizer

    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with quiet_ort_quantizer():
            quantize_dynamic(str(fp32_fused), str(tmp), op_types_to_quantize=["MatMul", "Attention"], per_channel=False,
                             reduce_range=reduce_range, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        tmp.replace(out)
    return out


def calibrate(shape: EncoderShape, threads: int, reduce_range: bool, texts: list[str],
              anchor: Callable[[str, int], Any], tokenizer: Any, calls: int = 200, rounds: int = 10) -> Calibration:
    """Measure everything costmodel.predict needs at `threads`. `anchor(graph, threads)` returns a
    classifier (spinning off) on one of the run's reference models: "fused" and "unfused" (the fp32
    exports) and "int8" (int8_reference); `texts` are validation sentences (their median length is the
    benchmark's sequence).

    The three anchors pin the costs the synthetic layer cannot show. With int8 weights (10 MB for
    MiniLM-L6) the whole model stays in this CPU's caches and the synthetic int8 layer's time is the
    real one, so the int8 anchor gives the per-layer time outside the linear algebra; fp32 weights (42 MB)
    stream from memory on every request, which the fp32 anchor shows as a factor on the synthetic fp32
    layer (`linear_ms["fp32"]` is stored with it applied); the unfused anchor gives the unfused graph's
    own per-layer overhead (int4 runs on it)."""
    from edgeslm.runtime.engines.onnx import load_session

    seq = median_tokens(tokenizer, texts)
    x = np.random.default_rng(1).standard_normal((1, seq, shape.hidden)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="edgeslm-calibrate-") as tmp:
        folder = Path(tmp)
        _layer_graph(folder / "fp32.onnx", seq, shape.hidden, shape.ffn)
        sessions = {d: load_session(p, threads, spin=False)[0] for d, p in _variants(folder, folder / "fp32.onnx", x,
                                                                                      reduce_range).items()}
        # the dtypes take turns in rounds: on a shared machine a burst of load then hits them alike,
        # which matters because a recipe's prediction hangs on their differences
        layer_times: dict[str, list[float]] = {d: [] for d in sessions}
        for _ in range(rounds):
            for d, session in sessions.items():
                layer_times[d] += _time_ms(lambda s=session: s.run(None, {"x": x}), calls // 4, warmup=2)
        linear = {d: statistics.median(v) for d, v in layer_times.items()}
        _trivial_graph(folder / "trivial.onnx")
        trivial, _ = load_session(folder / "trivial.onnx", threads, spin=False)
        ids = np.ones((1, seq), dtype=np.int64)
        session_ms = statistics.median(_time_ms(lambda: trivial.run(None, {"x": ids}), calls))
    sample = texts[:calls]
    tokenize_ms = statistics.median(_time_ms(lambda: [tokenizer.encode(t) for t in sample], 5, warmup=1)) / len(sample)
    # the anchors take turns in blocks, so a change in the machine's load hits all three alike; the first
    # calls of a block refill the caches the other anchors evicted, which a served model does not pay:
    # they are timed but not counted (at one thread they lifted the int8 anchor's p90/p50 from 1.20 to 1.45)
    models = {g: anchor(g, threads) for g in ("fused", "unfused", "int8")}
    times: dict[str, list[float]] = {g: [] for g in models}
    for block in range(rounds):
        for g, clf in models.items():
            for k, t in enumerate(sample[block * 30 % len(sample):][:30] or sample[:30]):
                t0 = time.perf_counter()
                clf.predict([t])
                if k >= REFILL_CALLS:
                    times[g].append((time.perf_counter() - t0) * 1e3)
    per_layer = {g: (statistics.median(v) - session_ms - tokenize_ms) / shape.layers for g, v in times.items()}
    other_fused = max(0.0, per_layer["int8"] - linear["int8"])
    fp32_factor = max(1.0, (per_layer["fused"] - other_fused) / linear["fp32"])
    linear["fp32"] *= fp32_factor
    other = {"fused": other_fused, "unfused": max(0.0, per_layer["unfused"] - linear["fp32"])}
    tails = [float(np.percentile(v, 90)) / statistics.median(v) for v in (times["fused"], times["int8"])]
    p50_int8 = statistics.median(times["int8"])
    return Calibration(threads=threads, seq=seq, bench_macs=layer_macs(shape, seq), linear_ms=linear,
                       tokenize_ms=tokenize_ms, fixed_ms={"fused": session_ms, "unfused": session_ms},
                       other_layer_ms=other, p90_over_p50=statistics.mean(tails),
                       parallel_share=min(1.0, shape.layers * linear["int8"] / p50_int8),
                       bandwidth_gbs=bandwidth_gbs(), fp32_factor=fp32_factor, cache_bytes=last_level_cache_bytes())
