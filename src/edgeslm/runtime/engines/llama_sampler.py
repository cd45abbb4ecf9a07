"""Grammar-constrained sampling that checks the chosen token instead of the whole vocabulary, and the
log-probability of each sampled token, for the llama.cpp engine. Device side: no torch.

llama-cpp-python puts llama.cpp's grammar sampler at the head of its chain, so every step the grammar
walks all 49,152 candidates of SmolLM2's vocabulary before top-k sees them: JSON-schema answers
decoded at 0.55-0.7x the unconstrained rate. llama.cpp's own common sampler (common/sampling.cpp,
`common_sampler_sample`) samples with the plain chain first and asks the grammar about that one token;
only when the grammar rejects it does it resample with the grammar applied to the full vocabulary.
This module does the same. The result is the same distribution: a greedy chain picks the likeliest
token either way, and for a random chain, accept-or-resample-renormalized is exactly sampling from
the renormalized distribution (only the RNG draws differ, so a seeded answer may differ from before).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

LOGPROB_CANDIDATES = 64  # candidates the grammar judges for a token's log-probability (see CheckedSampler._logprob)


class CheckedSampler:
    """Stands in for llama-cpp-python's `LlamaSampler` inside `Llama.generate` (which only calls
    `sample(ctx, idx)`): the plain chain samples, the grammar checks. `logprobs`, when a list, gets
    one float per sampled token."""

    def __init__(self, llm: Any, chain: Any, grammar: Any, logprobs: list[float] | None):
        from llama_cpp import _internals, llama_cpp

        self._lc, self.chain, self.logprobs = llama_cpp, chain, logprobs
        self.n_vocab = llm.n_vocab()
        self.grammar = None
        if grammar is not None:
            self.grammar = _internals.LlamaSampler()  # a chain holding only the grammar: freed with it
            self.grammar.add_grammar(llm._model, grammar)
        self._one = llama_cpp.llama_token_data()
        self._one_array = llama_cpp.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
        self._full: Any = None  # n_vocab llama_token_data, allocated on the first rejection
        self.resampled = 0

    def sample(self, ctx: Any, idx: int) -> int:
        token = self.chain.sample(ctx, idx)  # C: the whole chain over the raw logits, then its accept
        if self.grammar is not None and not self._allowed(token):
            token = self._resample(ctx, idx)
            self.resampled += 1
        if self.logprobs is not None:
            self.logprobs.append(self._logprob(ctx, idx, token))
        if self.grammar is not None:
            self.grammar.accept(token)
        return token

    # ---- internals ------------------------------------------------------------------------------

    def _allowed(self, token: int) -> bool:
        self._one.id, self._one.logit, self._one.p = token, 1.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._lc.llama_sampler_apply(self.grammar.sampler, ctypes.byref(self._one_array))
        return self._one.logit != -math.inf

    def _logits(self, ctx: Any, idx: int) -> np.ndarray:
        return np.ctypeslib.as_array(self._lc.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))

    def _resample(self, ctx: Any, idx: int) -> int:
        """llama.cpp's order: grammar over the full vocabulary, then the chain (whose accept already ran
        for the rejected token; its samplers keep no state that token changes: penalties are neutral)."""
        if self._full is None:
            self._full = (self._lc.llama_token_data * self.n_vocab)()
            self._full_view = np.ctypeslib.as_array(self._full)
            self._full_view["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self._full_view["logit"] = self._logits(ctx, idx)
        self._full_view["p"] = 0.0
        cur = self._lc.llama_token_data_array(self._full, self.n_vocab, -1, False)
        self._lc.llama_sampler_apply(self.grammar.sampler, ctypes.byref(cur))
        self._lc.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
        return int(cur.data[cur.selected].id)

    def _logprob(self, ctx: Any, idx: int, token: int) -> float:
        """log p(token) at temperature 1, renormalized over what the grammar allows. The grammar judges
        only the LOGPROB_CANDIDATES likeliest tokens (and the chosen one): walking all 49k would cost
        what the checked sampling saves, and the mass beyond the top 64 of a peaked small model is
        negligible. Without a grammar: the plain log-softmax over the vocabulary."""
        logits = self._logits(ctx, idx)
        if self.grammar is None:
            top = float(logits.max())
            return float(logits[token] - top - np.log(np.exp(logits - top).sum()))
        ids = np.argpartition(logits, -LOGPROB_CANDIDATES)[-LOGPROB_CANDIDATES:]
        if token not in ids:
            ids = np.append(ids, token)
        data = (self._lc.llama_token_data * len(ids))()
        view = np.ctypeslib.as_array(data)
        view["id"], view["logit"], view["p"] = ids, logits[ids], 0.0
        cur = self._lc.llama_token_data_array(data, len(ids), -1, False)
        self._lc.llama_sampler_apply(self.grammar.sampler, ctypes.byref(cur))
        allowed = logits[ids][view["logit"] != -np.inf]
        top = float(allowed.max())
        return float(logits[token] - top - np.log(np.exp(allowed - top).sum()))


_CLASS: Any = None


def checked_llama_class(llama_cpp: Any) -> Any:
    """llama_cpp.Llama whose sampler is a CheckedSampler when a request has a grammar or wants
    log-probabilities (set `logprobs` to a list before `generate`); else llama-cpp-python's own."""
    global _CLASS
    if _CLASS is None:
        class CheckedLlama(llama_cpp.Llama):
            logprobs: list[float] | None = None

            def _init_sampler(self, *args: Any, grammar: Any = None, **kwargs: Any) -> Any:
                chain = super()._init_sampler(*args, grammar=None, **kwargs)
                if grammar is None and self.logprobs is None:
                    return chain
                return CheckedSampler(self, chain, grammar, self.logprobs)

        _CLASS = CheckedLlama
    return _CLASS
