"""Quantize an exported ONNX encoder with ONNX Runtime's quantizers: int8 dynamic, int8 static (the
dynamic graph with activation ranges calibrated on task sentences and frozen, static_scales.py),
int4 group-wise weights (MatMulNBits). Optionally keep named MatMul nodes in fp32 (the guard's
repair) and store the result xz-compressed."""

from __future__ import annotations

import logging
import lzma
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.static_scales import fold_integer_matmuls, freeze_activation_scales
from edgeslm.errors import ConfigError


def needs_7bit_weights(isa: Iterable[str]) -> bool:
    """x86 int8 kernels without VNNI multiply u8 x s8 pairs into saturating 16-bit sums, which full
    8-bit weights can overflow (hence ONNX Runtime's reduce_range). A target that names no ISA
    gets the safe choice; ARM (neon, dotprod) has no such saturation."""
    have = set(isa)
    if not have:
        return True
    x86 = bool(have & {"avx2", "avx512"})
    return x86 and not have & {"avx512_vnni", "avx_vnni"}


def reduce_range(config: QuantizeConfig) -> bool:
    """7-bit weights? `auto` decides for this machine; compress resolves it for the target profile."""
    if config.reduce_range == "auto":
        from edgeslm.runtime.profiles import machine_isa

        return needs_7bit_weights(machine_isa())
    return config.reduce_range == "on"


def weight_matmuls(model_path: Path) -> dict[str, np.ndarray]:
    """MatMul/Gemm/Attention node name -> its constant 2-D weight, for the nodes that have one."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm", "Attention"):
            for name in node.input:
                if name in inits and len(inits[name].dims) == 2:
                    out[node.name] = numpy_helper.to_array(inits[name])
    return out


def weight_error(w: np.ndarray, bits: int, block: int | None) -> float:
    """Relative error ||W - Q(W)|| / ||W|| of symmetric round-to-nearest quantization of W [in, out]:
    per output channel (block None) or per block of `block` inputs (group-wise int4)."""
    qmax = 2 ** (bits - 1) - 1
    if block:
        pad = (-w.shape[0]) % block
        wp = np.pad(w, ((0, pad), (0, 0))).reshape(-1, block, w.shape[1])  # [groups, block, out]
        scale = np.abs(wp).max(axis=1, keepdims=True) / qmax
        q = np.round(wp / np.where(scale == 0, 1, scale)).clip(-qmax, qmax) * scale
        q = q.reshape(-1, w.shape[1])[: w.shape[0]]
    else:
        scale = np.abs(w).max(axis=0, keepdims=True) / qmax  # [1, out]
        q = np.round(w / np.where(scale == 0, 1, scale)).clip(-qmax, qmax) * scale
    return float(np.linalg.norm(w - q) / max(np.linalg.norm(w), 1e-12))


def sensitivity_order(model_path: Path, config: QuantizeConfig) -> list[str]:
    """MatMul nodes, most damaged by this scheme's weight quantization first."""
    bits, block = (4, config.block_size) if config.scheme == "int4-weight" else (8, None)
    if bits == 8 and reduce_range(config):
        bits = 7
    errors = {name: weight_error(w, bits, block) for name, w in weight_matmuls(model_path).items()}
    return sorted(errors, key=lambda n: -errors[n])


def quantize(src: Path, dst: Path, config: QuantizeConfig, calibration: Iterable[dict[str, np.ndarray]] | None = None,
             keep_fp32: list[str] | None = None) -> dict[str, Any]:
    """Write the quantized model to dst (dst + '.xz' when compress_file); returns what was done."""
    with quiet_ort_quantizer():
        return _quantize(src, dst, config, calibration, keep_fp32)


@contextmanager
def quiet_ort_quantizer() -> Iterator[None]:
    """ORT's quantizers log their nags on the root logger: quiet it for the call only, then restore
    it (raising it for good silenced every warning in the process after one compression)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize(src: Path, dst: Path, config: QuantizeConfig, calibration: Iterable[dict[str, np.ndarray]] | None,
              keep_fp32: list[str] | None) -> dict[str, Any]:
    import onnx

    keep = list(keep_fp32 or [])
    # int8 works on the fused graph (export/onnx.py): Attention becomes QAttention, and the
    # quantizer turns the pooler and classifier Gemm into MatMul + Add so they are int8 too
    ops = ["MatMul", "Attention"] if config.scheme.startswith("int8") else ["MatMul"]
    ops += ["Gather", "EmbedLayerNormalization"] if config.quantize_embeddings else []
    info: dict[str, Any] = {"scheme": config.scheme, "kept_fp32": keep, "reduce_range": reduce_range(config),
                            "per_channel": config.per_channel, "quantized_ops": ops}
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        if config.scheme in ("int8-dynamic", "int8-static"):
            if config.scheme == "int8-static" and calibration is None:
                raise ConfigError("int8-static needs calibration sentences")
            _int8_dynamic(src, out, config, ops, keep)
            if config.scheme == "int8-static":
                model = onnx.load(str(out))
                info["static_activations"] = freeze_activation_scales(model, calibration or [])
                info["matmul_integer_to_float"] = fold_integer_matmuls(model)
                onnx.save(model, str(out))
        elif config.scheme == "int4-weight":
            _int4(src, out, config, keep)
            info.update(bits=4, block_size=config.block_size)
        else:  # validated in QuantizeConfig; kept for a new scheme added there but not here
            raise ConfigError(f"quantize: no implementation for {config.scheme}")
        if config.compress_file:
            dst = dst.with_name(dst.name + ".xz")
            with out.open("rb") as fin, lzma.open(dst, "wb", preset=9 | lzma.PRESET_EXTREME) as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(out, dst)
    info["file"] = dst.name
    return info


def _int8_dynamic(src: Path, out: Path, config: QuantizeConfig, ops: list[str], keep: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime's quantizer turns a Gemm into NAME_MatMul + NAME_Add before it reads the exclusions, so a
    # Gemm kept by its own name was quantized all the same; the MatMul's name keeps it
    if keep:  # read the graph only when something is kept (most attempts keep nothing)
        gemms = {n.name for n in onnx.load(str(src), load_external_data=False).graph.node if n.op_type == "Gemm"}
        keep = keep + [f"{name}_MatMul" for name in keep if name in gemms]
    quantize_dynamic(str(src), str(out), op_types_to_quantize=ops, per_channel=config.per_channel,
                     reduce_range=reduce_range(config), weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _int4(src: Path, out: Path, config: QuantizeConfig, keep: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(src))
    algo = DefaultWeightOnlyQuantConfig(block_size=config.block_size, is_symmetric=True, accuracy_level=4, bits=4)
    q = MatMulNBitsQuantizer(model, bits=4, block_size=config.block_size, is_symmetric=True, accuracy_level=4,
                             nodes_to_exclude=keep, algo_config=algo)
    q.process()
    onnx.save(q.model.model, str(out))
    if config.quantize_embeddings:
        tmp = out.with_name("int4-gather.onnx")
        quantize_dynamic(str(out), str(tmp), op_types_to_quantize=["Gather", "EmbedLayerNormalization"],
                         weight_type=QuantType.QInt8, per_channel=False,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        tmp.replace(out)
