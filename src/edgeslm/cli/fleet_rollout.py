"""`edgeslm fleet rollout create|status|pause|resume|abort|rollback`: rollouts in the registry (edgeslm.fleet.rollout).
The running control plane (`edgeslm fleet server --broker ...`) carries them out; these commands only change what the
registry asks of it, so they work with the server up or down."""

from __future__ import annotations

from typing import Any

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.cli.fleet import open_registry, registry_options


@click.group("rollout")
def rollout() -> None:
    """Roll a bundle release out to a group: canaries first, gated on quality against the previous version."""


@rollout.command("create")
@click.option("--bundle", required=True, help="The bundle's name (as published).")
@click.option("--release", required=True, help="The release to roll out; each device gets the variant that fits it.")
@click.option("--group", required=True, help="The device group to roll out to.")
@click.option("--canary", "canary_fraction", type=float, default=0.1, show_default=True, help="Share of devices in the canary wave.")
@click.option("--waves", default="1.0", show_default=True, help="Cumulative shares after the canaries, e.g. 0.5,1.0.")
@click.option("--probe-file", default="probe.jsonl", show_default=True, help="The signed probe set inside the bundle.")
@click.option("--no-probe", is_flag=True, help="Run no probe set on install (then the accuracy gate has nothing to compare).")
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True)
@click.option("--max-p90-ratio", type=float, default=1.5, show_default=True)
@click.option("--max-error-rate-increase", type=float, default=0.01, show_default=True)
@click.option("--max-escalation-rate-increase", type=float, default=0.05, show_default=True)
@click.option("--max-joules-ratio", type=float, default=1.5, show_default=True)
@click.option("--min-requests", type=int, default=20, show_default=True, help="Per canary and version before judging.")
@click.option("--observe", "observe_s", type=float, default=600.0, show_default=True, help="Seconds canaries have to serve them.")
@click.option("--signer", "signers", multiple=True, help="Key id the bundle must be signed by (repeatable).")
@click.option("--policy", metavar="FILE|SHA256", help="An adaptive policy to install with the bundle (and roll back with "
              "it): a policy file with its FILE.sig beside it (published first, checked against --trust), or a "
              "published policy's sha256.")
@click.option("--trust", type=click.Path(), help="Public key(s) a --policy FILE must be signed by.")
@registry_options
@json_option
@handle_errors
def create(bundle: str, release: str, group: str, canary_fraction: float, waves: str, probe_file: str, no_probe: bool,
           state: str, db: str | None, store: str | None, as_json: bool, signers: tuple[str, ...], policy: str | None,
           trust: str | None, **gates: Any) -> None:
    """Create a rollout; the control plane starts it at once."""
    from edgeslm.errors import ConfigError
    from edgeslm.fleet.rollout import RolloutConfig, Rollouts

    try:
        fractions = [float(w) for w in waves.split(",") if w.strip()]
    except ValueError:
        raise ConfigError(f"--waves {waves!r}: comma-separated shares, e.g. 0.5,1.0") from None
    with open_registry(state, db, store, trust=trust) as registry:
        policy_sha = _policy(registry, policy) if policy else None
        config = RolloutConfig(bundle=bundle, release=release, group=group, canary_fraction=canary_fraction, waves=fractions,
                               probe_file=None if no_probe else probe_file, signers=list(signers), policy=policy_sha, **gates)
        record = Rollouts(registry).create(config, actor="cli")
    emit(record, as_json, _describe)


@rollout.command("status")
@click.argument("rollout_id", type=int, required=False)
@registry_options
@json_option
@handle_errors
def status(rollout_id: int | None, state: str, db: str | None, store: str | None, as_json: bool) -> None:
    """One rollout in full (waves, devices, gates, the reason for a halt), or the latest ones."""
    from edgeslm.fleet.rollout import Rollouts

    with open_registry(state, db, store) as registry:
        rollouts = Rollouts(registry)
        if rollout_id is not None:
            emit(rollouts.get(rollout_id), as_json, _describe)
        else:
            rows = rollouts.recent()
            emit({"rollouts": rows}, as_json, lambda d: "\n".join(_line(r) for r in d["rollouts"]) or "no rollouts")


def _action(name: str, doc: str) -> None:
    @rollout.command(name, help=doc)
    @click.argument("rollout_id", type=int)
    @click.option("--reason", default="", help="Why (recorded in the event log).")
    @registry_options
    @json_option
    @handle_errors
    def command(rollout_id: int, reason: str, state: str, db: str | None, store: str | None, as_json: bool) -> None:
        from edgeslm.fleet.rollout import Rollouts

        with open_registry(state, db, store) as registry:
            record = getattr(Rollouts(registry), name)(rollout_id, "cli", reason)
        emit(record, as_json, _describe)


_action("pause", "Send no more installs (a failing gate still rolls the canaries back).")
_action("resume", "Carry on with a paused rollout.")
_action("abort", "End the rollout: no more installs; devices keep the version they run.")
_action("rollback", "Put every device the rollout changed back on the version it ran before.")


def _policy(registry: Any, given: str) -> str:
    """A published policy's sha256, given as such or as a policy file to publish now (its signature beside it)."""
    from pathlib import Path

    from edgeslm.errors import ConfigError
    from edgeslm.fleet.schemas import PolicyUpload
    from edgeslm.formats.signing import policy_signature_path

    if len(given) == 64 and all(c in "0123456789abcdef" for c in given):
        return given
    path = Path(given)
    try:
        text = path.read_bytes().decode("utf-8")  # the exact bytes its signature covers (no newline translation)
        sig = policy_signature_path(path)
        signature = sig.read_bytes().decode("utf-8") if sig.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--policy {given}: not a published policy's sha256, nor a readable policy file ({exc})") from None
    record, _ = registry.publish_policy(PolicyUpload(policy=text, signature=signature), actor="cli")
    return record["sha256"]


def _line(r: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(r["counts"].items())) or "no devices"
    halt = f"  halted: {r['halt_reason']}" if r["halt_reason"] else ""
    return f"{r['id']:>4}  {r['bundle']} {r['release']} -> {r['group']}  {r['state']}  ({counts}){halt}"


def _describe(r: dict[str, Any]) -> str:
    lines = [_line(r)]
    for w in r.get("waves", []):
        lines.append(f"  wave {w['idx']} ({w['kind']}, {w['devices']} devices): {w['state']}")
    for g in r.get("gates", []):
        lines.append(f"  gate {g['gate']} (wave {g['wave_idx']}): {'passed' if g['passed'] else 'FAILED'}: {g['reason']}")
    for a in r.get("assignments", []):
        lines.append(f"  {a['device_id']}: {a['state']} ({a['variant'] or '-'}){': ' + a['reason'] if a['reason'] else ''}")
    return "\n".join(lines)
