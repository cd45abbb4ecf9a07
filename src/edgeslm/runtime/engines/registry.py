"""Engines by the name a bundle's manifest gives its runtime ("onnxruntime", "onnxruntime-early-exit", "llama.cpp"): how to load one
and what it can do. A new kind of engine (a cache, a template matcher, a router) plugs in by registering;
the server routes requests by an engine's capabilities, never by model family.

Each loader imports its runtime when the first bundle needing it loads, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import BundleError, ConfigError


@dataclass(frozen=True)
class LoadSettings(Config):
    """What the governor decides for every engine it loads, whatever its kind."""

    threads: int | None = None  # None: the engine's own default
    spin: bool = True  # ONNX Runtime workers spin when idle: faster alone, unfair to a model beside it

    def validate(self) -> None:
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise ConfigError(f"LoadSettings.threads must be between 1 and 256, got {self.threads}")


Loader = Callable[[Any, LoadSettings], Any]  # (an opened, verified bundle, settings) -> an engine


@dataclass(frozen=True)
class EngineKind:
    name: str  # the manifest's `engine`
    capabilities: frozenset[str]  # what the server may send it: "classify", "classify-series", "chat", "complete"
    load: Loader


ENGINES: dict[str, EngineKind] = {}


def register(name: str, capabilities: Iterable[str]) -> Callable[[Loader], Loader]:
    """Decorate a loader to serve bundles whose manifest names `name` as their engine."""
    def add(load: Loader) -> Loader:
        if name in ENGINES:
            raise ValueError(f"an engine named {name!r} is already registered")
        ENGINES[name] = EngineKind(name, frozenset(capabilities), load)
        return load
    return add


def engine_kind(name: str, where: Any = "the manifest") -> EngineKind:
    kind = ENGINES.get(name)
    if kind is None:
        raise BundleError(f"{where}: engine {name!r} is not one this edgeslm can run; "
                          f"known engines: {', '.join(sorted(ENGINES))}")
    return kind


def load_engine(bundle: Any, settings: LoadSettings | None = None) -> Any:
    """The engine the bundle's manifest names, loaded from the (already verified) bundle."""
    return engine_kind(bundle.manifest.engine, bundle.path).load(bundle, settings or LoadSettings())


@register("onnxruntime", {"classify"})
def _onnxruntime(bundle: Any, settings: LoadSettings) -> Any:
    from edgeslm.runtime.engines.onnx import OnnxClassifier

    return OnnxClassifier.from_bundle(bundle, threads=settings.threads, spin=settings.spin)


@register("onnxruntime-early-exit", {"classify"})
def _onnxruntime_early_exit(bundle: Any, settings: LoadSettings) -> Any:
    from edgeslm.runtime.engines.early_exit import EarlyExitClassifier

    # never spinning, whatever the settings: each segment is its own ORT session, and one segment's spinning
    # workers took the cores the next one needed (all three segments at batch 1: 16.3 ms spinning, 4.5 ms not,
    # median of 380 calls on 2 cores shared with other jobs; the single-graph int8 model: 7.3 ms and 3.4 ms)
    return EarlyExitClassifier.from_bundle(bundle, threads=settings.threads, spin=False)


@register("onnxruntime-series", {"classify-series"})
def _onnxruntime_series(bundle: Any, settings: LoadSettings) -> Any:
    from edgeslm.runtime.engines.series import SeriesClassifier

    return SeriesClassifier.from_bundle(bundle, threads=settings.threads, spin=settings.spin)


@register("llama.cpp", {"chat", "complete"})
def _llama_cpp(bundle: Any, settings: LoadSettings) -> Any:
    from edgeslm.runtime.engines.llama import LlamaEngine

    return LlamaEngine.from_bundle(bundle, threads=settings.threads)
