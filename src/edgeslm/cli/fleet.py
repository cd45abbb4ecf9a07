"""`edgeslm fleet ...`: the control plane (server) and what an operator does on its machine (publish, devices,
enrol-token), through the library (edgeslm.fleet). The agent's and the rollouts' subcommands live in their own
modules (cli/fleet_*.py) and are added to this group at the bottom."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgeslm.cli.common import emit, handle_errors, json_option


def _default_state() -> str:
    from edgeslm.fleet.server import default_state

    return default_state()


REGISTRY_OPTIONS = (
    click.option("--state", default=_default_state, show_default="fleet-state, or $EDGESLM_FLEET_STATE",
                 help="The control plane's folder (admin token; default database and bundle store)."),
    click.option("--db", help="SQLite file or postgresql:// URL (default: STATE/registry.sqlite)."),
    click.option("--store", help="The bundle store's folder (default: STATE/bundles)."),
)


def registry_options(fn: Callable) -> Callable:
    """--state, --db, --store: which registry a command opens (the server's defaults)."""
    for option in reversed(REGISTRY_OPTIONS):
        fn = option(fn)
    return fn


def open_registry(state: str, db: str | None, store: str | None, trust: str | None = None, allow_unsigned: bool = False) -> Any:
    from edgeslm.fleet.registry import Registry, RegistryConfig
    from edgeslm.fleet.server import DB_FILE, STORE_DIR, open_state

    folder = open_state(state)
    return Registry.open(RegistryConfig(db=db or str(folder / DB_FILE), store=store or str(folder / STORE_DIR),
                                        trust=trust, allow_unsigned=allow_unsigned))


@click.group("fleet")
def fleet() -> None:
    """Manage many devices: the control plane, bundles, devices and enrolment."""


@fleet.command("server")
@registry_options
@click.option("--trust", type=click.Path(), help="Public key (.pub) or folder of them: published bundles and policies "
              "must be signed by one.")
@click.option("--allow-unsigned", is_flag=True, help="Accept unsigned bundles (a test fleet only).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True, help="0 picks a free port (printed at start).")
@click.option("--mosquitto-dir", type=click.Path(), help="Write the broker's passwd and acl files here.")
@click.option("--mosquitto-pid-file", type=click.Path(), help="SIGHUP this Mosquitto after each credential change.")
@click.option("--broker", metavar="HOST:PORT", help="The MQTT broker: carry rollouts out (without it, the API only).")
@click.option("--public-url", help="Where devices download bundles (default: http://HOST:PORT of this server).")
@json_option
@handle_errors
def server(state: str, db: str | None, store: str | None, trust: str | None, allow_unsigned: bool, host: str, port: int,
           mosquitto_dir: str | None, mosquitto_pid_file: str | None, broker: str | None, public_url: str | None,
           as_json: bool) -> None:
    """Serve the control plane's HTTP API (admin token in STATE/admin-token, or $EDGESLM_FLEET_ADMIN_TOKEN)."""
    from edgeslm.fleet.server import FleetServerConfig, serve

    config = FleetServerConfig(state=state, db=db, store=store, trust=trust, allow_unsigned=allow_unsigned, host=host,
                               port=port, mosquitto_dir=mosquitto_dir, mosquitto_pid_file=mosquitto_pid_file, broker=broker,
                               public_url=public_url)

    def ready(h: str, p: int, token_file: Path) -> None:
        url = f"http://{h}:{p}"
        click.echo(json.dumps({"event": "listening", "url": url, "admin_token_file": str(token_file)}) if as_json
                   else f"control plane on {url} (admin token: {token_file})")

    serve(config, ready)


@fleet.command("publish")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@registry_options
@click.option("--trust", type=click.Path(), help="Public key(s) the bundle must be signed by.")
@click.option("--allow-unsigned", is_flag=True, help="Accept an unsigned bundle (a test fleet only).")
@click.option("--release", help="Release label (default: the next integer for the bundle's name).")
@click.option("--variant", help="Variant label within the release (default: the manifest's profile).")
@click.option("--isa", default="", help="ISA the variant needs, comma-separated (e.g. avx512_vnni).")
@click.option("--memory-bytes", type=int, help="Memory it needs resident (default: the size of its files).")
@json_option
@handle_errors
def publish(bundle: Path, state: str, db: str | None, store: str | None, trust: str | None, allow_unsigned: bool,
            release: str | None, variant: str | None, isa: str, memory_bytes: int | None, as_json: bool) -> None:
    """Verify BUNDLE (a bundle folder, or its .tar archive) and publish it to the registry."""
    from edgeslm.fleet.schemas import PublishConfig

    options = PublishConfig(release=release, variant=variant, isa=[s for s in isa.split(",") if s],
                            memory_bytes=memory_bytes)
    with open_registry(state, db, store, trust, allow_unsigned) as registry:
        if bundle.is_dir():
            record, created = registry.publish_folder(bundle, options, actor="cli")
        else:
            record, created = registry.publish_archive(bundle, options, actor="cli")
    emit({**record, "created": created}, as_json,
         lambda r: f"{'published' if created else 'already published'}: {r['name']} release {r['release']} variant "
                   f"{r['variant']} ({r['size_bytes']} bytes) sha256 {r['sha256']}")


@fleet.command("devices")
@registry_options
@click.option("--group", help="Only the devices this group reaches.")
@json_option
@handle_errors
def devices(state: str, db: str | None, store: str | None, group: str | None, as_json: bool) -> None:
    """List the enrolled devices and what they serve."""
    with open_registry(state, db, store) as registry:
        rows = registry.devices(group)
    emit({"devices": rows}, as_json, lambda d: "\n".join(
        f"{r['id']}  {r['name']:<20} {r['profile']:<16} {'online ' if r['online'] else 'offline'} "
        f"active={(r['active_bundle'] or '-')[:16]} groups={','.join(r['groups']) or '-'}" for r in d["devices"])
        or "no devices enrolled")


@fleet.command("enrol-token")
@registry_options
@click.option("--group", help="Devices enrolling with it join this group.")
@click.option("--tag", "tags", multiple=True, help="A tag the devices get (repeatable).")
@click.option("--uses", type=int, default=1, show_default=True, help="How many devices may enrol with it.")
@click.option("--ttl", type=int, default=86400, show_default=True, help="Seconds it stays valid.")
@json_option
@handle_errors
def enrol_token(state: str, db: str | None, store: str | None, group: str | None, tags: tuple[str, ...], uses: int,
                ttl: int, as_json: bool) -> None:
    """Create an enrolment token; a device enrols with it (POST /v1/enrol). It is shown once."""
    from edgeslm.fleet.schemas import EnrolTokenConfig

    spec = EnrolTokenConfig(group=group, tags=list(tags), uses=uses, ttl_s=ttl)
    with open_registry(state, db, store) as registry:
        record = registry.create_enrolment_token(spec, actor="cli")
    emit(record, as_json, lambda r: r["token"])


# Subcommands other modules own: the device agent (cli/fleet_agent.py) and rollouts.
from edgeslm.cli.fleet_rollout import rollout  # noqa: E402  (it reads this module's registry options)

fleet.add_command(rollout)
from edgeslm.cli.fleet_agent import agent  # noqa: E402

fleet.add_command(agent)
from edgeslm.cli.fleet_simulate import simulate  # noqa: E402

fleet.add_command(simulate)
