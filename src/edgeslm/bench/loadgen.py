"""The one place that talks to MLPerf LoadGen (`mlperf_loadgen`): builds its TestSettings from a plain
dict (so the JSON can record exactly what was set), runs one test of one SUT over one QSL, and hands
SUTs a `Completer` for their answers. LoadGen is a process-wide singleton: one test at a time."""

from __future__ import annotations

import array
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from edgeslm.bench.logs import ACCURACY, DETAIL, SUMMARY
from edgeslm.errors import EdgeslmError

SCENARIO_NAMES = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline",
                  "server": "Server"}
MODE_NAMES = {"accuracy": "AccuracyOnly", "performance": "PerformanceOnly"}


def import_loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError:
        raise EdgeslmError("edgeslm bench runs MLPerf LoadGen: pip install 'edgeslm[device]' "
                           "(or mlcommons-loadgen)") from None
    return mlperf_loadgen


class Sut(Protocol):
    """A system under test as the harness sees it. `issue` must not block in the server scenario
    (LoadGen issues on its own schedule); `computed` counts samples the model really ran, for the
    closed division's no-caching check."""

    name: str
    computed: int

    def call(self, items: Sequence[Any]) -> None: ...  # run the model now (warm-up, LoadGen's hints)
    def issue(self, samples: list[Any], qsl: Sequence[Any], done: Completer) -> None: ...
    def close(self) -> None: ...


class Completer:
    """How a SUT answers LoadGen, from any thread. A failure completes the samples empty (so LoadGen
    can finish instead of waiting forever) and is raised once the test is over."""

    def __init__(self, lg: Any, bar: tqdm | None):
        self._lg, self._bar, self._lock = lg, bar, threading.Lock()
        self.samples = self.tokens = 0
        self.error: BaseException | None = None

    def first_token(self, sample_id: int, payload: bytes) -> None:
        data = array.array("B", payload)
        self._lg.FirstTokenComplete([self._lg.QuerySampleResponse(sample_id, data.buffer_info()[0], len(data))])

    def complete(self, answers: list[tuple[int, bytes, int | None]]) -> None:
        """(sample id, response bytes, tokens or None) for each finished sample. The buffers live
        until LoadGen has copied them: QuerySamplesComplete copies before it returns."""
        buffers = [array.array("B", payload) for _, payload, _ in answers]
        responses = []
        tokens = 0
        for (sample_id, _, n), data in zip(answers, buffers, strict=True):
            address = data.buffer_info()[0] if len(data) else 0
            if n is None:
                responses.append(self._lg.QuerySampleResponse(sample_id, address, len(data)))
            else:
                responses.append(self._lg.QuerySampleResponse(sample_id, address, len(data), n))
                tokens += n
        self._lg.QuerySamplesComplete(responses)
        with self._lock:
            self.samples += len(answers)
            self.tokens += tokens
            if self._bar is not None:
                self._bar.update(len(answers))

    def fail(self, sample_ids: list[int], exc: BaseException) -> None:
        with self._lock:
            self.error = self.error or exc
        self.complete([(i, b"", None) for i in sample_ids])


def build_settings(lg: Any, values: dict[str, Any]) -> Any:
    """A TestSettings with `values` set over LoadGen's own defaults (scenario and mode by name)."""
    ts = lg.TestSettings()
    for key, value in values.items():
        if key == "scenario":
            value = getattr(lg.TestScenario, value)
        elif key == "mode":
            value = getattr(lg.TestMode, value)
        if not hasattr(ts, key):
            raise EdgeslmError(f"this mlperf_loadgen has no TestSettings.{key}")
        setattr(ts, key, value)
    return ts


def run_test(sut: Sut, qsl: Sequence[Any], values: dict[str, Any], folder: Path, progress: bool = False) -> dict[str, Any]:
    """One LoadGen test: `sut` answers queries over the samples of `qsl`; logs go to `folder`."""
    lg = import_loadgen()
    settings = build_settings(lg, values)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SUMMARY, DETAIL, ACCURACY, "mlperf_log_trace.json"):  # no stale log read as this run's
        (folder / name).unlink(missing_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(folder)
    log.log_output.copy_summary_to_stdout = False  # stdout is the JSON's (--json)
    log.enable_trace = False
    bar = tqdm(desc=f"{sut.name} {values.get('mode', '')}", unit="sample", leave=False) if progress else None
    done = Completer(lg, bar)

    def issue(samples: list[Any]) -> None:
        # Called from LoadGen's C++ thread: an exception escaping here would end the process.
        if done.error is not None:  # fail fast: answer the rest empty, LoadGen finishes quickly
            done.fail([s.id for s in samples], done.error)
            return
        try:
            sut.issue(list(samples), qsl, done)
        except BaseException as exc:  # noqa: BLE001 - raised after the test, see Completer
            done.fail([s.id for s in samples], exc)

    handle = lg.ConstructSUT(issue, lambda: None)
    library = lg.ConstructQSL(len(qsl), len(qsl), lambda _: None, lambda _: None)  # all in memory already
    started = time.perf_counter()
    try:
        # An audit.config in the working directory would silently change the test (LoadGen's
        # compliance hook): point it at a path in our folder that never exists.
        lg.StartTestWithLogSettings(handle, library, settings, log, str(folder / "no-audit.config"))
    finally:
        lg.DestroyQSL(library)
        lg.DestroySUT(handle)
        if bar is not None:
            bar.close()
    if done.error is not None:
        raise EdgeslmError(f"{sut.name} failed under LoadGen: {done.error}") from done.error
    return {"samples": done.samples, "tokens": done.tokens, "wall_s": time.perf_counter() - started}
