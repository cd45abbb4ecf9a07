"""Start the server: read the bundles, build the governor for the profile, warm what fits, listen."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.formats.reader import open_bundle
from edgeslm.formats.signing import load_trust, verify_policy
from edgeslm.runtime.engines.registry import LoadSettings, engine_kind, load_engine
from edgeslm.runtime.governor import Governor
from edgeslm.runtime.profiles import DeviceProfile, load_profile
from edgeslm.runtime.server.app import App, ModelEntry
from edgeslm.runtime.server.limits import Limits
from edgeslm.runtime.server.protocol import protocol_class
from edgeslm.runtime.streams import StreamSettings

log = logging.getLogger(__name__)

MAX_SENSOR_TTL_S = 30 * 86_400


@dataclass(frozen=True)
class ServeConfig(Config):
    bundles: list = field(default_factory=list)  # bundle folders
    profile: str = "this-machine"
    host: str = "127.0.0.1"
    port: int = 8080
    cheaper: list = field(default_factory=list)  # "MODEL:CHEAPER": serve CHEAPER when battery/heat say so
    max_body_bytes: int = 1 << 20
    threads: int | None = None  # every engine; default: a bundle's selection.threads (edgeslm select), else the profile's
    warm: bool = True  # load and run each bundle once before listening, within the memory budget
    home: str | None = None  # a home description: enables /v1/assist (the tiered assistant)
    tiers: list | None = None  # None: assemble.DEFAULT_TIERS, and generative where the policy orders it
    cache_db: str | None = None  # the exact cache's file, kept across restarts (default: in memory)
    policy: str | None = None  # the router's policy file (default: the calibrated one beside the first bundle)
    remote: str | None = None  # the remote tier's OpenAI-compatible endpoint (off by default)
    trust: str | None = None  # trusted public key(s), a .pub or a folder: serve only bundles and policies they signed
    stream_hop: int | None = None  # /v1/stream: readings between a sensor's windows (default and cap: the series length)
    max_sensors: int = 10_000  # /v1/stream: sensors a series model keeps windows for (2 kB each on FordA); a new one past it: 409
    sensor_ttl_s: float | None = None  # /v1/stream: forget a sensor silent this long (default: never)
    generative: str | None = None  # the generative tier's GGUF or llama.cpp bundle (default: the built-in SmolLM2)
    idle_release_s: float | None = None  # release the generative tier after this long idle; habits pre-warm it

    def validate(self) -> None:
        if not self.bundles:
            raise ConfigError("ServeConfig.bundles: give at least one bundle folder")
        if not 0 <= self.port <= 65535:
            raise ConfigError("ServeConfig.port must be in 0..65535 (0 picks a free port)")
        if not 1024 <= self.max_body_bytes <= 64 << 20:
            raise ConfigError("ServeConfig.max_body_bytes must be between 1 KiB and 64 MiB")
        if self.stream_hop is not None and self.stream_hop < 1:
            raise ConfigError("ServeConfig.stream_hop must be >= 1")
        if not 1 <= self.max_sensors <= 10_000_000:
            raise ConfigError("ServeConfig.max_sensors must be between 1 and 10,000,000")
        if self.sensor_ttl_s is not None and not 0 < self.sensor_ttl_s <= MAX_SENSOR_TTL_S:
            raise ConfigError(f"ServeConfig.sensor_ttl_s must be more than 0 and at most {MAX_SENSOR_TTL_S:,} "
                              "seconds (30 days); leave it out to never forget a sensor")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise ConfigError("ServeConfig.threads must be between 1 and 256")
        if self.idle_release_s is not None and not self.idle_release_s > 0:
            raise ConfigError("ServeConfig.idle_release_s must be a number of seconds > 0")
        from edgeslm.runtime.tiers.assemble import check_tiers, generative_model

        if self.tiers is not None:
            check_tiers(list(self.tiers), "ServeConfig.tiers")
        if self.generative is not None or "generative" in (self.tiers or ()):
            generative_model(self.generative)  # a missing model fails before any bundle loads
        for pair in self.cheaper:
            if not isinstance(pair, str) or pair.count(":") != 1 or "" in pair.split(":"):
                raise ConfigError(f"ServeConfig.cheaper: {pair!r} is not MODEL:CHEAPER")


def load_bundle(path: Path, threads: int, spin: bool, trust: Any = None) -> Any:
    """The governor's loader: the engine the bundle's manifest names (verified before use), named after
    its manifest, so that answers say which variant served them."""
    return load_engine(open_bundle(Path(path), trust=trust), LoadSettings(threads=threads, spin=spin))


def build_app(config: ServeConfig) -> App:
    profile: DeviceProfile = load_profile(config.profile)
    if config.threads is not None:  # the governor hands every engine the profile's thread budget
        if config.threads > profile.cores:
            raise ConfigError(f"ServeConfig.threads: {config.threads} is more than the {profile.cores} cores of "
                              f"profile {profile.name}; give at most {profile.cores}")
        profile = dataclasses.replace(profile, threads=config.threads)
    trust = load_trust(Path(config.trust)) if config.trust else None  # checked again at every load: files can change
    entries, paths, threads = [], {}, {}
    for folder in config.bundles:
        manifest = open_bundle(Path(folder), trust=trust).manifest
        if manifest.name in paths:
            raise ConfigError(f"two bundles are named {manifest.name!r}: {paths[manifest.name]} and {folder}")
        paths[manifest.name] = Path(folder)
        threads[manifest.name] = None if config.threads is not None else selected_threads(manifest, profile)
        capabilities = engine_kind(manifest.engine, folder).capabilities  # an unknown engine fails here, not later
        entries.append(ModelEntry(manifest.name, manifest.family, manifest.task, capabilities, tuple(manifest.labels)))
    # Spinning ORT workers cut ~10% off a lone model's latency but steal the cores from any other model
    # resident beside it (measured on a 2-core machine), so spin only when one model is served.
    # With a home, the assistant's other tiers (hassil) work between encoder calls: no spinning then.
    spin = len(entries) == 1 and config.home is None
    governor = Governor(profile, lambda path, n: load_bundle(path, n, spin, trust))
    cheaper = dict(pair.split(":") for pair in config.cheaper)
    for name in cheaper.keys() | cheaper.values():
        if name not in paths:
            raise ConfigError(f"--cheaper names {name!r}, which is not among the bundles served ({', '.join(paths)})")
    # A cheaper variant must be registered before the model that falls back to it.
    for entry in sorted(entries, key=lambda e: e.name not in cheaper.values()):
        governor.register(entry.name, paths[entry.name], cheaper=cheaper.get(entry.name), threads=threads[entry.name])
    app = App(governor, entries, max_batch=profile.max_batch,
              stream_settings=StreamSettings(config.stream_hop, config.max_sensors, config.sensor_ttl_s))
    if config.home is not None:
        app.assistant = build_assistant(app, config, profile)
    if config.warm:
        warm(app, entries)
    return app


def selected_threads(manifest: Any, profile: DeviceProfile) -> int | None:
    """The threads `edgeslm select` chose for this bundle (its manifest's selection block), at most the profile's
    budget; None without a selection: the profile's. (--threads, when given, overrides both.)"""
    chosen = manifest.selection.get("threads") if manifest.selection else None
    if chosen is None:
        return None
    if chosen > profile.threads:
        log.warning("%s: select chose %d threads (for profile %s), more than profile %s's %d; using %d", manifest.name,
                    chosen, manifest.selection["profile"], profile.name, profile.threads, profile.threads)
        return profile.threads
    return chosen


def build_assistant(app: App, config: ServeConfig, profile: DeviceProfile) -> Any:
    """The tiers over the home: the encoder tier uses the first served classifier."""
    from edgeslm.runtime.server.app import ServedClassifier
    from edgeslm.runtime.tiers.assemble import assemble, default_policy, tiers_for
    from edgeslm.runtime.tiers.home import load_home
    from edgeslm.runtime.tiers.policy import load_policy

    if config.trust:  # a policy steers answers as a model does: it too needs a trusted signature
        from edgeslm.runtime.tiers.policy import POLICY_FILE

        used = Path(config.policy) if config.policy else Path(config.bundles[0]).parent / POLICY_FILE
        if config.policy or used.is_file():  # (the built-in default ships inside edgeslm itself)
            verify_policy(used, load_trust(Path(config.trust)))
    policy = load_policy(Path(config.policy)) if config.policy else default_policy(Path(config.bundles[0]))[0]
    tiers = tiers_for(config.tiers, policy, config.remote)
    if "encoder" in tiers and not app.batchers:
        raise ConfigError("--tiers encoder needs a served classifier bundle (the intent encoder)")
    classifiers = [m for m in app.models.values() if "classify" in m.capabilities]
    engine = ServedClassifier(app.governor, classifiers[0]) if classifiers else None
    residency = None
    if config.idle_release_s is not None:
        from edgeslm.runtime.tiers.resident import Residency

        residency = Residency(idle_s=config.idle_release_s)
    assistant = assemble(load_home(Path(config.home)), tiers, profile, engine, config.cache_db or ":memory:",
                         policy=policy, remote=config.remote, generative=config.generative, residency=residency)
    assistant.start_clock()
    return assistant


def warm(app: App, entries: list[ModelEntry]) -> None:
    """Load what fits and run it once: the first real request should not pay for session setup."""
    for entry in entries:
        try:
            with app.governor.acquire(entry.name) as engine:
                if "classify" in entry.capabilities:
                    engine.predict(["warm up"])
                elif "classify-series" in entry.capabilities:
                    engine.predict([engine.example()])
        except Exception as exc:  # a model that cannot load now still loads on demand, or fails loudly then
            log.warning("could not warm %s: %s", entry.name, exc)


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM/SIGINT stop the server gracefully, then serve() returns and the process exits 0 after
        closing the engines. (uvicorn would re-raise the signal once stopped, which kills the process
        before our cleanup and reports a clean stop to a service manager as a crash.)"""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        self.should_exit = True


def uvicorn_server(asgi: Any, host: str, port: int, limits: Limits) -> uvicorn.Server:
    """uvicorn on one event loop, with httptools under our protocol limits (protocol.py). Its own
    access log, `server` header and concurrency cap stay off: /metrics counts requests, and the
    governor's queue limit answers overload with a JSON 503 and Retry-After. X-Forwarded-* headers
    are not trusted (proxy_headers off): a device answers its clients directly."""
    config = uvicorn.Config(asgi, host=host, port=port, http=protocol_class(limits.header_timeout_s),
                            loop="asyncio", lifespan="off", ws="none", access_log=False, server_header=False,
                            timeout_keep_alive=int(limits.idle_timeout_s), backlog=1024, log_config=None, proxy_headers=False,
                            timeout_graceful_shutdown=5)
    return _Server(config)


def serve(config: ServeConfig, ready: Callable[[str, int], None] | None = None) -> None:
    started = time.monotonic()
    app = build_app(config)
    limits = Limits(max_body_bytes=config.max_body_bytes)
    server = uvicorn_server(app.asgi(limits), config.host, config.port, limits)

    async def main() -> None:
        task = asyncio.create_task(server.serve())  # uvicorn stops on SIGINT/SIGTERM by itself
        while not server.started:
            if task.done():  # it could not bind (port in use...): uvicorn logged why and exited
                try:
                    await task
                except SystemExit:
                    pass
                raise ConfigError(f"could not listen on {config.host}:{config.port}; see the log above")
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        log.info("listening on %s:%d after %.2f s", host, port, time.monotonic() - started)
        if ready:
            ready(host, port)
        await task

    try:
        asyncio.run(main())
    finally:
        app.close()
