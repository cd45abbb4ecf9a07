"""The cost model: a variant's MACs and bytes from its recipe and the encoder's shape, turned into
latency, memory and energy on a profile by the throughputs a micro-benchmark measured there
(calibrate.py). Pure functions; nothing here runs a model.

Latency of one batch-1 request of `seq` tokens (ms), for a variant with L' layers:

    t = fixed + tokenize + L' x (other_layer x width + linear_ms[dtype] x macs_layer / macs_bench)

Weights that fit the last-level cache are read from it on every request; weights that do not stream from
memory, which bounds a layer from below (bytes / bandwidth) and is what the fp32 anchor's factor over the
synthetic layer measured, so a smaller fp32 model that fits (a 3-layer student) runs at the synthetic rate.

`linear_ms[dtype]` is the measured time of one layer's linear algebra (Q, K, V, O, FFN up and down
at the model's width) in that dtype and thread count; `fixed` is a trivial session's call, and
`other_layer` (attention core, LayerNorm, GELU, dispatch) what timing the run's own fp32 export and its
plain int8 quantization once on the profile leaves unexplained (calibrate.py).
Memory is the governor's own rule (OnnxClassifier.memory_bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# bytes per weight by storage dtype; int4 blocks of 32 carry one fp32 scale (4/32 byte a weight)
WEIGHT_BYTES = {"fp32": 4.0, "int8": 1.0, "int4": 0.5 + 4 / 32}
# the governor budgets an ONNX engine at 1.2 x its weights + 24 MiB (runtime/engines/onnx.py)
RAM_FACTOR, RAM_FIXED_MB = 1.2, 24.0
# xz on an int8 file: the zeros cost almost nothing, the rest hardly compresses (sparse90-int8 measured
# 4.9 MB of 22.9: 0.21 at 88% weights zero)
XZ_NONZERO_RATIO, XZ_FLOOR = 1.25, 0.05
# the share of the last-level cache a model's weights may fill and still be read from it on every request
CACHE_SHARE = 0.75


@dataclass(frozen=True)
class EncoderShape:
    """The dimensions that cost anything, from a BERT-like config.json."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    vocab: int
    positions: int
    labels: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> EncoderShape:
        return cls(int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["intermediate_size"]),
                   int(cfg["num_attention_heads"]), int(cfg["vocab_size"]), int(cfg.get("max_position_embeddings", 512)),
                   max(2, len(cfg.get("id2label") or {}) or 2))


@dataclass(frozen=True)
class VariantSpec:
    """What a recipe does to the cost: how much of the encoder it keeps and in which dtype."""

    layers: int  # encoder layers kept
    heads_keep: float = 1.0  # share of attention heads kept (prune-structured)
    ffn_keep: float = 1.0  # share of FFN neurons kept
    sparsity: float = 0.0  # share of Linear weights that are zero (prune-magnitude): dense kernels, smaller xz file
    embedding_sparsity: float = 0.0
    dtype: str = "fp32"  # the MatMuls: fp32 | int8 | int8-static | int4
    embeddings: str = "fp32"  # fp32 | int8
    xz: bool = False
    graph: str = "fused"  # fused (Attention op) | unfused (int4: MatMulNBits needs the plain MatMuls)

    @property
    def weight_dtype(self) -> str:
        return "int8" if self.dtype.startswith("int8") else self.dtype


def layer_macs(shape: EncoderShape, seq: int, heads_keep: float = 1.0, ffn_keep: float = 1.0) -> float:
    """Multiply-accumulates of one encoder layer's linear algebra for `seq` tokens: Q, K, V, O
    projections [seq, d] x [d, d'] and FFN [seq, d] x [d, f'] x [f', d] (d' = d x heads_keep)."""
    d_att = shape.hidden * heads_keep
    ffn = shape.ffn * ffn_keep
    return seq * (4 * shape.hidden * d_att + 2 * shape.hidden * ffn)


def attention_macs(shape: EncoderShape, seq: int, heads_keep: float = 1.0) -> float:
    """Scores and the weighted sum: [seq, d'] x [d', seq] and [seq, seq] x [seq, d']."""
    return 2 * seq * seq * shape.hidden * heads_keep


def params(shape: EncoderShape, spec: VariantSpec) -> dict[str, float]:
    """Weights by part: the layers' matrices, the embeddings (word, position, type), the rest (biases,
    LayerNorms, pooler, classifier) that stays fp32."""
    d, d_att, ffn = shape.hidden, shape.hidden * spec.heads_keep, shape.ffn * spec.ffn_keep
    matrices = spec.layers * (4 * d * d_att + 2 * d * ffn)
    embeddings = (shape.vocab + shape.positions + 2) * d
    rest = spec.layers * (3 * d_att + d + ffn + d + 4 * d) + d * d + d + d * shape.labels + shape.labels + 2 * d
    return {"matrices": matrices, "embeddings": embeddings, "rest": rest}


def model_bytes(shape: EncoderShape, spec: VariantSpec) -> float:
    """The ONNX file's bytes once inflated (what the session holds): dense, sparsity or not."""
    p = params(shape, spec)
    return (p["matrices"] * WEIGHT_BYTES[spec.weight_dtype] + p["embeddings"] * WEIGHT_BYTES[spec.embeddings]
            + p["rest"] * 4.0)


def file_bytes(shape: EncoderShape, spec: VariantSpec) -> float:
    """Bytes on disk: the inflated size, or with xz roughly the non-zero part of it."""
    dense = model_bytes(shape, spec)
    if not spec.xz:
        return dense
    p = params(shape, spec)
    nonzero = (p["matrices"] * (1 - spec.sparsity) * WEIGHT_BYTES[spec.weight_dtype]
               + p["embeddings"] * (1 - spec.embedding_sparsity) * WEIGHT_BYTES[spec.embeddings] + p["rest"] * 4.0)
    return min(dense, max(dense * XZ_FLOOR, nonzero * XZ_NONZERO_RATIO))


def working_set_bytes(shape: EncoderShape, spec: VariantSpec) -> float:
    """What one request reads of the weights: every kept layer's matrices in their dtype and the fp32 rest
    (the embeddings are looked up a row a token)."""
    p = params(shape, spec)
    return p["matrices"] * WEIGHT_BYTES[spec.weight_dtype] + p["rest"] * 4.0


def streams(shape: EncoderShape, spec: VariantSpec, cache_bytes: float) -> bool:
    """Whether the variant's weights outgrow the last-level cache (a share of it: activations, code and the
    other process's data live there too), so every request reads them from memory. Unknown cache: yes."""
    return working_set_bytes(shape, spec) > CACHE_SHARE * cache_bytes


def ram_mb(shape: EncoderShape, spec: VariantSpec) -> float:
    return (model_bytes(shape, spec) * RAM_FACTOR) / 2**20 + RAM_FIXED_MB


@dataclass(frozen=True)
class Calibration:
    """What the micro-benchmark measured on one CPU at one thread count (calibrate.py); times in ms."""

    threads: int
    seq: int  # tokens of the benchmark's request (the run's median text)
    bench_macs: float  # MACs of the benchmark layer (layer_macs at the model's width and `seq`)
    linear_ms: dict[str, float]  # dtype -> one layer's linear algebra
    tokenize_ms: float
    fixed_ms: dict[str, float]  # graph (fused | unfused) -> per-request time outside the layers
    other_layer_ms: dict[str, float]  # graph -> per-layer time outside the linear algebra
    p90_over_p50: float  # the fp32 anchor's tail
    parallel_share: float  # share of a request's time that runs on every thread (the linear algebra)
    bandwidth_gbs: float  # memory read bandwidth, one thread: a floor on weight streaming
    fp32_factor: float = 1.0  # real fp32 layers over the synthetic one (weights that no longer fit the caches)
    cache_bytes: float = 0.0  # the last-level cache (0: unknown, every variant is taken to stream its weights)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**data)


def predict_latency_ms(shape: EncoderShape, spec: VariantSpec, cal: Calibration) -> dict[str, float]:
    """Predicted p50 and p90 of a batch-1 request on the calibrated CPU and thread count."""
    macs = layer_macs(shape, cal.seq, spec.heads_keep, spec.ffn_keep)
    linear_ms = cal.linear_ms[spec.dtype]
    streamed = streams(shape, spec, cal.cache_bytes)
    if spec.dtype == "fp32" and not streamed and streams(shape, VariantSpec(shape.layers), cal.cache_bytes):
        linear_ms /= cal.fp32_factor  # the anchor streamed its weights; this smaller fp32 model stays in the cache
    linear = linear_ms * macs / cal.bench_macs
    # the attention core and elementwise ops shrink with the heads and neurons they run over
    width = (shape.hidden * spec.heads_keep + shape.ffn * spec.ffn_keep) / (shape.hidden + shape.ffn)
    other = cal.other_layer_ms[spec.graph] * width
    # streaming the weights once from memory bounds a layer from below, whatever the kernels do
    stream = macs / cal.seq * WEIGHT_BYTES[spec.weight_dtype] / (cal.bandwidth_gbs * 1e6) if streamed else 0.0
    p50 = cal.fixed_ms[spec.graph] + cal.tokenize_ms + spec.layers * (other + max(linear, stream))
    return {"p50_ms": p50, "p90_ms": p50 * cal.p90_over_p50, "linear_ms": spec.layers * linear}


def cpu_share(threads: int, parallel_share: float) -> float:
    """Cores kept busy on average by one request: the parallel part on every thread, the rest on one
    (ONNX Runtime's workers do not spin here: select measures with spinning off, as compress does)."""
    return 1 + (threads - 1) * parallel_share


def joules(wall_s: float, cpu_s: float, cores: int, watts_idle: float, watts_busy: float) -> float:
    """runtime/energy.py's linear model, for a prediction (same formula, no profile object)."""
    util = min(1.0, cpu_s / (wall_s * cores)) if wall_s > 0 else 0.0
    return watts_idle * wall_s + (watts_busy - watts_idle) * util * wall_s


def predict(shape: EncoderShape, spec: VariantSpec, cal: Calibration, cores: int, watts_idle: float,
            watts_busy: float) -> dict[str, float]:
    """Every metric select judges, before anything is compressed (accuracy is not predicted here)."""
    lat = predict_latency_ms(shape, spec, cal)
    wall = lat["p50_ms"] / 1e3
    parallel = min(1.0, lat["linear_ms"] / lat["p50_ms"]) if lat["p50_ms"] else 0.0
    cpu = wall * cpu_share(cal.threads, parallel)
    return {"p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "ram_mb": ram_mb(shape, spec),
            "size_mb": file_bytes(shape, spec) / 1e6, "joules": joules(wall, cpu, cores, watts_idle, watts_busy)}


def relative_error(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured if measured else float("inf")
