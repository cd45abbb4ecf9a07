"""The candidates select considers: recipes (built-in and the user's) x thread counts, and what each
recipe does to the cost model's inputs (VariantSpec)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from edgeslm.compress.recipe import Recipe, builtin_names, load_recipe
from edgeslm.errors import ConfigError
from edgeslm.select.costmodel import EncoderShape, VariantSpec

QUANT_DTYPE = {"int8-dynamic": "int8", "int8-static": "int8-static", "int4-weight": "int4"}


@dataclass(frozen=True)
class Candidate:
    recipe: Recipe  # as compressed for the target: reduce_range settled, floor raised to the budget's
    threads: int

    @property
    def name(self) -> str:
        return f"{self.recipe.name}@{self.threads}t"


def recipes_for(family: str, names: list[str] | None = None) -> list[Recipe]:
    """The named recipes (built-ins or YAML paths), or every built-in recipe for this family (a
    decoder's: the gguf-* ones, one per GGUF type)."""
    if names:
        recipes = [load_recipe(n) for n in names]
        wrong = [r.name for r in recipes if family not in r.families]
        if wrong:
            raise ConfigError(f"recipe(s) {', '.join(wrong)} do not compress {family}s, and the source is a {family}")
        return recipes
    recipes = [load_recipe(n) for n in builtin_names()]
    return [r for r in recipes if family in r.families]


def encoder_recipes(names: list[str] | None = None) -> list[Recipe]:
    return recipes_for("encoder", names)


def thread_options(profile_threads: int, usable: int | None = None) -> tuple[list[int], list[int]]:
    """The thread counts a profile allows (1, 2, 4, ... and its own), split into those this machine can
    emulate and those it cannot (more threads than CPUs here would measure contention, not the device)."""
    usable = usable or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    counts = sorted({t for t in (1, 2, 4, 8, 16, 32) if t <= profile_threads} | {profile_threads})
    return [t for t in counts if t <= usable], [t for t in counts if t > usable]


def profile_threads(profile: Any, wanted: list[int] | None) -> tuple[list[int], list[int]]:
    """thread_options for a profile, kept to the `wanted` counts (select --threads; empty: all), checked:
    a count past the profile's, or none this machine can emulate, is a ConfigError."""
    emulable, beyond = thread_options(profile.threads)
    if wanted:
        wrong = [t for t in wanted if t > profile.threads]
        if wrong:
            raise ConfigError(f"threads {wrong}: profile {profile.name} allows at most {profile.threads}")
        emulable = [t for t in emulable if t in wanted]
        beyond = [t for t in beyond if t in wanted]
    if not emulable:
        raise ConfigError(f"none of the thread counts {beyond} can be emulated on this machine's CPUs")
    return emulable, beyond


def spec_for(recipe: Recipe, shape: EncoderShape) -> VariantSpec:
    """What the recipe does to MACs and bytes, read from its modifiers' configs."""
    layers, heads, ffn, sparsity, emb_sparsity = shape.layers, 1.0, 1.0, 0.0, 0.0
    for kind, cfg in recipe.torch_steps:
        if kind == "distill-layers":
            layers = len(cfg.layers)  # type: ignore[attr-defined]
        elif kind == "prune-structured":
            heads, ffn = cfg.heads_keep, cfg.ffn_keep  # type: ignore[attr-defined]
        elif kind == "prune-magnitude":
            sparsity = cfg.sparsity  # type: ignore[attr-defined]
            if cfg.include_embeddings:  # type: ignore[attr-defined]
                emb = cfg.embedding_sparsity  # type: ignore[attr-defined]
                emb_sparsity = sparsity if emb is None else emb
    q = recipe.quantize
    if q is None:
        return VariantSpec(layers, heads, ffn, sparsity, emb_sparsity)
    return VariantSpec(layers, heads, ffn, sparsity, emb_sparsity, dtype=QUANT_DTYPE[q.scheme],
                       embeddings="int8" if q.quantize_embeddings else "fp32", xz=q.compress_file,
                       graph="unfused" if q.scheme == "int4-weight" else "fused")


def compress_cost(recipe: Recipe) -> int:
    """Training steps a compression costs at least (one quantize pass counts as one): the order in
    which select compresses, cheapest first."""
    return 1 + sum(int(getattr(cfg, "steps", 0)) for _, cfg in recipe.torch_steps)
