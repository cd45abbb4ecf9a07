"""The classify batcher on its own, with a plain function as the engine: what it promises callers.

Promises: every caller gets its own results in its own order; texts reach the engine in the order
they were submitted (FIFO), so a flood from one caller delays another by the flood's backlog, never
indefinitely; no engine call gets more than max_batch texts; a request the engine refuses fails
alone; a caller that gives up does not take the worker down; close() answers what was submitted and
refuses what comes after.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from edgeslm.runtime.server.batcher import Batcher

WAIT_S = 10  # a bound for "never hangs"; every wait below ends in milliseconds when the batcher works


def answer(text: str) -> dict:
    return {"label": text.upper(), "score": len(text) / 100}


class Engine:
    """A batch function that records every call. With `gate`, the first call blocks until released,
    so the test decides what is queued when the worker comes back for more."""

    def __init__(self, gate: bool = False, refuse: str | None = None):
        self.batches: list[list[str]] = []
        self.started, self.release = threading.Event(), threading.Event()
        self.gate, self.refuse = gate, refuse
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> tuple[list[dict], str]:
        with self._lock:
            self.batches.append(list(texts))
            first = len(self.batches) == 1
        if first and self.gate:
            self.started.set()
            assert self.release.wait(WAIT_S), "the test never released the gate"
        if self.refuse is not None and self.refuse in texts:
            raise ValueError(f"cannot classify {self.refuse!r}")
        return [answer(t) for t in texts], "variant-a"

    def hold(self, batcher: Batcher) -> Future:
        """Occupy the worker with a first batch; what is submitted next queues behind it."""
        future = batcher.submit(["gate"])
        assert self.started.wait(WAIT_S)
        return future


@pytest.fixture
def make():
    made: list[Batcher] = []

    def build(engine: Engine, max_batch: int = 4, observe=None) -> Batcher:
        batcher = Batcher("m", engine, max_batch, observe)
        made.append(batcher)
        return batcher

    yield build
    for b in made:
        b.close()


def test_each_caller_gets_its_own_results_in_order_across_batches(make):
    engine = Engine()
    batcher = make(engine, max_batch=4)
    rng = random.Random(0)

    def caller(c: int) -> list[tuple[list[str], tuple]]:
        out = []
        for r in range(15):
            texts = [f"c{c}-r{r}-t{i}" for i in range(rng.randint(1, 9))]  # many span several batches
            out.append((texts, batcher.submit(texts).result(WAIT_S)))
        return out

    with ThreadPoolExecutor(12) as pool:
        for exchanges in pool.map(caller, range(12)):
            for texts, (results, variant) in exchanges:
                assert results == [answer(t) for t in texts]
                assert variant == "variant-a"
    assert len(engine.batches) < 12 * 15 * 5  # concurrent callers did share engine calls


def test_no_engine_call_gets_more_than_max_batch_texts(make):
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=4)
    engine.hold(batcher)
    sizes = [3, 3, 1, 10, 2, 4]  # 3+3 would overflow 4; 10 alone is larger than max_batch
    jobs = [[f"j{j}-{i}" for i in range(n)] for j, n in enumerate(sizes)]
    futures = [batcher.submit(texts) for texts in jobs]
    engine.release.set()
    for texts, future in zip(jobs, futures, strict=True):
        assert future.result(WAIT_S)[0] == [answer(t) for t in texts]
    assert max(len(b) for b in engine.batches) <= 4, engine.batches
    assert [t for b in engine.batches[1:] for t in b] == [t for texts in jobs for t in texts]
    assert all(len(b) == 4 for b in engine.batches[1:-1])  # full batches while work was waiting


def test_texts_reach_the_engine_in_submission_order(make):
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=8)
    engine.hold(batcher)
    rng = random.Random(1)
    jobs = [[f"j{j}-{i}" for i in range(rng.randint(1, 12))] for j in range(40)]
    futures = [batcher.submit(texts) for texts in jobs]
    engine.release.set()
    for future in futures:
        future.result(WAIT_S)
    assert [t for b in engine.batches[1:] for t in b] == [t for texts in jobs for t in texts]


def test_a_flood_from_one_caller_delays_another_by_its_backlog_only(make):
    """FIFO is the promise: B waits for the texts queued before it and for nothing queued after."""
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=8)
    engine.hold(batcher)
    finished: list[str] = []
    lock = threading.Lock()

    def track(name: str, future: Future) -> Future:
        future.add_done_callback(lambda _f: (lock.acquire(), finished.append(name), lock.release()))
        return future

    before = [track(f"a{i}", batcher.submit([f"a{i}"] * 3)) for i in range(100)]  # 300 texts ahead of B
    b = track("b", batcher.submit(["b"]))
    after = [track(f"a{100 + i}", batcher.submit([f"a{100 + i}"] * 3)) for i in range(100)]
    engine.release.set()
    assert b.result(WAIT_S)[0] == [answer("b")]
    for f in before + after:
        f.result(WAIT_S)
    assert finished.index("b") == 100  # after all of the earlier flood, before any of the later one
    batch_of_b = next(i for i, batch in enumerate(engine.batches) if "b" in batch)
    assert batch_of_b <= 1 + -(-301 // 8)  # the gate's batch, then the backlog 8 texts at a time


def test_a_request_the_engine_refuses_fails_alone(make):
    engine = Engine(gate=True, refuse="bad")
    batcher = make(engine, max_batch=8)
    engine.hold(batcher)
    good1, bad, good2 = batcher.submit(["ok 1"]), batcher.submit(["x", "bad"]), batcher.submit(["ok 2", "ok 3"])
    engine.release.set()
    assert good1.result(WAIT_S)[0] == [answer("ok 1")]
    assert good2.result(WAIT_S)[0] == [answer("ok 2"), answer("ok 3")]
    with pytest.raises(ValueError, match="cannot classify 'bad'"):
        bad.result(WAIT_S)
    assert ["ok 1", "x", "bad", "ok 2", "ok 3"] in engine.batches  # they did share a call first
    assert batcher.submit(["later"]).result(WAIT_S)[0] == [answer("later")]


def test_an_engine_that_answers_too_few_results_fails_the_batch_loudly(make):
    batcher = make(lambda texts: ([answer(t) for t in texts[:-1]], "v"), max_batch=8)
    with pytest.raises(RuntimeError, match="2 texts"):
        batcher.submit(["a", "b"]).result(WAIT_S)


def test_a_caller_that_gives_up_does_not_take_the_worker_down(make):
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=8)
    engine.hold(batcher)
    gone = batcher.submit(["abandoned"])
    assert gone.cancel()  # what asyncio.wrap_future does when the awaiting request is cancelled
    kept = batcher.submit(["kept"])
    engine.release.set()
    assert kept.result(WAIT_S)[0] == [answer("kept")]
    assert batcher.submit(["next"]).result(WAIT_S)[0] == [answer("next")]
    assert not any("abandoned" in b for b in engine.batches)  # no engine time spent on it


def test_close_answers_what_was_submitted_and_refuses_what_comes_after(make):
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=4)
    first = engine.hold(batcher)
    queued = [batcher.submit([f"q{i}"] * 3) for i in range(5)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.05)  # close() is waiting for the work in hand
    engine.release.set()
    closer.join(WAIT_S)
    assert not closer.is_alive()
    assert first.result(WAIT_S)[0] == [answer("gate")]
    for i, f in enumerate(queued):
        assert f.result(WAIT_S)[0] == [answer(f"q{i}")] * 3
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["too late"])


def test_observe_sees_every_engine_call(make):
    seen: list[tuple[str, int]] = []
    engine = Engine(gate=True)
    batcher = make(engine, max_batch=4, observe=lambda model, n, seconds: seen.append((model, n)))
    engine.hold(batcher)
    futures = [batcher.submit(["x"] * 3) for _ in range(3)]
    engine.release.set()
    for f in futures:
        f.result(WAIT_S)
    assert seen == [("m", len(b)) for b in engine.batches]
