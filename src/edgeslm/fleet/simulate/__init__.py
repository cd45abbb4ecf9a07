"""`edgeslm fleet simulate`: a fleet of N devices on this machine, to measure what a rollout costs the control plane and
the broker. Everything is the product's own: a real Mosquitto (password file written by the control plane, persistence
on, $SYS statistics every second), the real control plane in its own process (registry, HTTP API under uvicorn, MQTT link,
rollout engine: what `edgeslm fleet server` runs), and real agents (agent/agent.py: journal, resumable download,
signature and file checks, probe set, atomic swap) spread over a few processes, each enrolled through the HTTP API.

    report = simulate(SimulateConfig(devices=1000, processes=8, faults=["offline", "kill", "broker-restart"]))

Two rollouts run: release 1 to every device (no faults: every device then has a working model), then release 2 with
the faults injected while it runs. Faults:
  offline        a share of devices is switched off (their agents stop cleanly) before release 2 starts, and back on
                 `offline_s` later: they must get release 2 when they return;
  kill           a process holding another share of devices is SIGKILLed as soon as one of them is downloading, and
                 started again `kill_down_s` later: the agents resume from their journal and their partial downloads;
  broker-restart Mosquitto is stopped (it saves its sessions) when a quarter of the healthy devices activated release 2
                 (mid-wave), and started `broker_down_s` later on the same port: every client reconnects and nothing
                 queued is lost.
The devices' state folders are on tmpfs (/dev/shm) when there is one: each real device has its own flash, and 1,000
agents fsyncing one disk would measure that disk, not the fleet.
"""

from edgeslm.fleet.simulate.config import FAULTS, SimulateConfig
from edgeslm.fleet.simulate.run import simulate

__all__ = ["FAULTS", "SimulateConfig", "simulate"]
