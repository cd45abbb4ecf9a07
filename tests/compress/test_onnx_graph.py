"""Graph rewrites before quantization: same outputs, ops the quantizer handles."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeslm.compress.onnx_quant import gemm_as_matmul


def test_gemm_becomes_matmul_plus_add_with_identical_output(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="g"),
         helper.make_node("Gemm", ["y", "w2", "b2"], ["z"], alpha=2.0, name="scaled")],  # left alone
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(rng.normal(size=(5, 2)).astype(np.float32), "w2"),
         numpy_helper.from_array(np.zeros(2, np.float32), "b2")])
    src = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    dst = gemm_as_matmul(src, tmp_path / "matmul.onnx")
    ops = [n.op_type for n in onnx.load(dst).graph.node]
    assert ops == ["MatMul", "Add", "Gemm"]
    x = rng.normal(size=(3, 7)).astype(np.float32)
    before = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    after = ort.InferenceSession(str(dst)).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    assert "w" not in {t.name for t in onnx.load(dst).graph.initializer}  # only the transposed copy is kept
