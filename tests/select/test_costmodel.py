"""The cost model's arithmetic against hand counts, the governor's memory rule and energy.py."""

import pytest

from edgeslm.runtime.energy import joules as energy_joules
from edgeslm.runtime.profiles import DeviceProfile
from edgeslm.select import costmodel as cm

MINILM = cm.EncoderShape(layers=6, hidden=384, ffn=1536, heads=12, vocab=30522, positions=512, labels=42)
CAL = cm.Calibration(threads=1, seq=10, bench_macs=cm.layer_macs(MINILM, 10),
                     linear_ms={"fp32": 0.8, "int8": 0.3, "int8-static": 0.28, "int4": 0.6}, tokenize_ms=0.05,
                     fixed_ms={"fused": 0.02, "unfused": 0.02}, other_layer_ms={"fused": 0.2, "unfused": 0.3},
                     p90_over_p50=1.2, parallel_share=0.6, bandwidth_gbs=10.0)


def test_layer_macs_is_twelve_d_squared_a_token():
    assert cm.layer_macs(MINILM, 1) == 12 * 384 * 384
    # structured50: half the heads, 40% of the FFN: 2 d^2 + 0.8 x 4 d^2 = 5.2 d^2 (the recipe's own figure)
    assert cm.layer_macs(MINILM, 1, 0.5, 0.4) == pytest.approx(5.2 * 384 * 384)
    assert cm.attention_macs(MINILM, 10) == 2 * 10 * 10 * 384


def test_params_add_up_to_minilm_l6():
    p = cm.params(MINILM, cm.VariantSpec(layers=6))
    assert sum(p.values()) == pytest.approx(22.7e6, rel=0.01)  # all-MiniLM-L6-v2 has 22.7M parameters


def test_bytes_by_dtype_and_sparsity():
    fp32 = cm.model_bytes(MINILM, cm.VariantSpec(6))
    int8 = cm.model_bytes(MINILM, cm.VariantSpec(6, dtype="int8", embeddings="int8"))
    assert fp32 == pytest.approx(4 * 22.7e6, rel=0.01)
    assert 0.24 < int8 / fp32 < 0.27  # the README's int8-dynamic: 25.2% of fp32
    sparse = cm.VariantSpec(6, sparsity=0.9, embedding_sparsity=0.75, dtype="int8", embeddings="int8", xz=True)
    assert cm.file_bytes(MINILM, sparse) < 0.3 * int8  # the zeros cost almost nothing in xz
    assert cm.model_bytes(MINILM, sparse) == int8  # but the session holds the dense graph


def test_ram_is_the_governors_rule():
    spec = cm.VariantSpec(6, dtype="int8", embeddings="int8")
    governor = (int(cm.model_bytes(MINILM, spec) * 1.2) + 24 * 2**20) / 2**20  # OnnxClassifier.memory_bytes
    assert cm.ram_mb(MINILM, spec) == pytest.approx(governor, abs=0.01)


def test_latency_follows_layers_dtype_and_width():
    fp32 = cm.predict_latency_ms(MINILM, cm.VariantSpec(6), CAL)
    assert fp32["p50_ms"] == pytest.approx(0.02 + 0.05 + 6 * (0.2 + 0.8))
    assert fp32["p90_ms"] == pytest.approx(fp32["p50_ms"] * 1.2)
    int8 = cm.predict_latency_ms(MINILM, cm.VariantSpec(6, dtype="int8"), CAL)
    assert int8["p50_ms"] == pytest.approx(0.07 + 6 * (0.2 + 0.3))
    l3 = cm.predict_latency_ms(MINILM, cm.VariantSpec(3, dtype="int8"), CAL)
    assert l3["p50_ms"] == pytest.approx(0.07 + 3 * 0.5)
    narrow = cm.predict_latency_ms(MINILM, cm.VariantSpec(6, heads_keep=0.5, ffn_keep=0.4, dtype="int8"), CAL)
    assert narrow["p50_ms"] < int8["p50_ms"]
    assert cm.predict_latency_ms(MINILM, cm.VariantSpec(6, dtype="int4", graph="unfused"), CAL)["p50_ms"] == \
        pytest.approx(0.07 + 6 * (0.3 + 0.6))


def test_joules_match_the_runtime_energy_model():
    profile = DeviceProfile(name="p", memory_budget_mb=100, cores=2, threads=2, watts_idle=3.0, watts_busy=9.0)
    assert cm.joules(0.004, 0.006, 2, 3.0, 9.0) == pytest.approx(energy_joules(0.006, 0.004, profile))
    pred = cm.predict(MINILM, cm.VariantSpec(6, dtype="int8"), CAL, cores=1, watts_idle=3.0, watts_busy=9.0)
    # one thread keeps one core busy for the whole request: busy watts x p50
    assert pred["joules"] == pytest.approx(9.0 * pred["p50_ms"] / 1e3)
    assert cm.cpu_share(1, 0.6) == 1 and cm.cpu_share(2, 0.5) == 1.5


def test_relative_error():
    assert cm.relative_error(1.2, 1.0) == pytest.approx(0.2)


def test_weights_that_fit_the_cache_are_not_streamed():
    from dataclasses import replace

    # a CPU whose fp32 anchor (42 MB of layers) streamed at 2.5x the synthetic layer, with a 32 MiB cache and
    # a slow memory (10 GB/s): int8 layers (10.6 MB) and a 3-layer fp32 student (21 MB) stay in the cache
    cal = replace(CAL, linear_ms={**CAL.linear_ms, "fp32": 2.0}, fp32_factor=2.5, cache_bytes=32 * 2**20, bandwidth_gbs=1.0)
    assert cm.streams(MINILM, cm.VariantSpec(6), cal.cache_bytes)
    assert not cm.streams(MINILM, cm.VariantSpec(3), cal.cache_bytes)
    assert not cm.streams(MINILM, cm.VariantSpec(6, dtype="int8"), cal.cache_bytes)
    int8 = cm.predict_latency_ms(MINILM, cm.VariantSpec(6, dtype="int8"), cal)
    assert int8["p50_ms"] == pytest.approx(0.07 + 6 * (0.2 + 0.3))  # no floor from the slow memory
    student = cm.predict_latency_ms(MINILM, cm.VariantSpec(3), cal)
    assert student["p50_ms"] == pytest.approx(0.07 + 3 * (0.2 + 2.0 / 2.5))  # the synthetic rate, not the anchor's
    full = cm.predict_latency_ms(MINILM, cm.VariantSpec(6), cal)
    stream = 12 * 384 * 384 * 4 / 1e6  # one layer's fp32 matrices at 1 GB/s, in ms
    assert full["p50_ms"] == pytest.approx(0.07 + 6 * (0.2 + max(2.0, stream)))
    # unknown cache: every variant streams, as before
    unknown = replace(cal, cache_bytes=0.0)
    assert cm.predict_latency_ms(MINILM, cm.VariantSpec(6, dtype="int8"), unknown)["p50_ms"] == \
        pytest.approx(0.07 + 6 * (0.2 + max(0.3, 12 * 384 * 384 / 1e6)))


def test_last_level_cache_from_sysfs(tmp_path):
    from edgeslm.select.calibrate import last_level_cache_bytes

    for name, kind, size in (("index0", "Data", "48K"), ("index1", "Instruction", "64M"), ("index2", "Unified", "1024K"),
                             ("index3", "Unified", "32768K"), ("index4", "Unified", "garbage")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "size").write_text(size + "\n")
    assert last_level_cache_bytes(tmp_path) == 32 * 2**20  # the instruction cache never counts
    assert last_level_cache_bytes(tmp_path / "missing") == 0.0
