"""Batching of concurrent classify requests: one worker thread per model takes every request that is
waiting when it becomes free (up to max_batch texts) and runs them as one ONNX Runtime call.

It never waits for a batch to fill: a lone request runs at once, as batch 1, so single-stream latency
is the engine's own; under load, requests queue while the previous batch runs and leave together.
One refinement: when the last batch was larger than what is waiting now, the clients it answered are
about to send again, so the worker waits a moment (a quarter of the last batch's run time, at most
2 ms) for them. Without it, 32 closed-loop clients split into alternating small and large batches.
It waits for the largest of the last 8 batches, not the last one: once split into two halves, waiting
for the last size kept them apart (mean batch 16 in some 32-client runs), while the recent peak lets
the half that was answered first join the half that is queued.

What callers can count on: texts reach the engine in the order they were submitted (FIFO), so a
flood from one client delays another by the texts queued ahead of it, max_batch at a time, and by
nothing queued after it (the governor's queue_limit bounds that backlog). No engine call gets more
than max_batch texts: a request that does not fit runs partly now and the rest first in the next
call. A request the engine refuses fails alone: a failed shared call is retried one request at a time.

In-process callers (the bench, a tier that classifies before it answers) use `classify`, which skips
the hand-off (queue, worker wake, future, caller wake) when the batcher is idle: nothing waiting, no
engine call running, and the worker's last batch a lone request (no sign of concurrent clients). The
caller then runs the engine on its own thread, as a raw ONNX Runtime session would; on the demo's int8
bundle that took single-stream p50 from 1.12x raw ORT to 1.01x. Busy, it queues like `submit`, so FIFO
and max_batch hold, and one lock keeps engine calls one at a time: ORT's `run` is thread-safe, but two
runs at once would share the session's intra-op threads and slow each other. The HTTP server keeps
`submit`: its handlers run on the event loop, and any way off the loop is a hand-off like this one.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[list[str]], tuple[list[dict[str, Any]], str]]  # texts -> (results, variant that ran)


@dataclass
class _Job:
    texts: Sequence[str]
    future: Future
    queued: float
    taken: int = 0  # texts already put in a batch: a job larger than the room left spans batches
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Part:
    job: _Job
    start: int
    stop: int

    @property
    def texts(self) -> Sequence[str]:
        return self.job.texts[self.start:self.stop]


class Batcher:
    def __init__(self, name: str, run: RunBatch, max_batch: int = 32,
                 observe: Callable[[str, int, float], None] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name, self.run, self.max_batch, self.observe = name, run, max_batch, observe
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._carry: _Job | None = None  # the rest of a job that did not fit the last batch; goes first
        self._closed = False
        self._lock = threading.Lock()  # guards _closed and _waiting; no job is queued behind close()'s end marker
        self._waiting = 0  # jobs submitted and not yet through the engine (nor dropped): 0 is idle
        self._engine = threading.Lock()  # held for every engine call, batched or inline: one at a time
        self._last_size, self._last_seconds = 1, 0.0
        self._recent: collections.deque[int] = collections.deque([1], maxlen=8)  # the last batches' sizes
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Future:
        """Queue texts; the future resolves to (results in order, variant name)."""
        future: Future = Future()
        with self._lock:
            self._refuse_if_closed()
            self._waiting += 1
            self._queue.put(_Job(texts, future, time.perf_counter()))
        return future

    def classify(self, texts: Sequence[str]) -> tuple[list[dict[str, Any]], str]:
        """(results in order, variant name), run on the caller's thread when the batcher is idle,
        queued behind the waiting work otherwise. Blocks: call it off the event loop."""
        with self._lock:
            self._refuse_if_closed()
            # Idle means no recent concurrency too: while the worker's last batch held several texts,
            # its clients are about to send again and must find the queue, or batches break up (32
            # clients on a small model fell from mean batch 25 to 8 when the first back ran inline).
            inline = (self._waiting == 0 and self._last_size <= 1 and len(texts) <= self.max_batch
                      and self._engine.acquire(blocking=False))
        if not inline:
            return self.submit(texts).result()
        try:
            return self._call(list(texts))
        finally:
            self._engine.release()

    def _refuse_if_closed(self) -> None:
        if self._closed:  # the worker is gone or going: a queued job would wait forever
            raise RuntimeError(f"the batcher for {self.name} is closed; the server is shutting down")

    def close(self) -> None:
        """Answer every request already submitted, then stop the worker; later submits raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=5)

    def _next(self, timeout: float | None = None) -> _Job | None:
        """The next job still wanted; raises queue.Empty after `timeout` (None: wait, 0: do not)."""
        while True:
            if self._carry is not None:
                job, self._carry = self._carry, None
                if not job.future.done():  # its earlier part may have failed
                    return job
                self._finished(1)
                continue
            if timeout is None:
                job = self._queue.get()
            elif timeout <= 0:
                job = self._queue.get_nowait()
            else:
                job = self._queue.get(timeout=timeout)
            # A caller that gave up (asyncio cancels the future it awaited) costs no engine time.
            if job is None or job.future.set_running_or_notify_cancel():
                return job
            self._finished(1)

    def _finished(self, jobs: int) -> None:
        with self._lock:
            self._waiting -= jobs

    def _take(self, first: _Job) -> list[_Part]:
        parts, size, job = [], 0, first
        deadline = time.perf_counter() + min(0.002, 0.25 * self._last_seconds)
        while True:
            n = min(self.max_batch - size, len(job.texts) - job.taken)
            parts.append(_Part(job, job.taken, job.taken + n))
            job.taken += n
            size += n
            if job.taken < len(job.texts):
                self._carry = job
                break
            if size >= self.max_batch:
                break
            try:
                job = self._next(0)
            except queue.Empty:
                wait = deadline - time.perf_counter()
                if size >= max(self._recent) or wait <= 0:
                    break
                try:
                    job = self._next(wait)
                except queue.Empty:
                    break
            if job is None:  # close() after the work in hand; nothing can be queued behind it
                self._queue.put(None)
                break
        return parts

    def _loop(self) -> None:
        while (first := self._next()) is not None:
            # The batch forms once the engine is free: what queued behind an inline call joins it.
            with self._engine:
                parts = self._take(first)
                self._run(parts)
            self._finished(sum(part.stop == len(part.job.texts) for part in parts))

    def _call(self, texts: list[str]) -> tuple[list[dict[str, Any]], str]:
        """One engine call, checked and observed; the caller holds the engine lock."""
        started = time.perf_counter()
        results, variant = self.run(texts)
        if len(results) != len(texts):
            raise RuntimeError(f"the engine answered {len(results)} results for {len(texts)} texts")
        if self.observe:
            self.observe(self.name, len(texts), time.perf_counter() - started)
        return results, variant

    def _run(self, parts: list[_Part]) -> None:
        texts = [t for part in parts for t in part.texts]
        started = time.perf_counter()
        try:
            results, variant = self._call(texts)
        except Exception as exc:
            if len({id(p.job) for p in parts}) > 1:
                # One request's bad input must not fail the others it shared the call with: each runs
                # again alone. Costs extra engine calls only when a call fails.
                for part in parts:
                    if not part.job.future.done():
                        self._run([part])
                return
            _fail(parts, exc)
            return
        except BaseException as exc:  # every waiting client hears of it; the worker lives on
            _fail(parts, exc)
            return
        # The worker's batches only: they say whether clients are sending at once (see classify).
        self._last_size, self._last_seconds = len(texts), time.perf_counter() - started
        self._recent.append(len(texts))
        at = 0
        for part in parts:
            job = part.job
            job.results.extend(results[at:at + len(part.texts)])
            at += len(part.texts)
            if len(job.results) == len(job.texts) and not job.future.done():
                job.future.set_result((job.results, variant))


def _fail(parts: list[_Part], exc: BaseException) -> None:
    for part in parts:
        if not part.job.future.done():
            part.job.future.set_exception(exc)
