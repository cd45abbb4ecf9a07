"""The torch modifiers: each takes the fp32 teacher and returns a smaller student (in memory)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from edgeslm.compress import prune_math
from edgeslm.compress.context import CompressContext
from edgeslm.compress.modifiers import DistillLayersConfig, MagnitudePruneConfig, StructuredPruneConfig
from edgeslm.errors import ConfigError

log = logging.getLogger(__name__)


def encoder_layers(model: Any) -> Any:
    base = model.base_model
    if not hasattr(base, "encoder") or not hasattr(base.encoder, "layer"):
        raise ConfigError(f"{type(model).__name__}: this modifier supports BERT-style encoders (encoder.layer)")
    return base.encoder.layer


class DistillLayers:
    def __init__(self, config: DistillLayersConfig):
        self.config = config

    def build(self, teacher: Any, ctx: CompressContext) -> Any:
        import torch

        layers = encoder_layers(teacher)
        if max(self.config.layers) >= len(layers):
            raise ConfigError(f"distill-layers: the teacher has {len(layers)} layers, cannot keep {self.config.layers}")
        # one deepcopy, so every kept layer shares the student's config object (a second copy per
        # layer would keep stale configs, e.g. the attention implementation the exporter switches)
        student = copy.deepcopy(teacher)
        kept = encoder_layers(student)
        student.base_model.encoder.layer = torch.nn.ModuleList([kept[i] for i in self.config.layers])
        student.config.num_hidden_layers = len(self.config.layers)
        for i, layer in enumerate(student.base_model.encoder.layer):
            for module in layer.modules():
                if hasattr(module, "layer_idx"):
                    module.layer_idx = i
        student.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
        ctx.distill(student, self.config, self.config.steps, "distill-layers")
        return student

    def repair(self, student: Any, ctx: CompressContext) -> Any:
        ctx.distill(student, self.config, self.config.repair_steps, "repair")
        return student


class MagnitudePrune:
    def __init__(self, config: MagnitudePruneConfig):
        self.config = config
        self.masks: dict[str, Any] = {}

    def targets(self, model: Any) -> dict[str, Any]:
        import torch

        out = {name: m.weight for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not name.endswith("classifier")}
        if self.config.include_embeddings:
            out["word_embeddings"] = model.base_model.embeddings.word_embeddings.weight
        return out

    def apply_masks(self, model: Any, sparsity: float | None) -> None:
        import torch

        emb_share = (self.config.embedding_sparsity if self.config.embedding_sparsity is not None
                     else self.config.sparsity) / self.config.sparsity
        with torch.no_grad():
            for name, weight in self.targets(model).items():
                if sparsity is not None:
                    target = sparsity * emb_share if name == "word_embeddings" else sparsity
                    self.masks[name] = prune_math.magnitude_mask(weight, target)
                weight.mul_(self.masks[name])

    def build(self, teacher: Any, ctx: CompressContext) -> Any:
        student = copy.deepcopy(teacher)
        student.base_model.embeddings.word_embeddings.weight.requires_grad_(True)
        ramp = int(self.config.steps * self.config.prune_until)
        every = max(1, ramp // 30)

        def after_step(step: int) -> None:
            if step <= ramp:  # on the cubic schedule: new masks every `every` steps, dense before the first
                if step % every == 0 or step == ramp:
                    self.apply_masks(student, prune_math.cubic_sparsity(step, ramp, self.config.sparsity))
                elif self.masks:
                    self.apply_masks(student, None)
            else:  # after the ramp (or with none at all): hold the final sparsity
                self.apply_masks(student, None if self.masks else self.config.sparsity)

        ctx.distill(student, self.config, self.config.steps, f"prune to {self.config.sparsity:.0%}", after_step)
        self.apply_masks(student, self.config.sparsity)
        return student

    def repair(self, student: Any, ctx: CompressContext) -> Any:
        ctx.distill(student, self.config, self.config.repair_steps, "repair", lambda step: self.apply_masks(student, None))
        return student


class StructuredPrune:
    def __init__(self, config: StructuredPruneConfig):
        self.config = config

    def build(self, teacher: Any, ctx: CompressContext) -> Any:
        import torch

        student = copy.deepcopy(teacher)
        layers = encoder_layers(student)
        n_heads = student.config.num_attention_heads
        self._accumulate_gradients(student, ctx)
        with torch.no_grad():
            for layer in layers:
                att, out = layer.attention.self, layer.attention.output.dense
                scores = prune_math.head_scores(att.query, att.key, att.value, out, att.query.weight.shape[0] // att.attention_head_size)
                heads = prune_math.keep_top(scores, self.config.heads_keep)
                size = att.attention_head_size
                rows = torch.cat([torch.arange(h * size, (h + 1) * size) for h in heads.tolist()])
                for name in ("query", "key", "value"):
                    setattr(att, name, _slice_linear(getattr(att, name), rows, dim=0))
                layer.attention.output.dense = _slice_linear(out, rows, dim=1)
                att.num_attention_heads = len(heads)
                att.all_head_size = len(rows)
                neurons = prune_math.keep_top(prune_math.neuron_scores(layer.intermediate.dense, layer.output.dense),
                                              self.config.ffn_keep)
                layer.intermediate.dense = _slice_linear(layer.intermediate.dense, neurons, dim=0)
                layer.output.dense = _slice_linear(layer.output.dense, neurons, dim=1)
        student.zero_grad(set_to_none=True)
        log.info("structured pruning: %d of %d heads, %.0f%% of FFN neurons kept per layer",
                 max(1, round(n_heads * self.config.heads_keep)), n_heads, self.config.ffn_keep * 100)
        student.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
        ctx.distill(student, self.config, self.config.steps, "structured distill")
        return student

    def _accumulate_gradients(self, model: Any, ctx: CompressContext) -> None:
        import random

        import torch
        import torch.nn.functional as F

        rng = random.Random(ctx.seed)
        label_id = {label: i for i, label in enumerate(ctx.labels)}
        model.train()
        model.zero_grad(set_to_none=True)
        for _ in range(self.config.importance_batches):
            batch = rng.sample(ctx.train, min(self.config.batch_size, len(ctx.train)))
            enc = ctx.tokenizer([ex.text for ex in batch], padding=True, truncation=True, max_length=ctx.max_length,
                                return_tensors="pt")
            F.cross_entropy(model(**enc).logits, torch.tensor([label_id[ex.label] for ex in batch])).backward()

    def repair(self, student: Any, ctx: CompressContext) -> Any:
        ctx.distill(student, self.config, self.config.repair_steps, "repair")
        return student


def _slice_linear(linear: Any, index: Any, dim: int) -> Any:
    """A new Linear keeping rows (dim 0: output features) or columns (dim 1: input features)."""
    import torch

    weight = linear.weight.index_select(dim, index).detach().clone()
    bias = linear.bias
    if bias is not None and dim == 0:
        bias = bias.index_select(0, index)
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias.detach())
    return new


STEPS = {"distill-layers": DistillLayers, "prune-magnitude": MagnitudePrune, "prune-structured": StructuredPrune}
