"""compress/onnx_quant.py: a node the accuracy guard keeps fp32 stays fp32, a Gemm included (ONNX Runtime's
quantizer renames a Gemm before it reads the exclusions, so keeping one by its own name did nothing)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.onnx_quant import quantize

INTEGER_OPS = {"MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int8-static"])
def test_a_kept_gemm_stays_fp32_and_the_others_are_integer(tmp_path, scheme):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    src = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(2, 64),), str(src), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}})
    gemms = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 2
    feeds = [{"x": np.random.default_rng(i).normal(size=(4, 64)).astype(np.float32)} for i in range(4)]
    info = quantize(src, tmp_path / "q.onnx", QuantizeConfig(scheme=scheme), calibration=feeds, keep_fp32=[gemms[1]])
    assert info["kept_fp32"] == [gemms[1]]
    nodes = onnx.load(str(tmp_path / "q.onnx")).graph.node
    integer = [n.name for n in nodes if n.op_type in INTEGER_OPS]
    assert integer and all(name.startswith(gemms[0]) for name in integer), integer  # the first is int8, the kept not
    assert any(n.op_type in ("MatMul", "Gemm") and n.name.startswith(gemms[1]) for n in nodes)
