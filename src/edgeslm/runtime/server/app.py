"""The routes. A request reads top to bottom: validate → admit (governor) → batch or stream → engine.
A route serves the models whose engine has its capability (engines/registry.py), whatever their family.

/v1/classify          engines that can "classify" (encoders; `text`/`texts`) or "classify-series" (time series;
                      `series`), batched across concurrent clients
/v1/chat/completions  engines that can "chat" (decoders), OpenAI-compatible, streaming as server-sent events
/v1/stream            series models: a sensor's new readings ({"sensor", "values"}) into its sliding window
                      (runtime/streams.py); the windows that filled are classified, batched like /v1/classify
/v1/sensors           each series model's sensors: how many, and the most recently heard with their fill
/v1/assist            the tiered assistant (serve --home): Home Assistant intent JSON, the tier that answered
/v1/models            every registered model and whether it is resident
/healthz, /metrics    liveness and Prometheus metrics
/openapi.json         the OpenAPI 3.1 description of the routes above

`App.asgi()` assembles them on Starlette, behind two ASGI layers: metrics by route and status
(outermost, so refusals count too), then the body limits (limits.py). uvicorn serves the result
(serve.py); its protocol enforces the header limits (protocol.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeslm.runtime.energy import cpu_seconds, joules
from edgeslm.runtime.governor import Governor, OverBudget, Overloaded
from edgeslm.runtime.server import schemas
from edgeslm.runtime.server.batcher import Batcher
from edgeslm.runtime.server.errors import HttpError, parse_json
from edgeslm.runtime.server.limits import BodyLimits, Limits
from edgeslm.runtime.server.metrics import CONTENT_TYPE, LiveGauge, Metrics
from edgeslm.runtime.server.openapi import openapi
from edgeslm.runtime.streams import StreamError, StreamSettings, StreamStore
from edgeslm.runtime.tiers.resident import EVENTS

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # encoder | decoder: shown in /v1/models, never routed on
    task: str
    capabilities: frozenset[str]  # what its engine can do ("classify", "chat"): requests route on this
    labels: tuple[str, ...] = ()


class App:
    def __init__(self, governor: Governor, models: list[ModelEntry], max_batch: int, max_tokens_limit: int = 2048,
                 stream_settings: StreamSettings | None = None):
        self.governor, self.max_tokens_limit = governor, max_tokens_limit
        self.stream_settings = stream_settings or StreamSettings()
        self.streams: dict[str, StreamStore] = {}  # series model -> its sensors' windows, made at its first push
        self.models = {m.name: m for m in models}
        self.started_wall, self.started_cpu = time.monotonic(), cpu_seconds()
        self.inferences = 0
        self._lock = threading.Lock()
        self._metrics()
        self.batchers = {m.name: Batcher(m.name, self._classify_batch(m.name), max_batch, self._observe_batch)
                         for m in models if m.capabilities & {"classify", "classify-series"}}
        # llama.cpp serves one sequence at a time (the engine holds a lock); two threads let the next
        # request wait in the engine, not in the event loop.
        self.generators = ThreadPoolExecutor(max_workers=2, thread_name_prefix="generate")
        self.assistant: Any = None  # runtime/tiers/router.Assistant, when serve has a home
        self.assisting = ThreadPoolExecutor(max_workers=2, thread_name_prefix="assist")

    def close(self) -> None:
        # a command being answered finishes (milliseconds; a generative answer its few tokens), then what the
        # assistant learned is committed to its file
        self.assisting.shutdown(wait=True, cancel_futures=True)
        if self.assistant is not None:
            self.assistant.close()
        for b in self.batchers.values():
            b.close()
        self.generators.shutdown(wait=False, cancel_futures=True)

    # -- routing -----------------------------------------------------------------------------------
    def asgi(self, limits: Limits | None = None) -> Any:
        """The ASGI application uvicorn serves: every route of ROUTES, plus the JSON 404 and 405."""
        limits = limits or Limits()
        routes = [Route(path, self._endpoint(handler), methods=[method]) for path, (method, handler) in ROUTES.items()]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._not_routed})
        app.router.redirect_slashes = False  # the routes are exact, as OpenAI's are: /v1/classify/ is a 404
        return _Observed(BodyLimits(app, limits), self)

    def _endpoint(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Any:
            try:
                return await handler(self, request)
            except HttpError as err:
                return error_response(err)
            except Overloaded as exc:
                return error_response(HttpError(503, str(exc), "overloaded", {"Retry-After": str(exc.retry_after_s)}))
            except OverBudget as exc:
                return error_response(HttpError(503, str(exc), "over_memory_budget", {"Retry-After": "5"}))
            except Exception:  # a bug or a broken bundle, not the client's fault: answered here so it is counted
                log.exception("%s %s failed", request.method, request.url.path)
                self.server_errors.inc()
                return error_response(HttpError(500, "internal error; see the server log", "server_error"))
        return endpoint

    async def _not_routed(self, request: Request, exc: Exception) -> Response:
        path, method = request.url.path[:100], request.method[:10]
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            allowed = ", ".join(sorted((exc.headers or {}).get("Allow", "").split(", ")))
            return error_response(HttpError(405, f"{path} takes {allowed}, not {method}", headers={"Allow": allowed}))
        return error_response(HttpError(404, f"no route {path}; try {', '.join(ROUTES)}", "not_found"))

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "uptime_s": round(time.monotonic() - self.started_wall, 1),
                              "models": sorted(self.models)})

    async def list_models(self, request: Request) -> Response:
        resident = {r["name"] for r in self.governor.stats()["resident"]}
        return json_response({"object": "list", "data": [
            {"id": m.name, "object": "model", "owned_by": "edgeslm", "family": m.family, "task": m.task,
             "resident": m.name in resident, **({"labels": list(m.labels)} if m.labels else {})}
            for m in self.models.values()]})

    async def metrics_route(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi_route(self, request: Request) -> Response:
        return json_response(openapi(self.models.values(), self.max_tokens_limit, self.stream_settings))

    # -- classify ----------------------------------------------------------------------------------
    async def classify(self, request: Request) -> Response:
        parsed = schemas.parse_classify(parse_json(await request.body()))
        series = parsed.series is not None
        model = self._pick(parsed.model, "classify-series" if series else "classify", "/v1/classify")
        with self.governor.admit():
            try:
                results, served_by = await asyncio.wrap_future(
                    self.batchers[model].submit([parsed.series] if series else parsed.texts))
            except ValueError as exc:  # a series engine refuses a length or channel count not its own
                if not series:
                    raise
                raise HttpError(400, str(exc)) from None
        body: dict[str, Any] = {"model": model, "served_by": served_by}
        body.update({"label": results[0]["label"], "score": results[0]["score"]} if parsed.single
                    else {"results": results})
        return json_response(body)

    # -- stream ----------------------------------------------------------------------------------------
    async def stream(self, request: Request) -> Response:
        parsed = schemas.parse_stream(parse_json(await request.body()))
        model = self._pick(parsed.model, "classify-series", "/v1/stream")
        with self.governor.admit():
            store = self.streams.get(model) or await self._stream_store(model)
            try:  # validated whole, then applied: a refused push leaves every window as it was
                windows = store.push(parsed.sensor, parsed.values)
            except StreamError as exc:
                raise HttpError(exc.status, str(exc), "not_found" if exc.status == 404 else "invalid_request_error") \
                    from None
            results, served_by = ([], model) if not windows else await asyncio.wrap_future(
                self.batchers[model].submit([w.values for w in windows]))
        return json_response({"model": model, "served_by": served_by, "sensor": parsed.sensor,
                              "pending": store.pending(parsed.sensor),
                              "windows": [{"end": w.end, **r} for w, r in zip(windows, results, strict=True)]})

    async def _stream_store(self, model: str) -> StreamStore:
        """The model's store, shaped by its engine (length, channels): loaded off the event loop."""
        def shape() -> tuple[int, int]:
            with self.governor.acquire(model) as engine:
                return engine.length, engine.channels

        length, channels = await asyncio.get_running_loop().run_in_executor(None, shape)
        return self.streams.setdefault(model, self.stream_settings.store(length, channels))

    async def list_sensors(self, request: Request) -> Response:
        """Each series model that has heard from a sensor: its window settings, its sensor count and bytes,
        and the `limit` most recently heard sensors (schemas.MAX_SENSORS_LISTED at most)."""
        limit, models = schemas.parse_sensors_limit(request.query_params.get("limit")), []
        for name, store in sorted(self.streams.items()):
            listed = store.sensors(limit)  # forgets the expired first, so the count below is current
            models.append({"model": name, "length": store.length, "channels": store.channels, "hop": store.hop,
                           "max_sensors": store.max_sensors, "ttl_s": store.ttl_s, "count": len(store),
                           "forgotten": store.forgotten, "bytes": store.nbytes(), "sensors": listed,
                           "truncated": len(store) > len(listed)})
        return json_response({"models": models})

    def _classify_batch(self, name: str):
        def run(texts: list[Any]) -> tuple[list[dict[str, Any]], str]:  # texts, or series arrays
            with self.governor.acquire(name) as engine:
                return engine.predict(texts), engine.name
        return run

    def _observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.inference.labels(model).observe(seconds)
        with self._lock:
            self.inferences += size

    # -- assist ----------------------------------------------------------------------------------------
    async def assist(self, request: Request) -> Response:
        from edgeslm.runtime.tiers.router import AssistError

        if self.assistant is None:
            raise HttpError(404, "no home is configured here: start edgeslm serve with --home HOME.yaml", "not_found")
        parsed = schemas.parse_assist(parse_json(await request.body()))
        with self.governor.admit():
            loop = asyncio.get_running_loop()  # the tiers block (hassil, ONNX Runtime): off the event loop
            try:
                answer = await loop.run_in_executor(self.assisting, self.assistant.ask, parsed.text, parsed.context)
            except AssistError as exc:
                raise HttpError(400, str(exc)) from None
        self.metrics.assist.labels(answer.tier).inc()
        return json_response(answer.to_dict())

    # -- chat --------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        parsed = schemas.parse_chat(parse_json(await request.body()), self.max_tokens_limit)
        model = self._pick(parsed.model, "chat", "/v1/chat/completions")
        admission = self.governor.admit()
        admission.__enter__()  # held until the answer is complete or the client leaves
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                admission.__exit__(None, None, None)

        try:
            events, cancel = self._generate(model, parsed)
            first = await events.__anext__()  # a bad grammar or schema fails here: still a clean 400
        except BaseException:
            release()
            raise
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not parsed.stream:
            text, final = [], first
            try:
                while "finish_reason" not in final:
                    text.append(final["text"])
                    final = await events.__anext__()
            finally:
                release()
            return json_response({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                             "finish_reason": final["finish_reason"]}],
                "usage": _usage(final), "timings": _timings(final)})

        async def sse() -> AsyncIterator[bytes]:
            def chunk(delta: dict[str, Any], finish: str | None = None, extra: dict | None = None) -> bytes:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
                return b"data: " + json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n\n"

            yield chunk({"role": "assistant", "content": ""})
            event = first
            try:
                while "finish_reason" not in event:
                    yield chunk({"content": event["text"]})
                    event = await events.__anext__()
            except Exception as exc:
                # The 200 and part of the answer are already sent: the failure can only be told in the
                # stream. An OpenAI-style error event ends it (clients raise on it) and the stream closes
                # normally, so the connection stays usable and the client is not left waiting.
                yield self._stream_error(exc, model)
                return
            yield chunk({}, event["finish_reason"], {"usage": _usage(event), "timings": _timings(event)})
            yield b"data: [DONE]\n\n"

        def closed() -> None:
            cancel.set()
            release()

        return EventStream(sse(), on_close=closed, on_error=self.server_errors.inc)

    def _stream_error(self, exc: Exception, model: str) -> bytes:
        self.server_errors.inc()
        if isinstance(exc, HttpError) and exc.status < 500:
            log.warning("chat stream for %s ended with an error: %s", model, exc.message)
            err = exc
        else:
            log.error("chat stream for %s failed mid-way", model, exc_info=exc)
            err = HttpError(500, "generation failed mid-stream; see the server log", "server_error")
        body = {"error": {"message": err.message, "type": err.kind, "code": err.status}}
        return b"data: " + json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n\n"

    def _generate(self, model: str, req: schemas.ChatRequest) -> tuple[AsyncIterator[dict[str, Any]], threading.Event]:
        """Run the engine's blocking generator on a worker thread and hand its events to the loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def work() -> None:
            final = None
            try:
                with self.governor.acquire(model) as engine:
                    # the engine's sampling arguments are SamplingConfig's fields, checked there once more
                    for event in engine.chat(req.messages, **dataclasses.asdict(req.sampling)):
                        if cancel.is_set():  # the client left: stop spending CPU on it
                            break
                        event = event.to_dict()
                        if "finish_reason" in event:
                            final = event
                        else:
                            loop.call_soon_threadsafe(queue.put_nowait, ("event", event))
                # The final event goes out only now that the engine is released: a client that sends its
                # next request the moment its answer ends must find the model free (or evictable).
                if final is not None:
                    self.tokens.labels(model).inc(final["completion_tokens"])
                    with self._lock:
                        self.inferences += 1
                    loop.call_soon_threadsafe(queue.put_nowait, ("event", final))
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        self.generators.submit(work)

        async def events() -> AsyncIterator[dict[str, Any]]:
            while True:
                kind, item = await queue.get()
                if kind == "error":
                    if isinstance(item, ValueError):
                        raise HttpError(400, str(item))
                    raise item
                if kind == "end":
                    raise HttpError(500, "the generator ended without a final event", "server_error")
                yield item

        return events(), cancel

    def _pick(self, name: str | None, capability: str, route: str) -> str:
        if name is None:
            candidates = [m.name for m in self.models.values() if capability in m.capabilities]
            if len(candidates) != 1:
                raise HttpError(400, f"name the model: {route} serves {', '.join(sorted(candidates)) or 'none here'}")
            return candidates[0]
        model = self.models.get(name)
        if model is None:
            raise HttpError(404, f"model {name[:100]!r} is not served here; GET /v1/models lists them", "not_found")
        if capability not in model.capabilities:
            raise HttpError(400, f"{name} cannot {capability} (it can {', '.join(sorted(model.capabilities))}); "
                                 f"{route} needs a model that can")
        return name

    # -- metrics -----------------------------------------------------------------------------------
    def _metrics(self) -> None:
        g = self.governor
        self.metrics = Metrics([
            LiveGauge("edgeslm_queue_depth", "Requests admitted and not yet answered",
                      lambda: [((), g.stats()["admitted"])]),
            LiveGauge("edgeslm_process_resident_memory_bytes", "Resident set size of this process",
                      lambda: [((), _rss_bytes())]),
            LiveGauge("edgeslm_model_resident_bytes", "Estimated bytes of each resident model",
                      lambda: [((r["name"],), r["bytes"]) for r in g.stats()["resident"]], ("model",)),
            LiveGauge("edgeslm_memory_budget_bytes", "The profile's budget for resident models",
                      lambda: [((), g.stats()["memory"]["budget_bytes"])]),
            LiveGauge("edgeslm_governor_events", "Governor decisions since start (load, evict, switch, reject, ...)",
                      lambda: sorted(((k,), v) for k, v in g.stats()["counters"].items()), ("kind",)),
            LiveGauge("edgeslm_energy_joules", "Estimated energy since start: the profile's power model × CPU time",
                      lambda: [((), self.energy_joules())]),
            LiveGauge("edgeslm_energy_joules_per_inference", "Estimated joules per text classified or completion",
                      lambda: [((), self.energy_joules() / max(1, self.inferences))]),
            LiveGauge("edgeslm_stream_sensors", "Sensors a series model holds a window for (/v1/stream)",
                      self._sensor_counts, ("model",)),
            LiveGauge("edgeslm_stream_window_bytes", "Bytes of the sensors' window buffers",
                      lambda: [((m,), s.nbytes()) for m, s in sorted(self.streams.items())], ("model",)),
            LiveGauge("edgeslm_assist_tier_loaded", "1 while a tier kept by serve --idle-release holds its model, "
                      "0 while released", lambda: [((r.name,), float(r.loaded)) for r in self._residents()], ("tier",)),
            LiveGauge("edgeslm_assist_residency_events", "A kept tier's loads, cold starts, pre-warms (used, wasted) "
                      "and releases since start", lambda: [((r.name, kind), r.counts.get(kind, 0))
                                                           for r in self._residents() for kind in EVENTS],
                      ("tier", "kind")),
        ])
        m = self.metrics
        self.requests, self.server_errors, self.latency = m.requests, m.server_errors, m.latency
        self.inference, self.batch_size, self.tokens = m.inference, m.batch_size, m.tokens

    def _residents(self) -> list[Any]:
        # read at registration too (prometheus_client describes a collector by collecting it), before
        # the App has its assistant
        return list(getattr(getattr(self, "assistant", None), "residents", ()))

    def _sensor_counts(self) -> list[tuple[tuple[str], int]]:
        counts = []
        for name, store in sorted(self.streams.items()):
            store.expire()  # a scrape reports the sensors still held, not those past their ttl
            counts.append(((name,), len(store)))
        return counts

    def energy_joules(self) -> float:
        return joules(cpu_seconds() - self.started_cpu, time.monotonic() - self.started_wall, self.governor.profile)


ROUTES = {
    "/v1/classify": ("POST", App.classify),
    "/v1/stream": ("POST", App.stream),
    "/v1/sensors": ("GET", App.list_sensors),
    "/v1/chat/completions": ("POST", App.chat),
    "/v1/assist": ("POST", App.assist),
    "/v1/models": ("GET", App.list_models),
    "/healthz": ("GET", App.healthz),
    "/metrics": ("GET", App.metrics_route),
    "/openapi.json": ("GET", App.openapi_route),
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False).encode("utf-8"), status, headers, "application/json")


def error_response(err: HttpError) -> Response:
    return Response(err.body(), err.status, err.headers, "application/json")


class _Observed:
    """Counts every answer by route and status, and times whole (non-streamed) answers."""

    def __init__(self, app: Any, owner: App):
        self.app, self.owner = app, owner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in ROUTES else "other"
        streamed = False

        async def observed(message: dict[str, Any]) -> None:
            nonlocal streamed
            if message["type"] == "http.response.start":
                self.owner.requests.labels(route, str(message["status"])).inc()
                streamed = (b"content-type", b"text/event-stream") in message.get("headers", [])
            elif message["type"] == "http.response.body" and not message.get("more_body") and not streamed:
                self.owner.latency.labels(route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, observed)


class ServedClassifier:
    """A served classifier as the encoder tier sees an engine: its labels and its logits, through the
    governor, which loads it within the memory budget (and swaps in a cheaper variant when told)."""

    def __init__(self, governor: Any, entry: ModelEntry):
        self.governor, self.name, self.labels = governor, entry.name, list(entry.labels)

    def logits(self, texts: list[str]) -> Any:
        with self.governor.acquire(self.name) as engine:
            return engine.logits(texts)

    @property
    def embeds(self) -> bool:
        """Whether the engine also gives embeddings for the semantic cache (an early-exit one does)."""
        with self.governor.acquire(self.name) as engine:
            return bool(getattr(engine, "embeds", False))

    def run(self, texts: list[str], embed: bool = False) -> Any:
        with self.governor.acquire(self.name) as engine:
            return engine.run(texts, embed=embed)

    def first(self, texts: list[str], embed: bool = False, spans: bool = False) -> Any:
        """An early-exit engine's first segment alone (the semantic cache's probe); see go_on."""
        with self.governor.acquire(self.name) as engine:
            return engine.first(texts, embed=embed, spans=spans)

    def go_on(self, start: Any) -> Any:
        """The rest of the pass `first` began; the engine is acquired again in between, so one the governor
        swapped in without early exits since answers from the texts alone."""
        with self.governor.acquire(self.name) as engine:
            if hasattr(engine, "go_on"):
                return engine.go_on(start)
            return SimpleNamespace(logits=engine.logits(list(start.texts)))

    @property
    def tagger(self) -> Any:
        """The early-exit engine's slot tagger, or None."""
        with self.governor.acquire(self.name) as engine:
            return getattr(engine, "tagger", None)

    @property
    def ngrams(self) -> Any:
        """The bundle's n-gram head (engines/ngrams.py), or None: it runs outside the governor's engines,
        in numpy, so it is taken once."""
        with self.governor.acquire(self.name) as engine:
            return getattr(engine, "ngrams", None)


class EventStream:
    """Server-sent events as an ASGI response. When the client leaves, generation stops: uvicorn drops
    writes to a closed connection silently, so a watcher waits for `http.disconnect` and the stream
    ends at its next event. `on_close` runs however the stream ends."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Any, on_error: Any):
        self.events, self.on_close, self.on_error = events, on_close, on_error

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(gone())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
            async for piece in self.events:
                if watcher.done():
                    return
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:
            # The 200 is gone, so no 500 can be sent; routes end a failing stream with an error event of
            # their own (App.chat does). A stream that raised instead is counted, and uvicorn closes the
            # connection without the last chunk, so the client sees the answer was cut short.
            log.exception("the response stream failed")
            self.on_error()
            raise
        finally:
            watcher.cancel()
            await self.events.aclose()  # type: ignore[attr-defined]
            self.on_close()


def _usage(final: dict[str, Any]) -> dict[str, int]:
    p, c = int(final.get("prompt_tokens", 0)), int(final.get("completion_tokens", 0))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _timings(final: dict[str, Any]) -> dict[str, float]:
    return {k: final[k] for k in ("time_to_first_token_s", "decode_tokens_per_s", "cached_tokens") if k in final}


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
