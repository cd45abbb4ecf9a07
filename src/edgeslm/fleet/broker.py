"""Mosquitto's password file and ACL, written by the control plane from the registry. The password file holds
the hashes the registry stored at enrolment (the plain MQTT passwords were shown once, to the device, and
never kept), plus the control plane's own account; the ACL is agent/protocol.py's, which confines each device
to its own topics. Rewritten after every enrolment and revocation; Mosquitto rereads both on SIGHUP."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edgeslm.agent.protocol import DEVICE_ID, write_acl
from edgeslm.agent.store import write_bytes  # mkstemp: the password file is 0600 from its first byte
from edgeslm.errors import ConfigError
from edgeslm.fleet.credentials import mosquitto_hash, new_secret
from edgeslm.fleet.registry import Registry

log = logging.getLogger(__name__)

CONTROL_PLANE_USER = "controlplane"
PASSWORD_FILE = "mqtt-controlplane-password"  # in the control plane's state folder, mode 0600


def control_plane_password(state: Path) -> str:
    """The control plane's MQTT password: STATE/mqtt-controlplane-password, created 0600 on first use."""
    path = Path(state) / PASSWORD_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            raise ConfigError(f"{path}: readable by others; run chmod 600 {path}") from None
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    password = new_secret(24)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return password


@dataclass
class BrokerFiles:
    """Writes FOLDER/passwd and FOLDER/acl for a Mosquitto started with password_file and acl_file there;
    `pid_file` (Mosquitto's pid_file), when given, gets a SIGHUP after each rewrite so the broker rereads them."""
    folder: Path
    state: Path
    pid_file: Path | None = None
    # enrolments arrive on several API threads at once: reading the accounts and replacing the file must be one step,
    # or a write that read the accounts first can land last and drop a device just enrolled (seen at 1,000 enrolments)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __call__(self, registry: Registry) -> None:
        self.write(registry)

    def write(self, registry: Registry) -> None:
        with self._lock:
            self._write(registry)

    def _write(self, registry: Registry) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        accounts = [(CONTROL_PLANE_USER, mosquitto_hash(control_plane_password(self.state)))]
        accounts += registry.mqtt_accounts()
        lines = []
        for user, hashed in accounts:
            if not DEVICE_ID.fullmatch(user) or ":" in hashed or "\n" in hashed:
                raise ConfigError(f"MQTT account {user[:80]!r} cannot go into a password file")
            lines.append(f"{user}:{hashed}\n")
        write_bytes(self.folder / "passwd", "".join(lines).encode("utf-8"))
        write_acl(self.folder / "acl", [CONTROL_PLANE_USER])
        self.reload()

    def reload(self) -> None:
        if self.pid_file is None:
            return
        try:
            pid = int(Path(self.pid_file).read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:  # the broker is down: it reads the files when it starts
            log.warning("could not signal Mosquitto to reread its password file (%s): %s", self.pid_file, exc)


