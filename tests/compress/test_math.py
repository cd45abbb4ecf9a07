import itertools

import numpy as np
import pytest
import torch

from edgeslm.compress import prune_math
from edgeslm.compress.onnx_quant import weight_error


def test_cubic_schedule_endpoints_and_monotone():
    values = [prune_math.cubic_sparsity(s, 100, 0.9) for s in range(0, 130, 10)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.9)
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert prune_math.cubic_sparsity(50, 100, 0.9) > 0.45  # front-loaded


def test_magnitude_mask_hits_the_sparsity_and_keeps_the_largest():
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    mask = prune_math.magnitude_mask(w, 0.9)
    assert abs(1 - mask.float().mean().item() - 0.9) < 0.01
    assert w.abs()[mask].min() >= w.abs()[~mask].max()


def test_keep_top_sorted_and_at_least_one():
    idx = prune_math.keep_top(torch.tensor([0.1, 5.0, 3.0, 0.2]), 0.5)
    assert idx.tolist() == [1, 2]
    assert prune_math.keep_top(torch.tensor([1.0, 2.0]), 0.01).tolist() == [1]


def test_int4_groupwise_error_exceeds_int8_and_outliers_hurt_more():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(384, 384)).astype(np.float32)
    e8, e4 = weight_error(w, 8, None), weight_error(w, 4, 32)
    assert 0 < e8 < e4 < 0.2
    w_out = w.copy()
    w_out[0, :] *= 50  # one outlier input row: per-channel int8 scales blow up
    assert weight_error(w_out, 8, None) > e8


def test_repair_ladder_goes_per_channel_then_fp32_matmuls_then_stops():
    from types import SimpleNamespace

    from edgeslm.compress.guard import ENCODER_REPAIRS, FINAL, STUDENT
    from edgeslm.compress.modifiers import QuantizeConfig

    order = [f"m{i}" for i in range(10)]
    asked = []

    def sensitive():
        asked.append(1)
        return order

    def ladder(qcfg, stage=FINAL):
        state = SimpleNamespace(qcfg=qcfg, keep=[], sensitive=sensitive, stepper=None, retrained=False)
        steps = []
        while (r := next((r for r in ENCODER_REPAIRS if stage in r.stages and r.applies(state)), None)) is not None:
            r.apply(state)
            steps.append((r.name, state.qcfg.per_channel, list(state.keep)))
        return steps

    assert [r.cost for r in ENCODER_REPAIRS] == sorted(r.cost for r in ENCODER_REPAIRS)  # cheapest first
    assert ladder(QuantizeConfig(scheme="int8-static", per_channel=False, repair_keep_fp32=5)) == [
        ("per-channel-scales", True, []), ("keep-2-fp32", True, order[:2]), ("keep-4-fp32", True, order[:4]),
        ("keep-8-fp32", True, order[:5])]
    assert len(asked) == 3  # the sensitivity ranking is only computed when MatMuls go back to fp32
    assert ladder(None) == []
    assert ladder(QuantizeConfig(scheme="int4-weight", per_channel=False, repair_keep_fp32=0)) == []  # int8 only
    # a student that missed the bar before quantization: only retraining can help it
    assert ladder(QuantizeConfig(scheme="int8-dynamic", repair_keep_fp32=5), stage=STUDENT) == []


def test_7bit_weights_only_for_x86_without_vnni_or_an_unknown_target():
    from edgeslm.compress.onnx_quant import needs_7bit_weights
    from edgeslm.runtime.profiles import load_profile

    assert not needs_7bit_weights(load_profile("x86-gateway").isa)  # AVX2 + AVX-VNNI
    assert not needs_7bit_weights(load_profile("rpi4").isa)  # ARM: no u8 x s8 saturation
    assert needs_7bit_weights(["avx2"]) and needs_7bit_weights(["avx2", "avx512"])
    assert not needs_7bit_weights(["avx512", "avx512_vnni"])
    assert needs_7bit_weights([])  # a profile that names no ISA gets the safe choice
