"""The routes. A request reads top to bottom: validate → admit (governor) → batch or stream → engine.
A route serves the models whose engine has its capability (engines/registry.py), whatever their family.

/v1/classify          engines that can "classify" (encoders), batched across concurrent clients
/v1/chat/completions  engines that can "chat" (decoders), OpenAI-compatible, streaming as server-sent events
/v1/models            every registered model and whether it is resident
/healthz, /metrics    liveness and Prometheus metrics
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
from typing import Any

from edgeslm.runtime.energy import cpu_seconds, joules
from edgeslm.runtime.governor import Governor, OverBudget, Overloaded
from edgeslm.runtime.server import schemas
from edgeslm.runtime.server.batcher import Batcher
from edgeslm.runtime.server.http import HttpError, Request, Response
from edgeslm.runtime.server.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Counter, Gauge, Histogram, Registry

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # encoder | decoder: shown in /v1/models, never routed on
    task: str
    capabilities: frozenset[str]  # what its engine can do ("classify", "chat"): requests route on this
    labels: tuple[str, ...] = ()


class App:
    def __init__(self, governor: Governor, models: list[ModelEntry], max_batch: int, max_tokens_limit: int = 2048):
        self.governor, self.max_tokens_limit = governor, max_tokens_limit
        self.models = {m.name: m for m in models}
        self.started_wall, self.started_cpu = time.monotonic(), cpu_seconds()
        self.inferences = 0
        self._lock = threading.Lock()
        self._metrics()
        self.batchers = {m.name: Batcher(m.name, self._classify_batch(m.name), max_batch, self._observe_batch)
                         for m in models if "classify" in m.capabilities}
        # llama.cpp serves one sequence at a time (the engine holds a lock); two threads let the next
        # request wait in the engine, not in the event loop.
        self.generators = ThreadPoolExecutor(max_workers=2, thread_name_prefix="generate")

    def close(self) -> None:
        for b in self.batchers.values():
            b.close()
        self.generators.shutdown(wait=False, cancel_futures=True)

    # -- routing -----------------------------------------------------------------------------------
    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        route = request.path if request.path in ROUTES else "other"
        try:
            expected, handler = ROUTES.get(request.path, (None, None))
            if handler is None:
                raise HttpError(404, f"no route {request.path[:100]}; try /v1/classify, /v1/chat/completions, "
                                     "/v1/models, /healthz or /metrics", "not_found")
            if request.method != expected:
                raise HttpError(405, f"{request.path} takes {expected}, not {request.method[:10]}",
                                headers={"Allow": expected})
            response = await handler(self, request)
        except HttpError as err:
            response = Response.error(err)
        except Overloaded as exc:
            response = Response.error(HttpError(503, str(exc), "overloaded", {"Retry-After": str(exc.retry_after_s)}))
        except OverBudget as exc:
            response = Response.error(HttpError(503, str(exc), "over_memory_budget", {"Retry-After": "5"}))
        except Exception:  # a bug or a broken bundle, not the client's fault: answered here so it is counted
            log.exception("%s %s failed", request.method, route)
            self.server_errors.inc()
            response = Response.error(HttpError(500, "internal error; see the server log", "server_error"))
        self.requests.inc(route, str(response.status))
        if response.stream is None:
            self.latency.observe(time.perf_counter() - started, route)
        return response

    async def healthz(self, request: Request) -> Response:
        return Response.json({"status": "ok", "uptime_s": round(time.monotonic() - self.started_wall, 1),
                              "models": sorted(self.models)})

    async def list_models(self, request: Request) -> Response:
        resident = {r["name"] for r in self.governor.stats()["resident"]}
        return Response.json({"object": "list", "data": [
            {"id": m.name, "object": "model", "owned_by": "edgeslm", "family": m.family, "task": m.task,
             "resident": m.name in resident, **({"labels": list(m.labels)} if m.labels else {})}
            for m in self.models.values()]})

    async def metrics_route(self, request: Request) -> Response:
        return Response(200, self.registry.render().encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8")

    # -- classify ----------------------------------------------------------------------------------
    async def classify(self, request: Request) -> Response:
        parsed = schemas.parse_classify(request.json())
        model = self._pick(parsed.model, "classify", "/v1/classify")
        with self.governor.admit():
            results, served_by = await asyncio.wrap_future(self.batchers[model].submit(parsed.texts))
        body: dict[str, Any] = {"model": model, "served_by": served_by}
        body.update({"label": results[0]["label"], "score": results[0]["score"]} if parsed.single
                    else {"results": results})
        return Response.json(body)

    def _classify_batch(self, name: str):
        def run(texts: list[str]) -> tuple[list[dict[str, Any]], str]:
            with self.governor.acquire(name) as engine:
                return engine.predict(texts), engine.name
        return run

    def _observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.observe(size, model)
        self.inference.observe(seconds, model)
        with self._lock:
            self.inferences += size

    # -- chat --------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        parsed = schemas.parse_chat(request.json(), self.max_tokens_limit)
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
            return Response.json({
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

        return Response(200, content_type="text/event-stream", stream=sse(), on_close=closed)

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
                    self.tokens.inc(model, amount=final["completion_tokens"])
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
        r = self.registry = Registry()
        self.requests = r.add(Counter("edgeslm_requests_total", "HTTP requests by route and status", ("route", "code")))
        self.server_errors = r.add(Counter("edgeslm_server_errors_total",
                                           "Requests the server failed: 500 answers, and streams cut short by an "
                                           "error event after their 200"))
        self.latency = r.add(Histogram("edgeslm_request_duration_seconds", "Request latency, whole answers",
                                       LATENCY_BUCKETS, ("route",)))
        self.inference = r.add(Histogram("edgeslm_inference_duration_seconds", "Engine time per batch",
                                         LATENCY_BUCKETS, ("model",)))
        self.batch_size = r.add(Histogram("edgeslm_batch_size", "Texts per engine call", BATCH_BUCKETS, ("model",)))
        self.tokens = r.add(Counter("edgeslm_generated_tokens_total", "Tokens generated", ("model",)))
        g = self.governor
        r.add(Gauge("edgeslm_queue_depth", "Requests admitted and not yet answered",
                    lambda: [((), g.stats()["admitted"])]))
        r.add(Gauge("edgeslm_process_resident_memory_bytes", "Resident set size of this process",
                    lambda: [((), _rss_bytes())]))
        r.add(Gauge("edgeslm_model_resident_bytes", "Estimated bytes of each resident model",
                    lambda: [((r["name"],), r["bytes"]) for r in g.stats()["resident"]], ("model",)))
        r.add(Gauge("edgeslm_memory_budget_bytes", "The profile's budget for resident models",
                    lambda: [((), g.stats()["memory"]["budget_bytes"])]))
        r.add(Gauge("edgeslm_governor_events", "Governor decisions since start (load, evict, switch, reject, ...)",
                    lambda: sorted(((k,), v) for k, v in g.stats()["counters"].items()), ("kind",)))
        r.add(Gauge("edgeslm_energy_joules", "Estimated energy since start: the profile's power model × CPU time",
                    lambda: [((), self.energy_joules())]))
        r.add(Gauge("edgeslm_energy_joules_per_inference", "Estimated joules per text classified or completion",
                    lambda: [((), self.energy_joules() / max(1, self.inferences))]))

    def energy_joules(self) -> float:
        return joules(cpu_seconds() - self.started_cpu, time.monotonic() - self.started_wall, self.governor.profile)


ROUTES = {
    "/v1/classify": ("POST", App.classify),
    "/v1/chat/completions": ("POST", App.chat),
    "/v1/models": ("GET", App.list_models),
    "/healthz": ("GET", App.healthz),
    "/metrics": ("GET", App.metrics_route),
}


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
