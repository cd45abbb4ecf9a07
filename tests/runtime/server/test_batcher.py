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


# -- classify: the inline path for in-process callers --------------------------------------------

class Recorder(Engine):
    """Also records the thread of every call and the most calls ever inside the engine at once."""

    def __init__(self, gate: bool = False, refuse: str | None = None, seconds: float = 0.0):
        super().__init__(gate, refuse)
        self.threads: list[str] = []
        self.inside = self.most_inside = 0
        self.seconds = seconds

    def __call__(self, texts: list[str]) -> tuple[list[dict], str]:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(self.seconds)
            return super().__call__(texts)
        finally:
            with self._lock:
                self.inside -= 1


def test_classify_runs_on_the_callers_thread_when_idle(make):
    seen: list[int] = []
    engine = Recorder()
    batcher = make(engine, max_batch=4, observe=lambda _m, n, _s: seen.append(n))
    for i in range(5):
        assert batcher.classify([f"t{i}", "x"]) == ([answer(f"t{i}"), answer("x")], "variant-a")
    assert engine.threads == [threading.current_thread().name] * 5  # no hand-off to the worker
    assert seen == [2] * 5  # inline calls are observed like batched ones
    texts = [f"long-{i}" for i in range(10)]
    assert batcher.classify(texts)[0] == [answer(t) for t in texts]
    assert engine.batches[-3:] == [texts[:4], texts[4:8], texts[8:]]  # max_batch holds: the worker splits it


def test_classify_queues_behind_a_busy_worker_in_submission_order(make):
    engine = Recorder(gate=True)
    batcher = make(engine, max_batch=8)
    first = engine.hold(batcher)
    before = batcher.submit(["before"])
    with ThreadPoolExecutor(1) as pool:
        inline = pool.submit(batcher.classify, ["classified"])
        time.sleep(0.05)  # it must be waiting in the queue, not running beside the gate's batch
        assert not inline.done() and len(engine.batches) == 1
        after = batcher.submit(["after"])
        engine.release.set()
        assert inline.result(WAIT_S) == ([answer("classified")], "variant-a")
    for future, text in ((first, "gate"), (before, "before"), (after, "after")):
        assert future.result(WAIT_S)[0] == [answer(text)]
    assert [t for b in engine.batches for t in b] == ["gate", "before", "classified", "after"]
    assert set(engine.threads) == {"batcher-m"}  # busy: every call ran on the worker


def test_work_submitted_during_an_inline_call_waits_for_it_and_batches(make):
    engine = Recorder(gate=True)
    batcher = make(engine, max_batch=8)
    with ThreadPoolExecutor(1) as pool:
        inline = pool.submit(batcher.classify, ["inline"])
        assert engine.started.wait(WAIT_S)  # running on the pool's thread, inside the engine
        queued = [batcher.submit([f"q{i}"]) for i in range(5)]
        time.sleep(0.05)
        assert len(engine.batches) == 1  # the worker waits for the engine, it does not run beside it
        engine.release.set()
        assert inline.result(WAIT_S)[0] == [answer("inline")]
    for i, f in enumerate(queued):
        assert f.result(WAIT_S)[0] == [answer(f"q{i}")]
    assert engine.batches == [["inline"], [f"q{i}" for i in range(5)]]  # what queued left together


def test_the_engine_runs_one_call_at_a_time_under_mixed_load(make):
    engine = Recorder(seconds=0.0005)
    batcher = make(engine, max_batch=4)
    rng = random.Random(2)

    def caller(c: int) -> None:
        for r in range(20):
            texts = [f"c{c}-r{r}-t{i}" for i in range(rng.randint(1, 6))]
            got = batcher.classify(texts) if (c + r) % 2 else batcher.submit(texts).result(WAIT_S)
            assert got[0] == [answer(t) for t in texts]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(caller, range(8)))
    assert engine.most_inside == 1
    assert max(len(b) for b in engine.batches) <= 4
    time.sleep(0.05)  # the worker counts its last batch done just after answering it
    for _ in range(2):  # the first goes through the worker, a lone batch: the sign the load is gone
        assert batcher.classify(["idle again"]) == ([answer("idle again")], "variant-a")
    assert engine.threads[-1] == threading.current_thread().name  # inline again


def test_classify_failures_reach_only_their_caller(make):
    engine = Recorder(refuse="bad")
    batcher = make(engine, max_batch=8)
    with pytest.raises(ValueError, match="cannot classify 'bad'"):
        batcher.classify(["bad"])
    assert batcher.classify(["good"])[0] == [answer("good")]  # the engine lock was given back
    short = make(lambda texts: ([answer(t) for t in texts[:-1]], "v"))
    with pytest.raises(RuntimeError, match="2 texts"):
        short.classify(["a", "b"])


def test_classify_after_close_is_refused(make):
    batcher = make(Recorder())
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.classify(["too late"])


def test_after_a_shared_batch_the_next_request_queues_once_so_returning_clients_batch(make):
    engine = Recorder(gate=True)
    batcher = make(engine, max_batch=8)
    engine.hold(batcher)
    futures = [batcher.submit([f"q{i}"]) for i in range(3)]
    engine.release.set()
    for f in futures:
        f.result(WAIT_S)
    time.sleep(0.05)  # the worker counts its batch done just after answering it
    assert engine.batches[-1] == ["q0", "q1", "q2"]
    me = threading.current_thread().name
    batcher.classify(["first back"])
    assert engine.threads[-1] == "batcher-m"  # concurrent clients were seen: it queues, a lone batch
    time.sleep(0.05)
    batcher.classify(["alone"])
    assert engine.threads[-1] == me  # a lone batch last: no concurrency, inline
