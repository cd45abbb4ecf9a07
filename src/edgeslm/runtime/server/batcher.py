"""Batching of concurrent classify requests: one worker thread per model takes every request that is
waiting when it becomes free (up to max_batch) and runs them as one ONNX Runtime call.

It never waits for a batch to fill: a lone request runs at once, as batch 1, so single-stream latency
is the engine's own; under load, requests queue while the previous batch runs and leave together.
One refinement: when the last batch was larger than what is waiting now, the clients it answered are
about to send again, so the worker waits a moment (a quarter of the last batch's run time, at most
2 ms) for them. Without it, 32 closed-loop clients split into alternating small and large batches.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

RunBatch = Callable[[list[str]], tuple[list[dict[str, Any]], str]]  # texts -> (results, variant that ran)


@dataclass
class _Job:
    texts: Sequence[str]
    future: Future
    queued: float


class Batcher:
    def __init__(self, name: str, run: RunBatch, max_batch: int = 32,
                 observe: Callable[[str, int, float], None] | None = None):
        self.name, self.run, self.max_batch, self.observe = name, run, max_batch, observe
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._last_size, self._last_seconds = 1, 0.0
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Future:
        """Queue texts; the future resolves to (results in order, variant name)."""
        future: Future = Future()
        self._queue.put(_Job(texts, future, time.perf_counter()))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _take(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, size = [first], len(first.texts)
        deadline = time.perf_counter() + min(0.002, 0.25 * self._last_seconds)
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.perf_counter()
                if size >= self._last_size or wait <= 0:
                    break
                try:
                    job = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
            if job is None:  # close() after the work in hand
                self._queue.put(None)
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            texts = [t for job in jobs for t in job.texts]
            started = time.perf_counter()
            try:
                results, variant = self.run(texts)
                self._last_size, self._last_seconds = len(texts), time.perf_counter() - started
            except BaseException as exc:  # every waiting client hears of the failure; the worker lives on
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            if self.observe:
                self.observe(self.name, len(texts), time.perf_counter() - started)
            at = 0
            for job in jobs:
                job.future.set_result((results[at:at + len(job.texts)], variant))
                at += len(job.texts)
