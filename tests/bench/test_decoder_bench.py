"""The decoder benchmark, short: a few tokens, two rounds, edgeslm beside plain llama-cpp-python."""

import pytest

from edgeslm.errors import ConfigError

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def smol_bundle(tmp_path_factory):
    from edgeslm.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("decoder") / "smollm2"
    export_gguf("smollm2-135m", out)
    return out


def test_decoder_bench_against_llama_cpp(smol_bundle):
    from edgeslm.bench.decoder import run_decoder_bench

    r = run_decoder_bench(smol_bundle, vs="llama-cpp", prompt_tokens=16, new_tokens=6, rounds=2, threads=2)
    assert r["prompt_tokens"] == 16 and r["new_tokens"] == 6
    assert set(r["sides"]) == {"edgeslm", "llama-cpp"}
    for side in r["sides"].values():
        assert side["tok_s_median"] > 0 and side["ttft_ms_p50"] > 0
        assert side["per_token_ms_p90"] >= side["per_token_ms_p50"] > 0
    assert r["tok_s_ratio"] > 0 and r["per_token_ms_ratio"] > 0 and "edgeslm" in r["tok_s_ratio_definition"]
    assert r["memory_read_gb_s"] > 0.5
    assert r["bandwidth_bound_tok_s"] == pytest.approx(r["memory_read_gb_s"] * 1e9 / r["model_bytes"], rel=0.01)
    assert r["cpu_seconds"] > 0 and r["peak_rss_mb"]["process"] >= r["peak_rss_mb"]["edgeslm"] > 50


def test_decoder_bench_alone_and_bad_arguments(smol_bundle):
    from edgeslm.bench.decoder import run_decoder_bench

    r = run_decoder_bench(smol_bundle, prompt_tokens=40, new_tokens=4, rounds=1, threads=1)
    assert set(r["sides"]) == {"edgeslm"} and "tok_s_ratio" not in r and r["prompt_tokens"] == 40
    with pytest.raises(ConfigError, match="llama-cpp"):
        run_decoder_bench(smol_bundle, vs="ort")
    with pytest.raises(ConfigError, match="new_tokens"):
        run_decoder_bench(smol_bundle, new_tokens=1)
