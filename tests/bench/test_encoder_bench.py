"""The encoder benchmark on a real bundle: short runs, real numbers, both sides on the same file.
Refusals need only a bundle: they run on the tiny synthetic one."""

from __future__ import annotations

import pytest

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.run import run_bench
from edgeslm.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def data(trained_run):
    return trained_run / "data" / "test.jsonl"


@pytest.mark.model
def test_single_stream_beside_raw_ort(session_bundle, data):
    r = run_bench(BenchConfig(bundle=session_bundle, data=data, vs="ort", queries=64, block=16, warmup=4))
    ours, theirs = r["sides"]["edgeslm"], r["sides"]["ort"]
    assert ours["n"] == theirs["n"] == 64
    # same model file, same tokenizer: the raw session must agree with us on every query
    assert ours["accuracy"] == theirs["accuracy"] and ours["accuracy"] > 0.2
    assert 0 < ours["latency"]["p50_ms"] <= ours["latency"]["p90_ms"] <= ours["latency"]["p99_ms"]
    assert r["ratio"]["value"] == pytest.approx(ours["latency"]["p50_ms"] / theirs["latency"]["p50_ms"], rel=1e-2)
    assert ours["joules_per_query"] > 0 and r["peak_rss_mb"] > 50


@pytest.mark.model
def test_offline_and_server_scenarios(session_bundle, data):
    off = run_bench(BenchConfig(bundle=session_bundle, data=data, scenario="offline", queries=64, batch=16, warmup=4))
    assert off["sides"]["edgeslm"]["throughput_qps"] > 0 and "ratio" not in off
    srv = run_bench(BenchConfig(bundle=session_bundle, data=data, scenario="server", queries=64, concurrency=8,
                                min_duration_s=1.0, batch=16, warmup=4))
    s = srv["server"]
    assert s["n"] > 8 and s["mean_batch"] > 1.0  # eight closed-loop clients do share engine calls
    assert s["accuracy"] == pytest.approx(srv["sides"]["edgeslm"]["accuracy"], abs=0.15)
    assert s["ratio_vs_offline"] == pytest.approx(s["throughput_qps"] / srv["offline"]["edgeslm"], rel=0.01)


def test_bad_bench_requests_fail_before_work(tiny_bundle, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "turn on the lamp", "label": "TurnOn"}\n')
    with pytest.raises(ConfigError, match="scenario"):
        BenchConfig(bundle=tiny_bundle, scenario="multi-stream")
    with pytest.raises(ConfigError, match="--data"):
        run_bench(BenchConfig(bundle=tiny_bundle))
    with pytest.raises(ConfigError, match="llama-cpp compares decoder"):
        run_bench(BenchConfig(bundle=tiny_bundle, data=data, vs="llama-cpp"))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"text": "hello", "label": "NotAnIntent"}\n')
    with pytest.raises(DataError, match="NotAnIntent"):
        run_bench(BenchConfig(bundle=tiny_bundle, data=wrong))
