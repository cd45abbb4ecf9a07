"""Secrets of the control plane: the operators' admin token, enrolment tokens, the devices' HTTP tokens and
MQTT passwords. Each is random (256 bits, or 192 for MQTT), shown once, and stored only as a hash; every
check compares digests in constant time. Plain sha256 is enough for secrets of that entropy (no password
an attacker could guess); the MQTT password is hashed the way Mosquitto reads it (PBKDF2-SHA512, `$7$`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from edgeslm.errors import ConfigError

ADMIN_TOKEN_ENV = "EDGESLM_FLEET_ADMIN_TOKEN"
ADMIN_TOKEN_FILE = "admin-token"
MIN_ADMIN_TOKEN_CHARS = 24
# Mosquitto's own default; the password is random, so more rounds would buy nothing but broker CPU on the
# reconnect storm after a broker restart (each CONNECT hashes once).
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
TOKEN_PART = re.compile(r"[A-Za-z0-9_-]{16,128}")


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_id(prefix: str) -> str:
    """A public identifier (never a secret): a prefix and 16 hex digits, safe in a URL, a topic and a file."""
    return f"{prefix}{secrets.token_hex(8)}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    """Constant time in the secret: both sides are compared as digests of equal length."""
    return hmac.compare_digest(digest(secret), stored_digest)


def split_token(token: str) -> tuple[str, str] | None:
    """'ID.SECRET' -> (ID, SECRET), or None when it is not shaped like one of our tokens."""
    ident, dot, secret = token.partition(".")
    if not dot or not TOKEN_PART.fullmatch(ident) or not TOKEN_PART.fullmatch(secret):
        return None
    return ident, secret


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """A Mosquitto 2 password-file hash: $7$ITERATIONS$base64(salt)$base64(PBKDF2-SHA512)."""
    salt = salt if salt is not None else os.urandom(MOSQUITTO_SALT_BYTES)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def load_or_create_admin_token(state: Path) -> str:
    """The operators' token: EDGESLM_FLEET_ADMIN_TOKEN when set, else STATE/admin-token, created on first
    start with mode 0600 (from its first byte). A token file that others can read is refused."""
    env = os.environ.get(ADMIN_TOKEN_ENV)
    if env is not None:
        if len(env) < MIN_ADMIN_TOKEN_CHARS or not env.isprintable() or env != env.strip():
            raise ConfigError(f"{ADMIN_TOKEN_ENV} must be at least {MIN_ADMIN_TOKEN_CHARS} printable characters without "
                              "surrounding spaces (e.g. the output of `openssl rand -base64 32`)")
        return env
    path = Path(state) / ADMIN_TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_admin_token(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the admin token file {path}: {exc.strerror}") from None
    token = new_secret()
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return token


def _read_admin_token(path: Path) -> str:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file; the admin token file must be a plain file")
        if st.st_mode & 0o077:
            raise ConfigError(f"{path}: readable by others (mode {stat.S_IMODE(st.st_mode):o}); run chmod 600 {path}, "
                              "and replace the token if anyone else may have read it")
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the admin token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; delete it to have a new admin token made") from None
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(f"{path}: the admin token is shorter than {MIN_ADMIN_TOKEN_CHARS} characters; delete the file "
                          "to have a new one made")
    return token
