"""`edgeslm fleet agent`: the device's fleet agent, torch-free; runs until SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from edgeslm.cli.common import handle_errors, json_option


@click.command("agent")
@click.option("--profile", required=True, help="Device profile name or YAML file (reported to the control plane).")
@click.option("--state", "state_dir", required=True, type=click.Path(path_type=Path),
              help="The agent's folder: installed bundles, the active and previous links, downloads, the journal.")
@click.option("--broker", required=True, metavar="HOST:PORT", help="The MQTT broker (Mosquitto).")
@click.option("--credentials", required=True, type=click.Path(path_type=Path),
              help="The enrolment's JSON (device_id, secret, mqtt_username, mqtt_password), mode 0600.")
@click.option("--trust", required=True, type=click.Path(path_type=Path),
              help="Public key (.pub) or folder of them: bundles must be signed by one.")
@click.option("--telemetry-interval", type=float, default=60.0, show_default=True, help="Seconds per telemetry window.")
@click.option("--tls-ca", type=click.Path(path_type=Path), help="CA file: connect to the broker over TLS.")
@json_option
@handle_errors
def agent(profile: str, state_dir: Path, broker: str, credentials: Path, trust: Path, telemetry_interval: float,
          tls_ca: Path | None, as_json: bool) -> None:
    """Install the bundles the control plane sends (verified, probed, swapped atomically) and report telemetry."""
    from edgeslm.agent.agent import Agent
    from edgeslm.agent.config import AgentConfig, parse_broker

    host, port = parse_broker(broker)
    config = AgentConfig(profile=profile, state_dir=state_dir, broker_host=host, broker_port=port, credentials=credentials,
                         trust=trust, telemetry_interval_s=telemetry_interval, tls_ca=tls_ca)
    device = Agent(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    info = {"event": "started", "device_id": device.device_id, "broker": f"{host}:{port}", "state": str(state_dir),
            "active": device.active}
    click.echo(json.dumps(info) if as_json else f"agent {device.device_id} on {host}:{port}, state in {state_dir}")
    try:
        device.run_forever(stop)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops it: run_forever has already disconnected cleanly
    click.echo(json.dumps({"event": "stopped", "active": device.active}) if as_json else "agent stopped")
