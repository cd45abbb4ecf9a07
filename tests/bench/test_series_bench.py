"""`edgeslm bench` on a time-series bundle: the same LoadGen harness and batcher, series as the QSL's samples."""

from __future__ import annotations

import numpy as np
import pytest

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.run import run_bench
from edgeslm.data.series import read_series_rows
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import open_bundle
from edgeslm.runtime.engines.series import SeriesClassifier
from edgeslm.train.run import RunFolder


@pytest.fixture(scope="module")
def data(series_run, tmp_path_factory):
    lines = RunFolder(series_run).split("test").read_text().splitlines()[:300]
    path = tmp_path_factory.mktemp("series-qsl") / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_single_stream_on_a_series_bundle(series_bundle, data, tmp_path):
    r = run_bench(BenchConfig(bundle=series_bundle, data=data, quick=True, accuracy_samples=10_000, warmup=8,
                              out=tmp_path))
    s = r["sides"]["edgeslm"]
    x, truth = read_series_rows(data)
    engine = SeriesClassifier.from_bundle(open_bundle(series_bundle), threads=r["threads"])
    expected = np.mean([engine.predict([row])[0]["label"] == t for row, t in zip(x, truth, strict=True)])
    assert r["qsl_samples"] == 300 and s["accuracy_samples"] == 300
    assert s["accuracy"] == pytest.approx(expected, abs=1e-4) and s["accuracy"] > 0.8  # batch 1, as LoadGen asks
    assert s["computed"] >= s["samples"] > 0 and s["latency"]["p50_ms"] > 0 and s["joules_per_query"] > 0
    assert (tmp_path / "edgeslm" / "performance" / "mlperf_log_summary.txt").is_file()


def test_vs_is_refused_for_series(series_bundle, data, tmp_path):
    with pytest.raises(ConfigError, match="MiniRocket"):
        run_bench(BenchConfig(bundle=series_bundle, data=data, vs="ort", quick=True, out=tmp_path))
