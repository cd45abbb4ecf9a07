"""The decoder cost model: a GGUF type's file size, bytes read per token and FLOPs from the source's
tensor list, turned into tokens/s, time to first token, memory and energy on a profile by what one
short run of the source itself measured there (DecoderCalibration). Pure functions; nothing here runs
a model.

Batch-1 decode reads every weight once per token (the output layer too, and with tied embeddings that is
the token embedding), so it is memory-bandwidth bound: ms/token = bytes read per token / bandwidth, the
bandwidth being the one the source reached at that thread count. Prefill is compute bound: every prompt
token goes through each layer's matmuls, the output layer only for the last one (llama.cpp computes logits
for the last prompt token alone), so time to first token = (prompt tokens x layer weights + output weights)
x the time per weight the calibration runs reached for each ggml type. RAM = file (mmapped, all
touched) + KV cache at the serving context + what llama.cpp adds beside them (measured on the source).

Which ggml type each tensor gets follows llama.cpp's llama_tensor_get_type for LLaMA models: the output
layer (or the tied token embedding) at Q6_K, some attn_v and ffn_down at Q6_K in the *_K_M mixes, and
k-quants (256-wide blocks) falling back to Q5_0 / Q5_1 / Q8_0 where a row is not a multiple of 256:
SmolLM2-135M's width is 576, so its 'Q4_K_M' is mostly Q5_0 (5.5 bits a weight), not 4.85.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# ggml type -> (weights per block, bytes per block), as gguf-py's GGML_QUANT_SIZES spells them
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20),
          "Q5_0": (32, 22), "Q5_1": (32, 24), "IQ4_NL": (32, 18), "Q2_K": (256, 84), "Q3_K": (256, 110),
          "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
QK_K = 256
# a llama.cpp file type -> the ggml type of its ordinary 2-D tensors
BASE = {"Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q6_K": "Q6_K",
        "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K",
        "Q3_K_S": "Q3_K", "Q2_K": "Q2_K"}
FALLBACK = {"Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
KV_BYTES_PER_VALUE = 2  # llama.cpp's default f16 KV cache (runtime/engines/llama.py)


@dataclass(frozen=True)
class Tensor:
    name: str  # GGUF name: blk.3.attn_v.weight, output.weight, token_embd.weight
    shape: tuple[int, ...]  # ggml order: shape[0] (ne0) is the row length, the input width of a matmul

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def layer(self) -> int | None:
        parts = self.name.split(".")
        return int(parts[1]) if parts[0] == "blk" else None


@dataclass(frozen=True)
class DecoderShape:
    """The source's tensors and what the KV cache needs, read from its GGUF header."""

    tensors: tuple[Tensor, ...]
    layers: int
    kv_width: int  # kv heads x head dim
    header_bytes: int  # metadata and tokenizer before the tensor data: carried over as is

    @property
    def tied(self) -> bool:
        return not any(t.name == "output.weight" for t in self.tensors)

    def kv_bytes(self, n_ctx: int) -> int:
        return n_ctx * self.layers * self.kv_width * 2 * KV_BYTES_PER_VALUE

    def _lookup(self, t: Tensor) -> bool:
        return t.name == "token_embd.weight" and not self.tied

    def is_output(self, t: Tensor) -> bool:
        return is_output(t.name, self.tied)


def is_output(name: str, tied: bool) -> bool:
    """The output layer: output.weight, or the token embedding where it is tied."""
    return name == "output.weight" or (tied and name == "token_embd.weight")


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of the layers that get more bits in the *_K_M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(t: Tensor, ftype: str, n_layer: int, tied: bool) -> str:
    """The ggml type llama.cpp's quantizer gives tensor `t` for file type `ftype` (LLaMA, no imatrix)."""
    if len(t.shape) < 2:
        return "F32"  # norms stay f32
    base = BASE[ftype]
    new = base
    i = t.layer
    if is_output(t.name, tied):
        if t.shape[0] % QK_K != 0:
            return "Q8_0"
        return base if base == "Q8_0" else "Q6_K"
    if t.name.endswith("attn_v.weight") and i is not None:
        if ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, n_layer):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype == "Q2_K":
            new = "Q3_K"
    elif t.name.endswith("ffn_down.weight") and i is not None:
        if ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, n_layer):
            new = "Q6_K"
        elif ftype == "Q3_K_M" and (i < n_layer // 16 or use_more_bits(i, n_layer)):
            new = "Q5_K" if i < n_layer // 16 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
    elif t.name.endswith("attn_output.weight") and ftype in ("Q3_K_M", "Q3_K_L"):
        new = "Q4_K" if ftype == "Q3_K_M" else "Q5_K"
    if new in FALLBACK and t.shape[0] % QK_K != 0:
        new = FALLBACK[new]
        if t.shape[0] % BLOCKS[new][0] != 0:
            new = "F16"
    return new


def tensor_bytes(t: Tensor, ggml_type: str) -> int:
    per, size = BLOCKS[ggml_type]
    return t.elements // per * size


def type_mix(shape: DecoderShape, ftype: str) -> dict[str, str]:
    """tensor name -> ggml type in the quantized file."""
    return {t.name: tensor_type(t, ftype, shape.layers, shape.tied) for t in shape.tensors}


def file_bytes(shape: DecoderShape, ftype: str) -> int:
    mix = type_mix(shape, ftype)
    return shape.header_bytes + sum(tensor_bytes(t, mix[t.name]) for t in shape.tensors)


def bytes_per_token(shape: DecoderShape, mix: dict[str, str]) -> float:
    """Weight bytes one decode step reads: all of them but an untied token embedding's other rows."""
    total = 0.0
    for t in shape.tensors:
        b = tensor_bytes(t, mix[t.name])
        total += b / t.shape[-1] if shape._lookup(t) else b
    return total


def bits_per_weight(shape: DecoderShape, ftype: str) -> float:
    mix = type_mix(shape, ftype)
    matrices = [t for t in shape.tensors if len(t.shape) >= 2]
    return 8 * sum(tensor_bytes(t, mix[t.name]) for t in matrices) / sum(t.elements for t in matrices)


@dataclass(frozen=True)
class DecoderCalibration:
    """Short runs of calibration GGUFs (the source and its Q8_0 requantization) at one thread count on
    this CPU, and the per-ggml-type rates they imply. Kernels, not only bytes, set the speed: at one
    thread here a Q8_0 SmolLM2 decoded as fast as the Q4_1 one (1.5x the bytes) and prefilled 2x faster."""

    threads: int
    prompt_tokens: int
    new_tokens: int
    n_ctx: int
    ns_per_byte: dict[str, float]  # ggml type -> decode time per weight byte read
    ns_per_weight: dict[str, float]  # ggml type -> prefill time per weight a prompt token goes through
    overhead_mb: float  # peak RSS the engine adds beyond the file and the KV cache
    cpu_share: float  # process CPU seconds / wall seconds over a request (threads kept busy)
    measured: list[dict[str, Any]]  # the calibration runs' own figures

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderCalibration:
        return cls(**data)

    def rate(self, table: dict[str, float], ggml_type: str) -> float:
        return nearest_rate(table, ggml_type)


def nearest_rate(table: dict[str, float], ggml_type: str) -> float:
    """A calibrated type's rate, or the one of the calibrated type nearest in bits per weight."""
    if ggml_type in table:
        return table[ggml_type]
    bits = _bits(ggml_type)
    return table[min(table, key=lambda t: (abs(_bits(t) - bits), t))]


def _bits(ggml_type: str) -> float:
    per, size = BLOCKS[ggml_type]
    return 8 * size / per


@dataclass(frozen=True)
class Work:
    """What one request costs a file, per ggml type: weight bytes one decode step reads, and matmul weights
    every prompt token is multiplied by (`per_token`) or only the last one (`once`: the output layer)."""

    read: dict[str, float]
    per_token: dict[str, float]
    once: dict[str, float]

    @property
    def multiplied(self) -> set[str]:
        """The types of the matmuls prefill runs."""
        return set(self.per_token) | set(self.once)

    def prefill_weights(self, ggml_type: str, prompt_tokens: int) -> float:
        return self.per_token.get(ggml_type, 0.0) * prompt_tokens + self.once.get(ggml_type, 0.0)

    def material(self, share: float) -> list[str]:
        """The types holding at least `share` of the bytes read (F32 norms never count), biggest first."""
        total = sum(self.read.values())
        return sorted((t for t, b in self.read.items() if t != "F32" and b >= share * total), key=lambda t: -self.read[t])


MATERIAL = 0.01  # a type with less of a file's bytes takes the rate of the calibrated type nearest in bits


def by_type(shape: DecoderShape, mix: dict[str, str]) -> Work:
    read: dict[str, float] = {}
    per_token: dict[str, float] = {}
    once: dict[str, float] = {}
    for t in shape.tensors:
        ty = mix[t.name]
        b = tensor_bytes(t, ty)
        read[ty] = read.get(ty, 0.0) + (b / t.shape[-1] if shape._lookup(t) else b)
        if len(t.shape) < 2 or shape._lookup(t):
            continue
        side = once if shape.is_output(t) else per_token
        side[ty] = side.get(ty, 0.0) + t.elements
    return Work(read, per_token, once)


def _known(table: dict[str, float], ggml_type: str) -> float:
    """A type's rate while calibrating: its own, the nearest calibrated one's, or 0 before any is known."""
    return nearest_rate(table, ggml_type) if table else 0.0


def calibrate_from(shape: DecoderShape, runs: Sequence[tuple[dict[str, str], dict[str, Any]]], threads: int,
                   n_ctx: int) -> DecoderCalibration:
    """Per-type rates from measured runs (measure_gguf's figures) of files with known type mixes, solved
    one type at a time: a run whose material types are all known but one gives that one the time the known
    types do not explain (a Q8_0 file is all Q8_0; a Q6_K file of a 576-wide model is Q6_K beside the Q8_0
    fallbacks). Where no run is left with a single unknown type, the next run's biggest unknown type takes
    the rest, and its smaller unknown types the rate nearest in bits."""
    ns_byte: dict[str, float] = {}
    ns_weight: dict[str, float] = {}
    pending = [(by_type(shape, mix), run) for mix, run in runs]
    while pending:
        unknown = [[t for t in w.material(MATERIAL) if t not in ns_byte] for w, _ in pending]
        i = next((k for k, u in enumerate(unknown) if len(u) <= 1), 0)
        work, run = pending.pop(i)
        if not unknown[i]:
            continue
        new = unknown[i][0]
        rest = [t for t in work.read if t not in (new, "F32")]
        # what the known types leave, but never under a tenth of the run's own mean rate (noise on a small share)
        ms = 1e3 / run["tok_s"]
        known_ms = sum(work.read[t] * _known(ns_byte, t) for t in rest) / 1e6
        ns_byte[new] = max(0.1 * ms * 1e6 / sum(work.read.values()), (ms - known_ms) * 1e6 / work.read[new])
        p = run["prompt_tokens"]
        known_ttft = sum(work.prefill_weights(t, p) * _known(ns_weight, t) for t in rest) / 1e6
        total = sum(work.prefill_weights(t, p) for t in work.multiplied)
        ns_weight[new] = max(0.1 * run["ttft_ms"] * 1e6 / total, (run["ttft_ms"] - known_ttft) * 1e6 / work.prefill_weights(new, p))
    last = runs[-1][1]
    overhead = last["peak_bytes"] - last["file_bytes"] - shape.kv_bytes(n_ctx)
    return DecoderCalibration(threads=threads, prompt_tokens=last["prompt_tokens"], new_tokens=last["new_tokens"],
                              n_ctx=n_ctx, ns_per_byte=ns_byte, ns_per_weight=ns_weight,
                              overhead_mb=max(0.0, overhead / 2**20),
                              cpu_share=sum(r["cpu_s"] for _, r in runs) / sum(r["wall_s"] for _, r in runs),
                              measured=[r for _, r in runs])


def request_joules(ttft_ms: float, tok_s: float, new_tokens: int, cpu_share: float, cores: int, watts_idle: float,
                   watts_busy: float) -> float:
    """Whole-device energy per generated token of one request (prefill included), runtime/energy.py's model."""
    wall = ttft_ms / 1e3 + max(0, new_tokens - 1) / tok_s
    util = min(1.0, cpu_share / cores)
    return (watts_idle * wall + (watts_busy - watts_idle) * util * wall) / new_tokens


def predict(shape: DecoderShape, ftype: str, cal: DecoderCalibration, cores: int, watts_idle: float,
            watts_busy: float) -> dict[str, float]:
    """Every cost select judges a decoder by, before it is quantized (perplexity is not predicted)."""
    work = by_type(shape, type_mix(shape, ftype))
    ms_token = sum(b * cal.rate(cal.ns_per_byte, t) for t, b in work.read.items() if t != "F32") / 1e6
    ttft = sum(work.prefill_weights(t, cal.prompt_tokens) * cal.rate(cal.ns_per_weight, t)
               for t in work.multiplied) / 1e6
    tok_s = 1e3 / ms_token
    size = file_bytes(shape, ftype)
    ram = (size + shape.kv_bytes(cal.n_ctx)) / 2**20 + cal.overhead_mb
    return {"tok_s": tok_s, "ms_per_token": ms_token, "ttft_ms": ttft, "ram_mb": ram, "size_mb": size / 1e6,
            "joules": request_joules(ttft, tok_s, cal.new_tokens, cal.cpu_share, cores, watts_idle, watts_busy)}


def shape_from_tensors(tensors: Sequence[tuple[str, Sequence[int]]], metadata: dict[str, Any],
                       header_bytes: int) -> DecoderShape:
    arch = str(metadata.get("general.architecture", "llama"))
    heads = int(metadata[f"{arch}.attention.head_count"])
    kv_heads = int(metadata.get(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(metadata.get(f"{arch}.attention.key_length", int(metadata[f"{arch}.embedding_length"]) // heads))
    return DecoderShape(tuple(Tensor(n, tuple(int(d) for d in s)) for n, s in tensors),
                        int(metadata[f"{arch}.block_count"]), kv_heads * head_dim, header_bytes)
