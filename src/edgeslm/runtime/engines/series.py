"""A time-series classifier bundle served with ONNX Runtime: float32 series [batch, length, channels] in,
class probabilities out. The graph's static length and channels are the input contract; a series that
does not match is refused with a ValueError that says what was expected (the server's 400).

`probabilities(x)` is the array API (what a streaming window or a benchmark calls); `predict(series)` is
the classify API the server's batcher and the bench call, one {"label", "score"} a series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeslm.data.series import parse_series
from edgeslm.errors import BundleError
from edgeslm.formats.manifest import SERIES_ENGINE, SERIES_TASK
from edgeslm.runtime.engines.onnx import load_session

CHUNK = 256  # series per session.run at most


class SeriesClassifier:
    def __init__(self, model: Any, labels: Sequence[str], threads: int | None = None, spin: bool = True):
        self.name = "series"  # from_bundle names it after the manifest
        self.labels = list(labels)
        self.session, self.model_bytes = load_session(model, threads, spin)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 3:
            raise BundleError(f"{model}: a series model takes one input [batch, length, channels]")
        length, channels = inputs[0].shape[1:]
        if not (isinstance(length, int) and isinstance(channels, int) and length > 0 and channels > 0):
            raise BundleError(f"{model}: the input's length and channels must be fixed numbers, got {inputs[0].shape}")
        self.input_name, self.length, self.channels = inputs[0].name, length, channels
        if outputs[0].shape[-1] != len(self.labels):
            raise BundleError(f"{model}: the model has {outputs[0].shape[-1]} outputs but the manifest lists "
                              f"{len(self.labels)} labels")

    @classmethod
    def from_bundle(cls, bundle: Any, threads: int | None = None, spin: bool = True) -> SeriesClassifier:
        m = bundle.manifest
        if m.task != SERIES_TASK or m.engine != SERIES_ENGINE:
            raise BundleError(f"{bundle.path}: a {m.task} bundle for {m.engine} is not a time-series classifier")
        engine = cls(bundle.model_path, m.labels, threads, spin)
        engine.name = m.name
        return engine

    def memory_bytes(self) -> int:
        """What the governor budgets: the weights twice (file and session) plus ORT's arenas; these models
        are under 1 MB, so the fixed part dominates."""
        return int(self.model_bytes * 2) + 16 * 2**20

    def close(self) -> None:
        self.session = None

    def example(self) -> np.ndarray:
        """A zero series of the model's shape [length, channels]: for warming a session."""
        return np.zeros((self.length, self.channels), dtype=np.float32)

    def check(self, x: np.ndarray) -> np.ndarray:
        """x as float32 [batch, length, channels], or ValueError naming the expected shape."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 2 and self.channels == 1 and x.shape[1] != 1:  # [batch, length]: one channel, left implicit
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[1:] != (self.length, self.channels):
            raise ValueError(f"this model reads series of {self.length} time steps x {self.channels} channel(s); "
                             f"got {' x '.join(map(str, x.shape[1:])) or 'a scalar'}")
        if not np.isfinite(x).all():
            raise ValueError("series values must be finite numbers (no NaN or infinity)")
        return x

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [batch, K] of float32 series [batch, length, channels]."""
        logits = self._run(self.check(x))
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def logits(self, series: Sequence[Any]) -> np.ndarray:
        return self._run(self.check(self._stack(series)))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Logits in chunks of CHUNK series: a graph's intermediates grow with the batch (the random-convolution
        features hold batch x features x positions comparisons), and a whole TEST split in one call ran a
        24 GB machine out of memory."""
        if len(x) <= CHUNK:
            return self.session.run(None, {self.input_name: x})[0]
        return np.concatenate([self.session.run(None, {self.input_name: x[i:i + CHUNK]})[0]
                               for i in range(0, len(x), CHUNK)])

    def predict(self, series: Sequence[Any]) -> list[dict[str, Any]]:
        """One {"label", "score"} per series; each an array [length, channels] (or [length]) or a JSON list."""
        probs = self.probabilities(self._stack(series))
        best = probs.argmax(axis=-1)
        return [{"label": self.labels[i], "score": float(row[i])} for i, row in zip(best, probs, strict=True)]

    def _stack(self, series: Sequence[Any]) -> np.ndarray:
        if isinstance(series, np.ndarray):
            return series
        if not series:
            raise ValueError("give at least one series")
        arrays = [s if isinstance(s, np.ndarray) else parse_series(s, f"series[{i}]") for i, s in enumerate(series)]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"series of different shapes in one call: {sorted(shapes)[:3]}")
        return np.stack(arrays)
