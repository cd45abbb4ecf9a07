"""The decoder benchmark under the real MLPerf LoadGen: TTFT and TPOT from LoadGen's token latencies,
edgeslm's greedy outputs against plain llama-cpp-python's, a few tokens and a few queries."""

import pytest

from edgeslm.bench.config import BenchConfig
from edgeslm.bench.run import run_bench
from edgeslm.errors import ConfigError

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def smol_bundle(tmp_path_factory):
    from edgeslm.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("decoder") / "smollm2"
    export_gguf("smollm2-135m", out)
    return out


def test_single_stream_token_latencies_beside_llama_cpp(smol_bundle, tmp_path):
    r = run_bench(BenchConfig(bundle=smol_bundle, vs="llama-cpp", quick=True, new_tokens=4, min_queries=4,
                              accuracy_samples=2, threads=1, out=tmp_path))
    assert r["loadgen_settings"]["set"]["use_token_latencies"] is True
    for name in ("edgeslm", "llama-cpp"):
        s = r["sides"][name]
        assert s["tokens"] == 4 * s["samples"] and s["samples"] >= 4  # ignore_eos: exactly new_tokens a query
        assert 0 < s["ttft"]["p50_ms"] <= s["ttft"]["p90_ms"] and 0 < s["tpot"]["p50_ms"] <= s["tpot"]["p90_ms"]
        assert s["latency"]["p50_ms"] > s["ttft"]["p50_ms"]  # the whole query outlasts its first token
        summary = (tmp_path / name / "performance" / "mlperf_log_summary.txt").read_text()
        assert "first token percentile latency (ns)" in summary and f"Result is : {s['loadgen_result']}" in summary
        assert (tmp_path / name / "accuracy" / "mlperf_log_accuracy.json").is_file()
        assert s["joules_per_token"] > 0
    # greedy decoding of the same GGUF: the same text, token for token
    assert r["accuracy"] == {"prompts": 2, "exact_match": 1.0, "token_agreement": 1.0}
    assert r["ratio"]["value"] > 0 and "time per output token" in r["ratio"]["definition"]
    assert r["ttft_ratio"]["value"] > 0
    assert r["peak_rss_mb"]["process"] >= r["peak_rss_mb"]["edgeslm"] > 50 and r["bandwidth_bound_tok_s"] > 0


def test_server_alone_and_refusals(smol_bundle, tmp_path):
    r = run_bench(BenchConfig(bundle=smol_bundle, scenario="server", quick=True, new_tokens=3, min_queries=3,
                              target_qps=20.0, threads=1, out=tmp_path))
    s = r["sides"]["edgeslm"]
    assert set(r["sides"]) == {"edgeslm"} and r["accuracy"] is None and "not defined" in r["accuracy_definition"]
    assert r["loadgen_settings"]["effective"]["target_qps"] == 20.0
    assert s["ttft"]["p50_ms"] > 0 and s["tpot"]["p50_ms"] > 0 and s["throughput"]["completed_tokens_per_s"] > 0
    assert not (tmp_path / "edgeslm" / "accuracy").exists()  # no accuracy mode without a reference
    out = tmp_path / "refused"
    for scenario in ("offline", "multi-stream"):
        with pytest.raises(ConfigError, match="one sequence at a time"):
            run_bench(BenchConfig(bundle=smol_bundle, scenario=scenario, out=out))
    with pytest.raises(ConfigError, match="--vs llama-cpp"):
        run_bench(BenchConfig(bundle=smol_bundle, vs="ort", out=out))
    assert not out.exists()
