"""The systems under test LoadGen drives. edgeslm's are the serving path without HTTP (the server's
own Batcher over OnnxClassifier; LlamaEngine); the baselines are the plain APIs a user would call.

Answers are what accuracy mode logs: an encoder writes the predicted label's index (int32, little
endian), a decoder its generated text (UTF-8). Which SUT answers for edgeslm is chosen by family and
division in EDGESLM_SUTS: the seam where the open division's adaptive tiers (cache, router) plug in.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from edgeslm.bench.loadgen import Completer
from edgeslm.runtime.engines.llama import DoneEvent, LlamaEngine, TextEvent
from edgeslm.runtime.engines.onnx import OnnxClassifier
from edgeslm.runtime.server.batcher import Batcher

INLINE = ("single-stream", "multi-stream")  # LoadGen waits for each query: answer on its thread


def label_bytes(index: int) -> bytes:
    return struct.pack("<i", index)


class QueuedSut:
    """Inline in single- and multi-stream; in offline and server, one worker thread takes the queries
    in arrival order, so `issue` returns at once and LoadGen keeps its schedule."""

    name = "sut"

    def __init__(self, scenario: str):
        self.computed = 0
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        if scenario not in INLINE:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._loop, name=f"sut-{self.name}", daemon=True)
            self._thread.start()

    def issue(self, samples: list[Any], qsl: Sequence[Any], done: Completer) -> None:
        if self._queue is None:
            self.run(samples, qsl, done)
        else:
            self._queue.put((samples, qsl, done))

    def _loop(self) -> None:
        assert self._queue is not None
        while (job := self._queue.get()) is not None:
            samples, qsl, done = job
            try:
                self.run(samples, qsl, done)
            except Exception as exc:
                done.fail([s.id for s in samples], exc)

    def run(self, samples: list[Any], qsl: Sequence[Any], done: Completer) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)


class BatcherSut:
    """edgeslm's encoder: the HTTP server's Batcher over OnnxClassifier. Single- and multi-stream call
    `classify` on LoadGen's thread (a multi-stream query's N samples go as one batch); offline and
    server `submit` each sample and answer from the future's completion."""

    name = "edgeslm"

    def __init__(self, engine: OnnxClassifier, model: str, labels: Sequence[str], scenario: str, max_batch: int):
        self.computed = 0
        self.index = {label: i for i, label in enumerate(labels)}
        self.inline = scenario in INLINE

        def run(texts: list[str]) -> tuple[list[dict[str, Any]], str]:
            self.computed += len(texts)  # under the batcher's engine lock: one call at a time
            return engine.predict(texts), model

        self.batcher = Batcher(model, run, max_batch)

    def call(self, items: Sequence[str]) -> None:
        self.batcher.classify(list(items))

    def issue(self, samples: list[Any], qsl: Sequence[str], done: Completer) -> None:
        if self.inline:
            results, _ = self.batcher.classify([qsl[s.index] for s in samples])
            done.complete([(s.id, label_bytes(self.index[r["label"]]), None) for s, r in zip(samples, results, strict=True)])
            return
        for s in samples:
            self.batcher.submit([qsl[s.index]]).add_done_callback(self._answer(s.id, done))

    def _answer(self, sample_id: int, done: Completer) -> Callable[[Future], None]:
        def answer(future: Future) -> None:  # on the batcher's worker thread
            try:
                results, _ = future.result()
            except BaseException as exc:  # noqa: BLE001 - reported after the test by the Completer
                done.fail([sample_id], exc)
                return
            done.complete([(sample_id, label_bytes(self.index[results[0]["label"]]), None)])

        return answer

    def close(self) -> None:
        self.batcher.close()


class PlainSut(QueuedSut):
    """A baseline's `predict(texts) -> labels`: each query's samples in chunks of `batch`, nothing else
    (no batching across queries: the plain API has none)."""

    def __init__(self, name: str, predict: Callable[[list[str]], list[str]], labels: Sequence[str],
                 scenario: str, batch: int):
        self.name, self.predict, self.batch = name, predict, batch
        self.index = {label: i for i, label in enumerate(labels)}
        super().__init__(scenario)

    def call(self, items: Sequence[str]) -> None:
        self.predict(list(items))

    def run(self, samples: list[Any], qsl: Sequence[str], done: Completer) -> None:
        for at in range(0, len(samples), self.batch):
            chunk = samples[at:at + self.batch]
            labels = self.predict([qsl[s.index] for s in chunk])
            self.computed += len(chunk)
            done.complete([(s.id, label_bytes(self.index[label]), None) for s, label in zip(chunk, labels, strict=True)])


class LlamaSut(QueuedSut):
    """edgeslm's decoder: LlamaEngine.complete, greedy, exactly `new_tokens` tokens. The KV cache is
    dropped before every query (a cold prefill: no prefix reuse between queries)."""

    name = "edgeslm"

    def __init__(self, engine: LlamaEngine, scenario: str, new_tokens: int):
        self.engine, self.new_tokens = engine, new_tokens
        super().__init__(scenario)

    def call(self, items: Sequence[str]) -> None:
        for prompt in items:
            self._generate(prompt, None)

    def run(self, samples: list[Any], qsl: Sequence[str], done: Completer) -> None:
        for s in samples:
            text, final = self._generate(qsl[s.index], lambda piece, i=s.id: done.first_token(i, piece))
            self.computed += final.cached_tokens == 0
            done.complete([(s.id, text.encode("utf-8"), final.completion_tokens)])

    def _generate(self, prompt: str, first: Callable[[bytes], None] | None) -> tuple[str, DoneEvent]:
        self.engine.reset()
        pieces: list[str] = []
        final = None
        for event in self.engine.complete(prompt, max_tokens=self.new_tokens, temperature=0.0, seed=0, ignore_eos=True):
            if isinstance(event, TextEvent):
                if not pieces and first is not None:
                    first(event.text.encode("utf-8"))
                pieces.append(event.text)
            elif isinstance(event, DoneEvent):
                final = event
        assert final is not None, "LlamaEngine's stream ends with a DoneEvent"
        if not pieces and first is not None:  # nothing printable came out: the first token is the end
            first(b"")
        return "".join(pieces), final


class RawLlamaSut(QueuedSut):
    """The llama-cpp-python baseline: `Llama.generate` on token ids (tokenized when the QSL loads, as
    MLPerf allows), greedy, `new_tokens` tokens; the text is detokenized once at the end."""

    name = "llama-cpp"

    def __init__(self, llm: Any, prompts: Sequence[str], scenario: str, new_tokens: int):
        self.llm, self.new_tokens = llm, new_tokens
        self.tokens = {p: llm.tokenize(p.encode("utf-8"), add_bos=True, special=True) for p in prompts}
        super().__init__(scenario)

    def call(self, items: Sequence[str]) -> None:
        for prompt in items:
            self._generate(self.tokens.get(prompt) or self.llm.tokenize(prompt.encode("utf-8")), None)

    def run(self, samples: list[Any], qsl: Sequence[str], done: Completer) -> None:
        for s in samples:
            ids = self._generate(self.tokens[qsl[s.index]], lambda token, i=s.id: done.first_token(i, label_bytes(token)))
            self.computed += 1  # reset() before every query: llama-cpp-python finds no prefix to reuse
            text = self.llm.detokenize(ids).decode("utf-8", errors="replace")
            done.complete([(s.id, text.encode("utf-8"), len(ids))])

    def _generate(self, tokens: list[int], first: Callable[[int], None] | None) -> list[int]:
        self.llm.reset()
        ids: list[int] = []
        gen = self.llm.generate(tokens, temp=0.0, repeat_penalty=1.0)
        for token in gen:
            if not ids and first is not None:
                first(token)
            ids.append(token)
            if len(ids) >= self.new_tokens:
                break
        gen.close()
        return ids


# (family, division) -> edgeslm's SUT. The open division will get the adaptive tiers; until then
# it runs the closed SUT, and the JSON says which division ran.
EDGESLM_SUTS: dict[tuple[str, str], type] = {
    ("encoder", "closed"): BatcherSut, ("encoder", "open"): BatcherSut,
    ("decoder", "closed"): LlamaSut, ("decoder", "open"): LlamaSut,
}
