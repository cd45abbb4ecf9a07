"""Decoder compression (build side): a LLaMA-architecture model -> GGUF F16 written by us with the
`gguf` package -> quantized by llama.cpp's own quantizer (through llama-cpp-python's C API) -> a decoder
bundle that carries the size and the perplexity before and after, measured on the same held-out text.

A built-in GGUF source (`smollm2-135m`) is first dequantized through transformers and saved as a
safetensors folder. It is already on a 4-bit grid (Q4_1), so its F16 copy holds no more information than
the Q4_1 file, and re-quantizing it to Q8_0 looks almost lossless: the honest baseline for what
quantization costs is an fp16/fp32 checkpoint.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.config import Config
from edgeslm.errors import ConfigError, GgufError
from edgeslm.evaluate.perplexity import default_eval_text, perplexity, quiet_llama, read_eval_text
from edgeslm.export.gguf import ARCHITECTURES, check_llama_folder, hf_folder, hf_to_gguf
from edgeslm.formats.writer import BundleWriter
from edgeslm.models.registry import ModelSource, resolve

log = logging.getLogger(__name__)

TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L",
         "Q3_K_M", "Q3_K_S", "Q2_K")


@dataclass(frozen=True)
class GgufQuantConfig(Config):
    type: str = "Q8_0"
    outtype: str = "f16"  # precision of the unquantized GGUF that is measured and then quantized
    eval_tokens: int = 4096  # held-out tokens scored for perplexity
    n_ctx: int = 512  # perplexity window
    stride: int = 256  # window step; every scored token sees at least n_ctx - stride tokens of context
    threads: int = 2

    def validate(self) -> None:
        if self.type not in TYPES:
            raise ConfigError(f"unknown GGUF quantization type {self.type!r}; supported: {', '.join(TYPES)}")
        if self.outtype not in ("f16", "f32"):
            raise ConfigError("GgufQuantConfig.outtype must be f16 or f32")
        if not 64 <= self.n_ctx <= 8192 or not 1 <= self.stride < self.n_ctx:
            raise ConfigError("GgufQuantConfig: need 64 <= n_ctx <= 8192 and 1 <= stride < n_ctx (windows overlap, "
                              "so every token after the first is scored with context)")
        if self.eval_tokens < 2 or self.threads < 1:
            raise ConfigError("GgufQuantConfig: eval_tokens must be >= 2 and threads >= 1")


def quantize_file(src: Path, dst: Path, qtype: str, threads: int = 2) -> None:
    """llama.cpp's quantizer (llama_model_quantize), the same code as its llama-quantize tool."""
    from edgeslm.runtime.engines.llama import import_llama_cpp

    if qtype not in TYPES:
        raise ConfigError(f"unknown GGUF quantization type {qtype!r}; supported: {', '.join(TYPES)}")
    lc = import_llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    with quiet_llama():
        rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not Path(dst).is_file():
        raise GgufError(f"llama.cpp could not quantize {src} to {qtype} (code {rc})")


def quantize_to_bundle(source: str, out: Path, config: GgufQuantConfig, eval_text: Path | None = None,
                       name: str | None = None) -> dict[str, Any]:
    """Convert SOURCE to GGUF, quantize it, measure both on held-out text, write a decoder bundle."""
    from edgeslm.formats.gguf import read_header

    src = resolve(source)
    _check_source(src)
    text_name, text = read_eval_text(eval_text) if eval_text is not None else default_eval_text()
    out = Path(out)
    # the folder's name for HF sources (resolve names a .safetensors source after its file), else the model's
    stem = src.path.name if src.format == "hf-folder" else src.name.removesuffix(".gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.convert.", dir=out.parent))  # beside the bundle: same disk
    try:
        t = time.perf_counter()
        folder, pre, note = hf_folder(src, tmp)
        log.info("source ready as an HF folder in %.1f s", time.perf_counter() - t)
        f16 = tmp / f"{stem}.{config.outtype.upper()}.gguf"
        conversion = hf_to_gguf(folder, f16, config.outtype, pre=pre, name=stem)
        log.info("wrote %s (%d bytes) at %.1f s", f16.name, f16.stat().st_size, time.perf_counter() - t)
        if folder != src.path:
            shutil.rmtree(folder, ignore_errors=True)  # the dequantized copy is big and no longer needed
        model_file = f"{stem}.{config.type}.gguf"
        with BundleWriter(out) as writer:
            quantized = writer.path(model_file)
            quantize_file(f16, quantized, config.type, config.threads)
            log.info("quantized to %s at %.1f s", config.type, time.perf_counter() - t)
            kw = dict(max_tokens=config.eval_tokens, n_ctx=config.n_ctx, stride=config.stride, threads=config.threads)
            before = perplexity(f16, text, **kw)
            after = perplexity(quantized, text, **kw)
            log.info("perplexity %.3f -> %.3f at %.1f s", before["perplexity"], after["perplexity"], time.perf_counter() - t)
            header = read_header(quantized)
            compression = {
                "source": src.name, "source_format": src.format, "source_bytes": _bytes(src.path),
                "type": config.type, "unquantized": config.outtype,
                "bytes_before": f16.stat().st_size, "bytes_after": quantized.stat().st_size,
                "size_ratio": round(quantized.stat().st_size / f16.stat().st_size, 4),
                "perplexity_before": before["perplexity"], "perplexity_after": after["perplexity"],
                "ppl_ratio": round(after["perplexity"] / before["perplexity"], 4),
                "eval_text": text_name, "eval_tokens": before["tokens"], "scored_tokens": before["scored"],
                "window": {"n_ctx": config.n_ctx, "stride": config.stride},
                "conversion": conversion, "config": config.to_dict(),
                "quantizer": f"llama.cpp llama_model_quantize (llama-cpp-python {_llama_cpp_version()})",
            }
            if note:
                compression["note"] = note
            manifest = writer.finish(
                name=name or out.name, family="decoder", architecture=header.architecture, task="text-generation",
                engine="llama.cpp", model_file=model_file,
                provenance={"base_model": src.name, "gguf": {"version": header.version, "tensors": header.tensor_count,
                            "file_type": header.metadata.get("general.file_type")}, "compression": compression},
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest.to_dict()


def _check_source(src: ModelSource) -> None:
    if src.family != "decoder":
        raise GgufError(f"{src.name}: an {src.family}; quantize-gguf takes a LLaMA decoder (ONNX encoders: `edgeslm compress`)")
    if src.architecture not in ARCHITECTURES:
        raise GgufError(f"{src.name}: architecture {src.architecture!r}; quantize-gguf converts LLaMA-architecture "
                        f"decoders only ({', '.join(ARCHITECTURES)})")
    if src.format == "hf-folder":
        check_llama_folder(src.path)


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")
