"""`edgeslm fleet simulate`: N real agents in a few processes against a real Mosquitto and the real control plane, two
rollouts (the second with faults injected), and what they cost (fleet/simulate/)."""

from __future__ import annotations

from typing import Any

import click

from edgeslm.cli.common import emit, handle_errors, json_option


def _faults(ctx: Any, param: Any, value: str) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()] if value else []


@click.command("simulate")
@click.option("--devices", type=int, default=100, show_default=True, help="Simulated devices (each a real agent).")
@click.option("--processes", type=int,
              help="Processes for the healthy devices' agents; each fault's devices get one more. Default: 4, or "
                   "enough for at most 120 agents each (paho-mqtt's select() sees no file descriptor past 1023).")
@click.option("--faults", default="", callback=_faults, metavar="LIST",
              help="Comma-separated, during the second rollout: offline, kill, broker-restart.")
@click.option("--fault-fraction", type=float, default=0.05, show_default=True, help="Share of devices per device fault.")
@click.option("--offline-s", type=float, default=20.0, show_default=True, help="How long offline devices stay away.")
@click.option("--db", help="postgresql:// URL for the registry (default: SQLite in the work folder).")
@click.option("--bundle-kib", type=int, default=64, show_default=True, help="Filler weights in the bundle (KiB).")
@click.option("--telemetry-interval", type=float, default=60.0, show_default=True, help="Agents' telemetry window (s).")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True, help="Per rollout (s).")
@click.option("--workdir", type=click.Path(), help="Keep the control plane's, broker's and agents' files and logs here.")
@json_option
@handle_errors
def simulate(devices: int, processes: int | None, faults: list[str], fault_fraction: float, offline_s: float, db: str | None,
             bundle_kib: int, telemetry_interval: float, timeout_s: float, workdir: str | None, as_json: bool) -> None:
    """Simulate a fleet on this machine and report rollout time, control-plane CPU and memory, broker messages."""
    from edgeslm.fleet.simulate import SimulateConfig
    from edgeslm.fleet.simulate import simulate as run
    from edgeslm.fleet.simulate.config import AGENTS_PER_PROCESS

    if processes is None:
        processes = max(4, -(-devices // AGENTS_PER_PROCESS))
    config = SimulateConfig(devices=devices, processes=processes, faults=faults, fault_fraction=fault_fraction,
                            offline_s=offline_s, db=db, bundle_kib=bundle_kib, telemetry_interval_s=telemetry_interval,
                            timeout_s=timeout_s, workdir=workdir)
    emit(run(config), as_json, lambda r: (
        f"{r['devices']} devices: release 2 {r['rollout_state']} in {r['rollout_seconds']} s (healthy devices in "
        f"{r['healthy_reached_seconds']} s); {r['devices_without_working_model']} without a working model; control plane "
        f"{r['controlplane_avg_cores']} cores on average, peak RSS {r['controlplane_peak_rss_mb']} MB; broker "
        f"{r['broker_messages_received']} messages in, {r['broker_messages_sent']} out"))
