"""Decoder compression (build side), the `gguf-*` recipes: a LLaMA-architecture model -> GGUF F16
written by us with the `gguf` package -> quantized by llama.cpp's own quantizer (through
llama-cpp-python's C API) under the guard's perplexity ceiling -> a decoder bundle that carries the
recipe, the size and the perplexity before and after, measured on the same held-out text.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslm.compress.guard import FINAL, Bar, Guard, Outcome, Repair
from edgeslm.compress.modifiers import GGUF_TYPES
from edgeslm.compress.recipe import Recipe
from edgeslm.errors import ConfigError, GgufError
from edgeslm.evaluate.perplexity import default_eval_text, perplexity, quiet_llama, read_eval_text
from edgeslm.export.gguf import ARCHITECTURES, check_llama_folder, hf_folder, hf_to_gguf
from edgeslm.formats.writer import BundleWriter
from edgeslm.models.registry import ModelSource, resolve

log = logging.getLogger(__name__)


def quantize_file(src: Path, dst: Path, qtype: str, threads: int = 2, embeddings_q8: bool = False,
                  allow_requantize: bool = False) -> None:
    """llama.cpp's quantizer (llama_model_quantize), the same code as its llama-quantize tool;
    `embeddings_q8` keeps the output layer and token embeddings at Q8_0 (its --output-tensor-type and
    --token-embedding-type)."""
    from edgeslm.runtime.engines.llama import import_llama_cpp

    if qtype not in GGUF_TYPES:
        raise ConfigError(f"unknown GGUF quantization type {qtype!r}; supported: {', '.join(GGUF_TYPES)}")
    lc = import_llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    params.allow_requantize = allow_requantize  # select's calibration file: a quantized source, timed only
    if embeddings_q8:
        params.output_tensor_type = params.token_embedding_type = lc.GGML_TYPE_Q8_0
    with quiet_llama():
        rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not Path(dst).is_file():
        raise GgufError(f"llama.cpp could not quantize {src} to {qtype} (code {rc})")


@dataclass
class DecoderState:
    qtype: str
    embeddings_q8: bool = False
    student_checked: bool = True  # decoders have no torch student


class EmbeddingsQ8(Repair):
    """The output layer and token embeddings at Q8_0: the tensors every token passes through (in a
    model with tied embeddings, one tensor); a few MB more."""

    name, cost = "embeddings-q8_0", 1

    def applies(self, state: Any) -> bool:
        return not state.embeddings_q8 and state.qtype != "Q8_0"

    def apply(self, state: Any) -> str:
        state.embeddings_q8 = True
        return "output layer and token embeddings at Q8_0"


DECODER_REPAIRS: tuple[Repair, ...] = (EmbeddingsQ8(),)


@dataclass(frozen=True)
class Unquantized:
    """SOURCE already converted to the unquantized GGUF that the guard measures against (select keeps it
    in its cache: converting SmolLM2 took 60 s here, quantizing it 2 s), and that file's perplexity on
    the recipe's window and text when known."""

    path: Path
    conversion: dict[str, Any]
    note: str | None = None
    perplexity: dict[str, Any] | None = None


def convert_unquantized(source: str, outtype: str, folder: Path) -> Unquantized:
    """SOURCE as an unquantized GGUF (f16 or f32) in `folder`, through an HF folder."""
    src = resolve(source)
    _check_source(src)
    stem = _stem(src)
    t = time.perf_counter()
    hf, pre, note = hf_folder(src, folder)
    log.info("source ready as an HF folder in %.1f s", time.perf_counter() - t)
    path = folder / f"{stem}.{outtype.upper()}.gguf"
    conversion = hf_to_gguf(hf, path, outtype, pre=pre, name=stem)
    log.info("wrote %s (%d bytes) at %.1f s", path.name, path.stat().st_size, time.perf_counter() - t)
    if hf != src.path:
        shutil.rmtree(hf, ignore_errors=True)  # the dequantized copy is big and no longer needed
    return Unquantized(path, conversion, note)


def _stem(src: ModelSource) -> str:
    # the folder's name for HF sources (resolve names a .safetensors source after its file), else the model's
    return src.path.name if src.format == "hf-folder" else src.name.removesuffix(".gguf")


def compress_decoder(source: str, recipe: Recipe, out: Path, eval_text: Path | None = None, threads: int = 2,
                     echo: Callable[[str], Any] | None = None, name: str | None = None,
                     unquantized: Unquantized | None = None) -> dict[str, Any]:
    """Convert SOURCE to GGUF (or take `unquantized`, converted from it before), quantize it under the
    recipe's perplexity ceiling relative to the unquantized file (both measured on the same held-out
    text), write a decoder bundle."""
    from edgeslm.formats.gguf import read_header

    say = echo or (lambda _: None)
    config = recipe.gguf
    if config is None or recipe.ceiling is None:
        raise ConfigError(f"recipe {recipe.name}: a decoder recipe needs a quantize-gguf modifier and a ceiling")
    if threads < 1:
        raise ConfigError("threads must be >= 1")
    src = resolve(source)
    _check_source(src)
    text_name, text = read_eval_text(eval_text) if eval_text is not None else default_eval_text()
    out = Path(out)
    stem = _stem(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.convert.", dir=out.parent))  # beside the bundle: same disk
    try:
        t = time.perf_counter()
        unq = unquantized or convert_unquantized(source, config.outtype, tmp)
        f16, conversion, note = unq.path, unq.conversion, unq.note
        kw = dict(max_tokens=config.eval_tokens, n_ctx=config.n_ctx, stride=config.stride, threads=threads)
        before = unq.perplexity or perplexity(f16, text, **kw)
        bar = Bar("perplexity", recipe.ceiling * before["perplexity"], False,
                  f"{recipe.ceiling}x {config.outtype.upper()} {before['perplexity']:.3f}")
        say(f"{config.outtype.upper()} perplexity {before['perplexity']:.3f}; ceiling {recipe.ceiling}x = {bar.limit:.3f}")
        model_file = f"{stem}.{config.qtype}.gguf"
        with BundleWriter(out) as writer:
            quantized = writer.path(model_file)

            def attempt(state: DecoderState) -> Outcome:
                quantize_file(f16, quantized, state.qtype, threads, state.embeddings_q8)
                after = perplexity(quantized, text, **kw)
                log.info("perplexity %.3f -> %.3f at %.1f s", before["perplexity"], after["perplexity"],
                         time.perf_counter() - t)
                record = {"embeddings_q8_0": state.embeddings_q8, "perplexity": after["perplexity"]}
                return Outcome(FINAL, after["perplexity"], record, after)

            outcome, attempts = Guard(bar, DECODER_REPAIRS, f"recipe {recipe.name}", say).run(
                DecoderState(config.qtype), attempt)
            after = outcome.result
            header = read_header(quantized)
            compression = {
                "recipe": recipe.name, "ceiling": recipe.ceiling, "attempts": attempts,
                "embeddings_q8_0": attempts[-1]["embeddings_q8_0"],
                "source": src.name, "source_format": src.format, "source_bytes": _bytes(src.path),
                "type": config.qtype, "unquantized": config.outtype,
                "bytes_before": f16.stat().st_size, "bytes_after": quantized.stat().st_size,
                "size_ratio": round(quantized.stat().st_size / f16.stat().st_size, 4),
                "perplexity_before": before["perplexity"], "perplexity_after": after["perplexity"],
                "ppl_ratio": round(after["perplexity"] / before["perplexity"], 4),
                "eval_text": text_name, "eval_tokens": before["tokens"], "scored_tokens": before["scored"],
                "window": {"n_ctx": config.n_ctx, "stride": config.stride}, "threads": threads,
                "conversion": conversion, "config": config.to_dict(),
                "quantizer": f"llama.cpp llama_model_quantize (llama-cpp-python {_llama_cpp_version()})",
            }
            if note:
                compression["note"] = note
            writer.path("recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
            manifest = writer.finish(
                name=name or out.name, family="decoder", architecture=header.architecture, task="text-generation",
                engine="llama.cpp", model_file=model_file,
                provenance={"base_model": src.name, "gguf": {"version": header.version, "tensors": header.tensor_count,
                            "file_type": header.metadata.get("general.file_type")},
                            "recipe": recipe.to_dict(), "compression": compression},
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"bundle": str(out), "manifest": manifest.to_dict(), "report": compression}


def _check_source(src: ModelSource) -> None:
    if src.family != "decoder":
        raise GgufError(f"{src.name}: an {src.family}; the gguf-* recipes take a LLaMA decoder (encoders: the ONNX recipes)")
    if src.architecture not in ARCHITECTURES:
        raise GgufError(f"{src.name}: architecture {src.architecture!r}; the gguf-* recipes convert LLaMA-architecture "
                        f"decoders only ({', '.join(ARCHITECTURES)})")
    if src.format == "hf-folder":
        check_llama_folder(src.path)


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")
