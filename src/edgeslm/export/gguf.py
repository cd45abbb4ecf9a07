"""Decoders into GGUF (build side): bundle a GGUF file as it is, or write a LLaMA Hugging Face
folder (safetensors) as an F16/F32 GGUF file with the `gguf` package; a GGUF source is first
dequantized through transformers into such a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import BundleError, GgufError
from edgeslm.formats.writer import BundleWriter
from edgeslm.models.registry import ModelSource, resolve

ARCHITECTURES = ("llama",)
# tokenizer.json pre-tokenizers that llama.cpp knows by name (tokenizer.ggml.pre).
LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def export_gguf(model: str, out: Path, name: str | None = None, profile: str = "any") -> dict[str, Any]:
    """Bundle a decoder that is already a GGUF file (built-in `smollm2-135m` or a path)."""
    from edgeslm.formats.gguf import read_header

    source = resolve(model)
    if source.format != "gguf":
        raise BundleError(f"{model}: decoder bundles carry GGUF; convert {source.format} with llama.cpp first")
    header = read_header(source.path)
    with BundleWriter(out) as writer:
        writer.add(source.path, source.path.name)
        manifest = writer.finish(
            name=name or Path(out).name, family="decoder", architecture=header.architecture,
            task="text-generation", engine="llama.cpp", model_file=source.path.name,
            provenance={"base_model": source.name, "gguf": {"version": header.version,
                        "tensors": header.tensor_count,
                        "file_type": header.metadata.get("general.file_type"),
                        "name": header.metadata.get("general.name")}},
            profile=profile,
        )
    return manifest.to_dict()


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


def hf_folder(src: ModelSource, tmp: Path) -> tuple[Path, str | None, str | None]:
    """An HF folder to convert, the pre-tokenizer name to force, and a note for the report."""
    if src.format == "hf-folder":
        return src.path, None, None
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    from edgeslm.formats.gguf import read_header
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
