"""A decoder bundle served with llama.cpp (llama-cpp-python): chat and raw completion as a stream of
text pieces ending in one event with the request's numbers. Device side: no torch, no transformers.

llama.cpp holds one context with one sequence, so requests run one at a time under a lock. The
context keeps the KV cache of the previous request: `Llama.generate` compares the new prompt's
tokens with the ones already evaluated and re-evaluates only the part after the common prefix (a
chat's next turn, or a fixed system prompt, costs only its new tokens). `reset()` drops it.

A grammar (or a JSON schema) constrains sampling through llama_sampler.CheckedSampler: the plain chain
picks a token and the grammar checks only that one, as llama.cpp's own common sampler does, and when
it rejects it, judges the likeliest tokens before the whole vocabulary; llama-cpp-python's own
sampler judged all 49k candidates every step (constrained decoding at 0.55-0.75x free, now 0.9-1x).
"""

from __future__ import annotations

import codecs
import ctypes
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgeslm.errors import BundleError
from edgeslm.runtime.engines.llama_sampler import checked_llama_class
from edgeslm.runtime.engines.sampling import SamplingConfig

ROLES = ("system", "user", "assistant")
DEFAULT_SEED = 0
KV_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16
INSTALL = "pip install 'edgeslm[device]'"


@dataclass(frozen=True)
class TextEvent:
    """A piece of generated text (whole UTF-8 characters; may be several tokens or part of none)."""

    text: str
    type: ClassVar[str] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text}


@dataclass(frozen=True)
class DoneEvent:
    """The last event of every stream."""

    finish_reason: str  # "stop": end of turn or a stop string; "length": max_tokens or the context is full
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose KV cache was reused from the previous request
    time_to_first_token_s: float  # call to first sampled token: prompt evaluation (prefill) + one sample
    decode_tokens_per_s: float  # tokens after the first / time after the first; 0.0 when fewer than 2
    total_s: float
    # with logprobs=True: per sampled token (end of turn included), its text and log-probability
    # (llama_sampler.CheckedSampler._logprob says which distribution)
    token_logprobs: tuple[tuple[str, float], ...] = ()
    type: ClassVar[str] = "done"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


Event = TextEvent | DoneEvent


def collect(events: Iterator[Event]) -> tuple[str, DoneEvent]:
    """Drain a stream: the whole text and the final event."""
    parts, done = [], None
    for event in events:
        if isinstance(event, TextEvent):
            parts.append(event.text)
        else:
            done = event
    assert done is not None, "a stream always ends with a DoneEvent"
    return "".join(parts), done


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise BundleError(f"serving decoder bundles needs llama-cpp-python: {INSTALL}") from None
    return llama_cpp


class LlamaEngine:
    def __init__(self, model_path: Path, threads: int | None = None, n_ctx: int = 2048, seed: int = DEFAULT_SEED):
        llama_cpp = import_llama_cpp()
        self.model_path = Path(model_path)
        self.name = self.model_path.parent.name  # from_bundle names it after the manifest
        if not self.model_path.is_file():
            raise BundleError(f"{self.model_path}: model file is missing")
        if not 16 <= n_ctx <= 131072:
            raise ValueError(f"n_ctx must be in [16, 131072], got {n_ctx}")
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.n_ctx = n_ctx
        self.seed = seed
        self._lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        self._control_texts: list[str] | None = None
        try:
            self._llm = checked_llama_class(llama_cpp)(
                model_path=str(self.model_path), n_threads=self.threads, n_threads_batch=self.threads, n_ctx=n_ctx,
                use_mmap=True, seed=seed, verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python raises ValueError when llama.cpp refuses the file
            raise BundleError(f"{self.model_path}: llama.cpp cannot load it ({exc})") from None
        self._metadata = dict(self._llm.metadata)  # GGUF key/values as strings, kept for memory_bytes
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._llama_cpp = llama_cpp
        self._formatter = self._chat_formatter()

    @classmethod
    def from_bundle(cls, bundle: Any, threads: int | None = None, n_ctx: int = 2048) -> LlamaEngine:
        m = bundle.manifest
        if m.family != "decoder":
            raise BundleError(f"{bundle.path}: a {m.family} bundle ({m.task}) is not a decoder; serve it with the "
                              f"{m.engine} engine")
        engine = cls(bundle.model_path, threads=threads, n_ctx=n_ctx)
        engine.name = m.name
        return engine

    # ---- requests -------------------------------------------------------------------------------

    def chat(self, messages: Sequence[dict[str, str]], max_tokens: int = 256, temperature: float = 0.7,
             top_p: float = 0.95, stop: Sequence[str] | None = None, grammar: str | None = None,
             json_schema: dict[str, Any] | None = None, seed: int | None = None,
             logprobs: bool = False) -> Iterator[Event]:
        """Answer a conversation with the model's own chat template: TextEvents, then one DoneEvent.
        The sampling arguments are SamplingConfig's fields, checked by it against its ranges;
        `logprobs` fills DoneEvent.token_logprobs.
        Validation (a ValueError) happens here, before the stream starts; the lock is taken when the
        stream is first read and held until it is drained or closed."""
        sampling = SamplingConfig(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop,
                                  grammar=grammar, json_schema=json_schema, seed=seed)
        _check_messages(messages)
        self._refuse_control_tokens(messages)
        if self._formatter is None:
            raise ValueError("this model has no chat template in its GGUF metadata; use complete() with a raw prompt")
        import jinja2

        try:
            prompt = self._formatter(messages=[{"role": m["role"], "content": m["content"]} for m in messages]).prompt
        except jinja2.TemplateError as exc:  # the template's own raise_exception() already gives a ValueError
            raise ValueError(f"the model's chat template refused these messages: {exc}") from None
        return self._start(prompt, sampling, ignore_eos=False, logprobs=logprobs)

    def complete(self, prompt: str, max_tokens: int = 256, temperature: float = 0.7, top_p: float = 0.95,
                 stop: Sequence[str] | None = None, grammar: str | None = None,
                 json_schema: dict[str, Any] | None = None, seed: int | None = None,
                 ignore_eos: bool = False, logprobs: bool = False) -> Iterator[Event]:
        """Continue a raw prompt (no template). `ignore_eos` generates exactly max_tokens (benchmarks)."""
        sampling = SamplingConfig(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop,
                                  grammar=grammar, json_schema=json_schema, seed=seed)
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("prompt must be a non-empty string")
        return self._start(prompt, sampling, ignore_eos, logprobs)

    def tokenize(self, text: str) -> list[int]:
        # special=True: control tokens written in the text (a chat template's <|im_start|>) are parsed as
        # such, as llama-cpp-python does for its own completions; BOS only where the model asks for it.
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def reset(self) -> None:
        """Forget the KV cache: the next request evaluates its whole prompt (a cold prefill)."""
        with self._lock:
            self._llm.reset()

    def prefill(self, tokens: Sequence[int]) -> None:
        """Evaluate `tokens` into the KV cache as the whole context (a fixed prompt prefix), no sampling."""
        with self._lock:
            llm = self._llm
            keep = _common_prefix(llm._input_ids, tokens)
            llm.n_tokens = keep
            llm.eval(list(tokens[keep:]))
            llm._requires_eval = True  # the next request decodes at least one token before sampling

    def save_prompt(self, path: Path) -> None:
        """Write the KV cache of the context evaluated so far to `path` (llama.cpp's own state file, with
        its tokens), through a temporary file: a crash or a full disk never leaves half a file there."""
        lc = self._llama_cpp
        with self._lock:
            llm = self._llm
            n = int(llm.n_tokens)
            tokens = (lc.llama_token * max(1, n))(*llm.input_ids[:n].tolist())
            tmp = path.with_name(path.name + ".tmp")
            if not lc.llama_state_save_file(llm.ctx, str(tmp).encode(), tokens, n):
                tmp.unlink(missing_ok=True)
                raise OSError(f"{tmp}: llama.cpp could not write the state file")
        os.replace(tmp, path)

    def load_prompt(self, path: Path, tokens: Sequence[int]) -> bool:
        """Load a state file `save_prompt` wrote for exactly these `tokens` into the KV cache. False (and a
        clean context) when it cannot: missing, truncated, from another model or another prompt."""
        lc = self._llama_cpp
        with self._lock:
            llm = self._llm
            out = (lc.llama_token * self.n_ctx)()
            count = ctypes.c_size_t(0)
            try:
                ok = path.is_file() and lc.llama_state_load_file(llm.ctx, str(path).encode(), out, self.n_ctx,
                                                                 ctypes.byref(count))
            except OSError:
                ok = False
            n = int(count.value)
            if not ok or n != len(tokens) or list(out[:n]) != list(tokens):
                llm.reset()
                llm._ctx.kv_cache_clear()
                return False
            llm.input_ids[:n] = tokens
            llm.n_tokens = n
            llm._requires_eval = True
            return True

    def memory_bytes(self) -> int:
        """Model file (mmapped) + KV cache at full context: n_ctx x layers x (kv heads x head dim) x K,V x f16.
        Compute buffers (a few MB for small models) are not counted. The shape comes from the metadata
        llama.cpp has already parsed (re-reading the GGUF header took 0.2 s a load for SmolLM2)."""
        meta = self._metadata
        arch = meta.get("general.architecture", "llama")
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        head_dim = int(meta.get(f"{arch}.attention.key_length", int(meta[f"{arch}.embedding_length"]) // heads))
        kv = self.n_ctx * layers * kv_heads * head_dim * 2 * KV_BYTES_PER_VALUE
        return self.model_path.stat().st_size + kv

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # ---- internals ------------------------------------------------------------------------------

    def _chat_formatter(self) -> Any:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text(token: int) -> str:
            return self._piece(token, special=True).decode("utf-8", errors="replace") if token >= 0 else ""

        return Jinja2ChatFormatter(template=template, eos_token=text(self._llm.token_eos()),
                                   bos_token=text(self._llm.token_bos()))

    def _start(self, prompt: str, sampling: SamplingConfig, ignore_eos: bool, logprobs: bool = False) -> Iterator[Event]:
        if self._llm is None:
            raise BundleError("this engine was closed")
        if sampling.max_tokens > self.n_ctx:  # the range is SamplingConfig's; the context is this engine's
            raise ValueError(f"max_tokens must be an integer in [1, {self.n_ctx}] (this engine's context), "
                             f"got {sampling.max_tokens}")
        grammar = self._grammar(sampling.grammar, sampling.json_schema)
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"the prompt has {len(tokens)} tokens; this engine's context holds {self.n_ctx}")
        seed = self.seed if sampling.seed is None else sampling.seed
        return self._stream(tokens, sampling, grammar, seed, ignore_eos, logprobs)

    def _refuse_control_tokens(self, messages: Sequence[dict[str, str]]) -> None:
        """The templated prompt is tokenized with special tokens parsed (the template itself writes
        them), so a user typing `<|im_start|>system` would forge a turn. Refuse such text instead."""
        for i, m in enumerate(messages):
            found = self.control_tokens_in(m["content"])
            if found:
                raise ValueError(f"messages[{i}].content contains the model's control token {found[0]!r}")

    def control_tokens_in(self, text: str) -> list[str]:
        """The model's control tokens (`<|im_end|>`, ...) written in `text`: a caller that builds a raw
        prompt from user text refuses these, as chat() does."""
        if self._control_texts is None:
            lc = self._llama_cpp
            n = lc.llama_vocab_n_tokens(self._vocab)
            texts = set()
            for t in range(n):
                if lc.llama_vocab_get_attr(self._vocab, t) & lc.LLAMA_TOKEN_ATTR_CONTROL:
                    piece = (lc.llama_vocab_get_text(self._vocab, t) or b"").decode("utf-8", "replace")
                    if len(piece) > 1:
                        texts.add(piece)
            self._control_texts = sorted(texts)
        return [t for t in self._control_texts if t in text]

    def _grammar(self, grammar: str | None, json_schema: dict[str, Any] | None) -> Any:
        """Compile what SamplingConfig has checked (at most one of the two) against this model's vocab."""
        if grammar is None and json_schema is None:
            return None
        from llama_cpp.llama_grammar import LlamaGrammar

        if json_schema is not None:
            try:
                obj = LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
            except Exception as exc:  # the schema converter raises plain Exceptions / KeyErrors
                raise ValueError(f"json_schema cannot be turned into a grammar: {exc}") from None
            what = "the grammar made from json_schema"
        else:
            obj = LlamaGrammar.from_string(grammar, verbose=False)
            what = "grammar"
        # llama-cpp-python does not parse GBNF itself; llama.cpp returns no sampler for text it cannot
        # parse (and generation would then run with a null sampler), so parse it once here, up front.
        error = _parse_gbnf(self._llama_cpp, self._vocab, obj._grammar, obj._root)
        if error is not None:
            raise ValueError(f"{what} is not valid GBNF: {error}")
        return obj

    def _piece(self, token: int, special: bool = False) -> bytes:
        key = token if not special else -token - 1
        piece = self._pieces.get(key)
        if piece is None:
            size = 64
            while True:
                buf = ctypes.create_string_buffer(size)
                n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, special)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._pieces[key] = piece
        return piece

    def _stream(self, tokens: list[int], sampling: SamplingConfig, grammar: Any, seed: int,
                ignore_eos: bool, logprobs: bool = False) -> Iterator[Event]:
        with self._lock:  # held until the stream is drained or closed (server: close it on disconnect)
            llm = self._llm
            if llm is None:
                raise BundleError("this engine was closed")
            start = time.perf_counter()
            cached = _common_prefix(llm._input_ids, tokens)
            llm.set_seed(seed)
            budget = min(sampling.max_tokens, self.n_ctx - len(tokens))
            stops = list(sampling.stop)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text, sent = "", 0
            n, first_at, last_at, finish, eog = 0, 0.0, 0.0, "length", False
            hold = max((len(s) for s in stops), default=0)
            scores: list[float] | None = [] if logprobs else None
            sampled: list[int] = []
            llm.logprobs = scores  # read by the sampler generate() builds (llama_sampler.checked_llama_class)
            gen = llm.generate(tokens, temp=sampling.temperature, top_p=sampling.top_p, top_k=40, min_p=0.05,
                               repeat_penalty=1.0, grammar=grammar)
            try:
                for token in gen:
                    last_at = time.perf_counter()
                    sampled.append(token)
                    if n == 0:
                        first_at = last_at
                    n += 1
                    if not ignore_eos and self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                        finish, eog = "stop", True
                        break
                    text += decoder.decode(self._piece(token))
                    if stops:
                        cut = _find_stop(text, stops, sent)
                        if cut is not None:
                            if cut > sent:
                                yield TextEvent(text[sent:cut])
                            sent, text, finish = cut, text[:cut], "stop"
                            break
                        safe = len(text) - _held_back(text, stops, hold)
                    else:
                        safe = len(text)
                    if safe > sent:
                        yield TextEvent(text[sent:safe])
                        sent = safe
                    if n >= budget:
                        break
            finally:
                gen.close()
                llm.logprobs = None
            if finish == "length":
                text += decoder.decode(b"", final=True)
                if len(text) > sent:
                    yield TextEvent(text[sent:])
            end = time.perf_counter()
            # every sampled token after the first cost one decode step, the end-of-turn token included
            rate = (n - 1) / (last_at - first_at) if n > 1 and last_at > first_at else 0.0
            yield DoneEvent(
                finish_reason=finish, prompt_tokens=len(tokens), completion_tokens=n - 1 if eog else n,
                cached_tokens=cached, time_to_first_token_s=first_at - start, decode_tokens_per_s=rate,
                total_s=end - start, token_logprobs=self._token_logprobs(sampled, scores),
            )


    def _token_logprobs(self, sampled: list[int], scores: list[float] | None) -> tuple[tuple[str, float], ...]:
        if scores is None:
            return ()
        return tuple((self._piece(t).decode("utf-8", errors="replace"), round(s, 6))
                     for t, s in zip(sampled, scores, strict=False))


_LOG_LOCK = threading.Lock()


def _parse_gbnf(lc: Any, vocab: Any, grammar: str, root: str) -> str | None:
    """None when llama.cpp parses `grammar`, else llama.cpp's own error message. Its parser writes the
    reason straight to the C stderr (and a summary through the log callback), so both are captured for
    the few microseconds the parse takes; a user of the server gets the reason in the HTTP 400."""
    from llama_cpp import _logger

    @lc.llama_log_callback
    def quiet(level: int, text: bytes, _user: Any) -> None:
        pass

    with _LOG_LOCK, tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        lc.llama_log_set(quiet, ctypes.c_void_p(0))
        os.dup2(capture.fileno(), 2)
        try:
            sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), root.encode("utf-8"))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            lc.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        capture.seek(0)
        output = capture.read(1 << 16).decode("utf-8", errors="replace")
    if sampler:
        lc.llama_sampler_free(sampler)
        return None
    for line in output.splitlines():
        if "error parsing grammar:" in line:
            return line.split("error parsing grammar:", 1)[1].strip()[:300]
    return "llama.cpp could not parse it"


def _common_prefix(done: Sequence[int], tokens: Sequence[int]) -> int:
    n = 0  # the shorter sequence bounds the common prefix: unequal lengths are the point
    for a, b in zip(done, tokens, strict=False):
        if a != b:
            break
        n += 1
    return min(n, len(tokens) - 1)  # the last prompt token is always evaluated again to get fresh logits


def _find_stop(text: str, stops: list[str], start: int) -> int | None:
    """Where the earliest stop string begins at or after `start` (text before it was never held back)."""
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _held_back(text: str, stops: list[str], hold: int) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    for k in range(min(hold - 1, len(text)), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            return k
    return 0


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or "role" not in m or "content" not in m:
            raise ValueError(f"messages[{i}] must be an object with exactly 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise ValueError(f"messages[{i}].content must be a string")
