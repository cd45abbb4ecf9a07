"""Grammar-constrained sampling that checks the chosen token instead of the whole vocabulary, and the
log-probability of each sampled token, for the llama.cpp engine. Device side: no torch.

llama-cpp-python puts llama.cpp's grammar sampler at the head of its chain, so every step the grammar
walks all 49,152 candidates of SmolLM2's vocabulary before top-k sees them: JSON-schema answers
decoded at 0.55-0.7x the unconstrained rate. llama.cpp's own common sampler (common/sampling.cpp,
`common_sampler_sample`) samples with the plain chain first and asks the grammar about that one token;
only when the grammar rejects it does it resample with the grammar applied first. This module does
the same, and resamples cheaply too: the grammar first judges only the 256 likeliest tokens, then
the 4,096 likeliest (RESAMPLE_LEVELS), which decides exactly what the full vocabulary would whenever
the chain is greedy and one of them is allowed, or it keeps top_k tokens and at least top_k of them
are allowed (every allowed token outside ranks below all of those); otherwise the whole vocabulary,
as llama.cpp does. Where the model's own pick breaks a JSON schema's grammar, the allowed token sat
at rank 370-33,000 (SmolLM2, greedy): 4,096 catches most at a twelfth of a full pass.

So a greedy answer is the one llama-cpp-python's own sampler gives. With a temperature it is
llama.cpp's common sampler's: a pick of the plain chain the grammar allows is kept, else the grammar-
first pick is drawn (the RNG draws differ from before, so a seeded answer may differ).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

LOGPROB_CANDIDATES = 64  # candidates the grammar judges for a token's log-probability (see CheckedSampler._logprob)
RESAMPLE_LEVELS = (256, 4096)  # the likeliest tokens the grammar judges, in turn, when it rejects the chain's pick


class CheckedSampler:
    """Stands in for llama-cpp-python's `LlamaSampler` inside `Llama.generate` (which only calls
    `sample(ctx, idx)`): the plain chain samples, the grammar checks. `logprobs`, when a list, gets
    one float per sampled token."""

    def __init__(self, llm: Any, chain: Any, grammar: Any, logprobs: list[float] | None, greedy: bool, top_k: int):
        from llama_cpp import _internals, llama_cpp

        self._lc, self.chain, self.logprobs = llama_cpp, chain, logprobs
        self.greedy, self.top_k = greedy, top_k
        self.n_vocab = llm.n_vocab()
        self.grammar = None
        if grammar is not None:
            self.grammar = _internals.LlamaSampler()  # a chain holding only the grammar: freed with it
            self.grammar.add_grammar(llm._model, grammar)
        self._one = llama_cpp.llama_token_data()
        self._one_array = llama_cpp.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
        self._full: Any = None  # n_vocab llama_token_data, allocated the first time the shortcut cannot decide
        self.resampled = self.resampled_full = 0

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
        """llama.cpp's order: the grammar, then the chain (whose accept already ran for the rejected
        token; its samplers keep no state that token changes: penalties are neutral). On the likeliest
        RESAMPLE_LEVELS tokens when that decides it exactly (see the module's docstring), else on all."""
        logits = self._logits(ctx, idx)
        widest = np.argpartition(logits, -RESAMPLE_LEVELS[-1])[-RESAMPLE_LEVELS[-1]:]
        for size in RESAMPLE_LEVELS:
            ids = widest if size == len(widest) else widest[np.argpartition(logits[widest], -size)[-size:]]
            data = (self._lc.llama_token_data * size)()
            view = np.ctypeslib.as_array(data)
            view["id"], view["logit"], view["p"] = ids, logits[ids], 0.0
            cur = self._lc.llama_token_data_array(data, size, -1, False)
            self._lc.llama_sampler_apply(self.grammar.sampler, ctypes.byref(cur))
            allowed = int((view["logit"] != -np.inf).sum())
            if allowed and (self.greedy or 0 < self.top_k <= allowed):
                self._lc.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
                return int(cur.data[cur.selected].id)
        self.resampled_full += 1
        if self._full is None:
            self._full = (self._lc.llama_token_data * self.n_vocab)()
            self._full_view = np.ctypeslib.as_array(self._full)
            self._full_view["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self._full_view["logit"] = logits
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
                # generate() passes every sampling argument by keyword (defaults: temp 0.8, top_k 40).
                # Its chain truncates to top_k only at a positive temperature without mirostat.
                temp = kwargs.get("temp", 0.8)
                top_k = kwargs.get("top_k", 40) if temp > 0 and not kwargs.get("mirostat_mode", 0) else 0
                return CheckedSampler(self, chain, grammar, self.logprobs, greedy=temp == 0.0, top_k=top_k)

        _CLASS = CheckedLlama
    return _CLASS
