"""Processes of real agents (agent/agent.py), many per process, which the simulator starts, stops cleanly, kills and
starts again on the same state folders; and where a device stands, read from its own folder."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edgeslm.fleet.proc import cpu_seconds, more_files
from edgeslm.fleet.simulate.config import DEVICE_FACTS, PROFILE


def _agents_main(spec: dict[str, Any]) -> None:
    """Many real agents in one process, each with its own MQTT connection, state folder and credentials file."""
    logging.basicConfig(filename=spec["log"], level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    more_files()
    from edgeslm.agent.agent import Agent
    from edgeslm.agent.config import AgentConfig
    from edgeslm.runtime.profiles import DeviceProfile

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    profile = DeviceProfile(name=PROFILE, memory_budget_mb=512, cores=1, threads=1, watts_idle=2.0, watts_busy=6.0,
                            isa=tuple(DEVICE_FACTS["isa"]))
    agents = []
    pause = spec["start_spread_s"] / max(1, len(spec["devices"]))
    for state_dir in spec["devices"]:
        if stop.is_set():
            break
        config = AgentConfig(profile=PROFILE, state_dir=Path(state_dir), broker_host=spec["broker_host"],
                             broker_port=spec["broker_port"], credentials=Path(state_dir) / "credentials.json",
                             trust=Path(spec["trust"]), telemetry_interval_s=spec["telemetry_interval_s"],
                             reconnect_min_s=1.0, reconnect_max_s=spec["reconnect_max_s"], keep_engine=False)
        agent = Agent(config, profile=profile)
        agent.start()
        agents.append(agent)
        stop.wait(pause)
    stop.wait()
    with ThreadPoolExecutor(32) as pool:  # each stop says offline and waits for its worker: in parallel
        list(pool.map(lambda a: a.stop(5.0), agents))


class AgentGroup:
    """One process of agents, which the simulator can stop (cleanly), kill and start again on the same folders."""

    def __init__(self, name: str, spec: dict[str, Any]):
        self.name, self.spec = name, spec
        self.devices = [Path(d) for d in spec["devices"]]
        self.proc: Any = None
        self.cpu_s = 0.0  # of the processes that ended

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(target=_agents_main, args=(self.spec,), name=f"edgeslm-sim-{self.name}", daemon=True)
        self.proc.start()

    def cpu(self) -> float:
        return self.cpu_s + (cpu_seconds(self.proc.pid) if self.proc is not None and self.proc.is_alive() else 0.0)

    def _ended(self) -> None:
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            self.proc.terminate()
            self.proc.join(60)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(10)
            self._ended()

    def freeze(self) -> None:
        """SIGSTOP: every agent of the process stands still where it is (a look at their folders then holds)."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(10)
            self._ended()


def device_view(folder: Path, sha: str) -> str:
    """Where a device stands with bundle `sha`, read from its own folder: active, partial (downloading), journaled
    (the install command is in its journal), or waiting."""
    if active_sha(folder) == sha:
        return "active"
    part = folder / "downloads" / f"{sha}.part"
    if part.exists():
        return "partial"
    if any(".install." in p.name for p in (folder / "journal").glob("*.cmd")):
        return "journaled"
    return "waiting"


def active_sha(folder: Path) -> str | None:
    try:
        return Path(os.readlink(folder / "active")).name
    except OSError:
        return None

