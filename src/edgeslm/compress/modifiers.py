"""Modifier configs: one validated dataclass per kind, found by its `type` string in a recipe.

Torch modifiers (distill-layers, prune-magnitude, prune-structured) change the PyTorch model and
run before export; `quantize` works on the exported ONNX graph and comes last. `quantize-gguf` is
the decoders' one modifier: llama.cpp's quantizer on a GGUF conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeslm.config import Config
from edgeslm.errors import ConfigError


@dataclass(frozen=True)
class KnowledgeDistillation(Config):
    """Shared knobs of the modifiers that retrain with the fp32 model as teacher."""

    steps: int = 600
    repair_steps: int = 400  # more distillation when the guard finds the floor missed
    batch_size: int = 32
    learning_rate: float = 1e-4
    temperature: float = 2.0
    alpha: float = 0.7  # weight of the teacher's soft targets; 1 - alpha on the true labels

    def validate(self) -> None:
        if self.steps < 1 or self.repair_steps < 0 or self.batch_size < 1:
            raise ConfigError(f"{type(self).__name__}: steps >= 1, repair_steps >= 0, batch_size >= 1")
        if not 0 < self.learning_rate < 1 or self.temperature <= 0 or not 0 <= self.alpha <= 1:
            raise ConfigError(f"{type(self).__name__}: learning_rate in (0,1), temperature > 0, alpha in [0,1]")


@dataclass(frozen=True)
class QuantizeConfig(Config):
    scheme: str = "int8-dynamic"  # int8-dynamic | int8-static | int4-weight
    per_channel: bool = False  # one weight scale per matrix; per-channel is the first guard repair (int8)
    reduce_range: str = "auto"  # 7-bit weights: auto = only where the CPU lacks VNNI
    calibration_samples: int = 256  # int8-static
    block_size: int = 32  # int4-weight
    quantize_embeddings: bool = False  # int8 Gather on the word embeddings (smaller file)
    compress_file: bool = False  # store the model xz-compressed (sparse weights shrink ~10x)
    repair_keep_fp32: int = 8  # guard repair: keep up to N most sensitive MatMuls in fp32

    SCHEMES = ("int8-dynamic", "int8-static", "int4-weight")

    def validate(self) -> None:
        if self.scheme not in self.SCHEMES:
            raise ConfigError(f"quantize: scheme must be one of {', '.join(self.SCHEMES)}, got {self.scheme!r}")
        if self.reduce_range not in ("auto", "on", "off"):
            raise ConfigError("quantize: reduce_range must be auto, on or off")
        if self.calibration_samples < 8 or self.calibration_samples > 10000:
            raise ConfigError("quantize: calibration_samples must be in [8, 10000]")
        if self.block_size not in (16, 32, 64, 128, 256):
            raise ConfigError("quantize: block_size must be 16, 32, 64, 128 or 256")
        if self.repair_keep_fp32 < 0:
            raise ConfigError("quantize: repair_keep_fp32 must be >= 0")


@dataclass(frozen=True)
class DistillLayersConfig(KnowledgeDistillation):
    """A shallower student: keep `layers` of the teacher's encoder layers, distil the rest away."""

    layers: list[int] = field(default_factory=lambda: [1, 3, 5])

    def validate(self) -> None:
        super().validate()
        if not self.layers or len(set(self.layers)) != len(self.layers) or min(self.layers) < 0:
            raise ConfigError("distill-layers: layers must be distinct non-negative layer indices")


@dataclass(frozen=True)
class MagnitudePruneConfig(KnowledgeDistillation):
    """Gradual magnitude pruning (cubic schedule) of every Linear weight, and optionally the word
    embeddings, to `sparsity`, with distillation from the fp32 teacher."""

    sparsity: float = 0.9
    include_embeddings: bool = True
    embedding_sparsity: float | None = None  # the word embeddings' own target (default: sparsity)
    prune_until: float = 0.7  # share of steps over which sparsity ramps up; the rest recovers

    def validate(self) -> None:
        super().validate()
        if not 0 < self.sparsity < 1 or not 0 < self.prune_until <= 1:
            raise ConfigError("prune-magnitude: sparsity in (0, 1), prune_until in (0, 1]")
        if self.embedding_sparsity is not None and not 0 <= self.embedding_sparsity < 1:
            raise ConfigError("prune-magnitude: embedding_sparsity in [0, 1)")


@dataclass(frozen=True)
class StructuredPruneConfig(KnowledgeDistillation):
    """Remove whole attention heads and FFN neurons (least important first, by |weight| x
    gradient importance on task data): dense, smaller matrices that any runtime runs faster."""

    heads_keep: float = 0.5
    ffn_keep: float = 0.5
    importance_batches: int = 16

    def validate(self) -> None:
        super().validate()
        if not 0 < self.heads_keep <= 1 or not 0 < self.ffn_keep <= 1:
            raise ConfigError("prune-structured: heads_keep and ffn_keep in (0, 1]")
        if self.importance_batches < 1:
            raise ConfigError("prune-structured: importance_batches >= 1")


# llama.cpp quantization types (names as llama-quantize spells them).
GGUF_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L",
              "Q3_K_M", "Q3_K_S", "Q2_K")


@dataclass(frozen=True)
class GgufQuantConfig(Config):
    qtype: str = "Q8_0"  # `type` names the modifier in a recipe
    outtype: str = "f16"  # precision of the unquantized GGUF that is measured and then quantized
    eval_tokens: int = 4096  # held-out tokens scored for perplexity
    n_ctx: int = 512  # perplexity window
    stride: int = 256  # window step; every scored token sees at least n_ctx - stride tokens of context

    def validate(self) -> None:
        if self.qtype not in GGUF_TYPES:
            raise ConfigError(f"unknown GGUF quantization type {self.qtype!r}; supported: {', '.join(GGUF_TYPES)}")
        if self.outtype not in ("f16", "f32"):
            raise ConfigError("quantize-gguf: outtype must be f16 or f32")
        if not 64 <= self.n_ctx <= 8192 or not 1 <= self.stride < self.n_ctx:
            raise ConfigError("quantize-gguf: need 64 <= n_ctx <= 8192 and 1 <= stride < n_ctx (windows overlap, "
                              "so every token after the first is scored with context)")
        if self.eval_tokens < 2:
            raise ConfigError("quantize-gguf: eval_tokens must be >= 2")


MODIFIERS: dict[str, type[Config]] = {
    "distill-layers": DistillLayersConfig,
    "prune-magnitude": MagnitudePruneConfig,
    "prune-structured": StructuredPruneConfig,
    "quantize": QuantizeConfig,
    "quantize-gguf": GgufQuantConfig,
}
TORCH_MODIFIERS = ("distill-layers", "prune-magnitude", "prune-structured")
