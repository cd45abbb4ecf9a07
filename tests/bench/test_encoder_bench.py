"""The encoder benchmark under the real MLPerf LoadGen, on a real bundle, with --quick limits.
Refusals and the CLI need only a bundle: they run on the tiny synthetic one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.run import run_bench
from edgeslm.errors import ConfigError, DataError

LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")


@pytest.fixture(scope="module")
def data(trained_run):
    return trained_run / "data" / "test.jsonl"


def check_logs(r, tmp_path, side, scenario_name):
    for mode in ("accuracy", "performance"):
        for name in LOGS:
            assert (tmp_path / side / mode / name).is_file(), f"{side}/{mode}/{name}"
    summary = (tmp_path / side / "performance" / "mlperf_log_summary.txt").read_text()
    assert f"Scenario : {scenario_name}" in summary and "Mode     : PerformanceOnly" in summary
    s = r["sides"][side]
    assert f"Result is : {s['loadgen_result']}" in summary
    # the verdict is LoadGen's: INVALID always comes with the constraint that failed, VALID with none
    assert s["valid"] == all(s["verdict"]["constraints"].values()) == (s["loadgen_result"] == "VALID")
    assert bool(s["invalid_reasons"]) != s["valid"]
    assert s["computed"] >= s["samples"] > 0  # closed division: nothing answered from a cache
    return s


@pytest.mark.model
def test_single_stream_under_loadgen_beside_raw_ort(session_bundle, data, tmp_path):
    from edgeslm.bench.baselines import RawOrt
    from edgeslm.data.records import read_examples
    from edgeslm.formats.reader import open_bundle

    r = run_bench(BenchConfig(bundle=session_bundle, data=data, vs="ort", quick=True, accuracy_samples=10_000,
                              warmup=8, out=tmp_path))
    bundle = open_bundle(session_bundle)
    rows = read_examples(data, labels=bundle.manifest.labels)
    raw = RawOrt(bundle, threads=2)
    raw_accuracy = round(sum(raw.predict([x.text])[0] == x.label for x in rows) / len(rows), 4)
    for side in ("edgeslm", "ort"):
        s = check_logs(r, tmp_path, side, "SingleStream")
        # accuracy mode saw every row once; same model file, same tokenizer: the raw session's accuracy
        assert s["accuracy_samples"] == len(rows) == 300
        assert s["accuracy"] == raw_accuracy > 0.8
        assert s["loadgen_result"] == "VALID", s["verdict"]  # 64+ queries: enough for p90 early stopping
        lat = s["latency"]
        assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert s["throughput"]["qps_without_loadgen_overhead"] > 0 and s["joules_per_query"] > 0
    assert r["ratio"]["value"] == pytest.approx(
        r["sides"]["edgeslm"]["latency"]["p50_ms"] / r["sides"]["ort"]["latency"]["p50_ms"], rel=0.01)
    assert "p50" in r["ratio"]["definition"] and len(r["ratio"]["per_repeat"]) == 1
    settings = r["loadgen_settings"]
    assert settings["set"]["min_query_count"] == 64 == settings["effective"]["min_query_count"]
    assert settings["effective"]["min_duration_ms"] == 500 and settings["effective"]["scenario"] == "SingleStream"
    assert r["division"] == "closed" and r["peak_rss_mb"] > 50


@pytest.mark.model
def test_multi_stream_offline_and_server_under_loadgen(session_bundle, data, tmp_path):
    runs = {}
    for scenario, name in (("multi-stream", "MultiStream"), ("offline", "Offline"), ("server", "Server")):
        r = run_bench(BenchConfig(bundle=session_bundle, data=data, scenario=scenario, quick=True, warmup=8,
                                  out=tmp_path / scenario))
        s = check_logs(r, tmp_path / scenario, "edgeslm", name)
        assert s["accuracy_samples"] == 128 and s["accuracy"] > 0.8
        assert "ratio" not in r
        runs[scenario] = (r, s)
    r, s = runs["multi-stream"]
    assert r["loadgen_settings"]["effective"]["samples_per_query"] == 8
    assert 0 < s["query_latency"]["p50_ms"] <= s["query_latency"]["p99_ms"]
    # p99 of query latency needs 662 queries for LoadGen's early stopping; --quick runs far fewer
    assert s["loadgen_result"] == "INVALID" and "early stopping not satisfied" in s["invalid_reasons"]
    assert "662" in s["verdict"]["early_stopping"]
    r, s = runs["offline"]
    assert s["throughput"]["samples_per_s"] > 0 and r["loadgen_settings"]["set"]["offline_expected_qps"] > 0
    r, s = runs["server"]
    assert "latency_constraint" in s["verdict"]["constraints"]
    assert r["loadgen_settings"]["effective"]["target_qps"] == r["loadgen_settings"]["set"]["server_target_qps"] > 0
    assert s["throughput"]["completed_samples_per_s"] > 0 and s["latency"]["p99_ms"] > 0


def test_bad_bench_requests_fail_before_work(tiny_bundle, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "turn on the lamp", "label": "TurnOn"}\n')
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="scenario"):
        BenchConfig(bundle=tiny_bundle, scenario="cloud")
    with pytest.raises(ConfigError, match="division"):
        BenchConfig(bundle=tiny_bundle, division="secret")
    with pytest.raises(ConfigError, match="repeats"):
        BenchConfig(bundle=tiny_bundle, repeats=0)
    with pytest.raises(ConfigError, match="min_duration_s"):
        BenchConfig(bundle=tiny_bundle, min_duration_s=0)
    with pytest.raises(ConfigError, match="--data"):
        run_bench(BenchConfig(bundle=tiny_bundle, out=out))
    with pytest.raises(ConfigError, match="llama-cpp compares decoder"):
        run_bench(BenchConfig(bundle=tiny_bundle, data=data, vs="llama-cpp", out=out))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"text": "hello", "label": "NotAnIntent"}\n')
    with pytest.raises(DataError, match="NotAnIntent"):
        run_bench(BenchConfig(bundle=tiny_bundle, data=wrong, out=out))
    assert not out.exists()


def test_cli_json_and_repeats_alternate(tiny_bundle, tmp_path):
    from edgeslm.cli.main import cli

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"turn {w} the lamp {i}", "label": "TurnOn"}) + "\n"
                            for i in range(20) for w in ("on",)))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["bench", str(tiny_bundle), "--data", str(data), "--vs", "ort", "--quick",
                                      "--repeats", "2", "--division", "open", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)  # nothing but the JSON on stdout: LoadGen's copies to stdout are off
    assert r["division"] == "open" and r["repeats"] == 2 and len(r["ratio"]["per_repeat"]) == 2
    for side in ("edgeslm", "ort"):
        runs = r["sides"][side]["runs"]
        assert len(runs) == 2 and r["sides"][side]["accuracy"] == 1.0
        assert (out / side / "performance" / "run-2" / "mlperf_log_summary.txt").is_file()
