"""The time-series engine: [batch, length, channels] float32 in, class probabilities out, torch-free."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslm.data.series import read_series_rows
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.registry import load_engine
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.train.run import RunFolder


@pytest.fixture(scope="module")
def engine(series_bundle):
    return load_engine(open_bundle(series_bundle))


def test_registry_loads_the_series_engine_by_the_manifest(engine, series_bundle):
    assert isinstance(engine, SeriesClassifier) and engine.name == "ecg5000-int8"
    assert (engine.length, engine.channels) == (140, 1) and engine.labels == ["1", "2", "3", "4", "5"]


def test_probabilities_and_predict_agree(engine, series_run):
    x, _ = read_series_rows(RunFolder(series_run).split("val"))
    p = engine.probabilities(x[:8])
    assert p.shape == (8, 5) and np.allclose(p.sum(-1), 1, atol=1e-5) and (p >= 0).all()
    answers = engine.predict([x[i] for i in range(8)])
    assert [a["label"] for a in answers] == [engine.labels[i] for i in p.argmax(-1)]
    assert answers[3]["score"] == pytest.approx(float(p[3].max()), abs=1e-6)
    # a JSON list of numbers, as the server sends it, is the same series (int8 activation ranges are measured per
    # call, so a batch of one scores a little differently from a batch of eight)
    assert engine.predict([x[0][:, 0].tolist()]) == engine.predict([x[0]])
    assert engine.predict([x[0]])[0]["score"] == pytest.approx(answers[0]["score"], abs=0.01)
    assert np.array_equal(engine.probabilities(x[:3, :, 0]), engine.probabilities(x[:3]))  # [batch, length]: one channel


def test_a_large_batch_runs_in_chunks_with_every_row_kept(engine, series_run, monkeypatch):
    """A whole TEST split in one session.run held batch x features x positions comparisons at once (out of memory
    on 24 GB with the features' options); the engine runs CHUNK series at a time."""
    from edgeslm.runtime.engines.series import CHUNK

    x, _ = read_series_rows(RunFolder(series_run).split("val"))
    many = np.concatenate([x] * (CHUNK // len(x) + 2))[:CHUNK + 37]
    session, batches = engine.session, []

    class Watched:  # ONNX Runtime's session, with the batch sizes it was given written down
        def run(self, names, feeds):
            batches.append(len(next(iter(feeds.values()))))
            return session.run(names, feeds)

    monkeypatch.setattr(engine, "session", Watched())
    p = engine.probabilities(many)
    assert batches == [CHUNK, 37] and p.shape == (CHUNK + 37, 5)
    assert np.array_equal(p, np.concatenate([engine.probabilities(many[:CHUNK]), engine.probabilities(many[CHUNK:])]))
    assert np.array_equal(engine.logits(many).argmax(-1), p.argmax(-1))


def test_z_normalised_inside_the_graph(engine, series_run):
    x, _ = read_series_rows(RunFolder(series_run).split("val"))
    assert np.allclose(engine.probabilities(x[:4] * 250 + 3), engine.probabilities(x[:4]), atol=2e-2)


@pytest.mark.parametrize(("x", "message"), [
    (np.zeros((1, 139, 1)), "140 time steps x 1 channel"),
    (np.zeros((1, 140, 2)), "140 time steps x 1 channel"),
    (np.full((1, 140, 1), np.nan), "finite"),
])
def test_wrong_shapes_and_nan_are_refused(engine, x, message):
    with pytest.raises(ValueError, match=message):
        engine.probabilities(x)
