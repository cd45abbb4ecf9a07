"""Installing one bundle, step by step: download the archive (resumable, sha256-checked), unpack it safely,
verify its signature and files, then load it and run the probe set. Each step raises InstallError (or the
signing and bundle errors) with the reason the device reports; none of them touches `active`, which only
the agent's swap (store.DeviceStore.activate) changes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from edgeslm.agent.protocol import MAX_POLICY_BYTES, Install, PolicyRef, Probe, ProbeItem, ProtocolError
from edgeslm.errors import EdgeslmError

log = logging.getLogger(__name__)

CHUNK = 64 << 10
DISK_MARGIN = 16 << 20  # bytes left free beyond archive + unpacked bundle, for the logs and the journal
MAX_PROBE_FILE_BYTES = 4 << 20
PROBE_BATCH = 32
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # out of space, over quota, over RLIMIT_FSIZE


class InstallError(EdgeslmError):
    """An install step failed; the message is the reason the device reports, and nothing that serves changed."""

    def __init__(self, message: str, probe_accuracy: float | None = None):
        super().__init__(message)
        self.probe_accuracy = probe_accuracy


# --- download ------------------------------------------------------------------------------------------------

def check_disk(folder: Path, size: int) -> None:
    """Room for `size` more bytes (what is left of the archive and its unpacked copy) before a byte is fetched."""
    free = shutil.disk_usage(folder).free
    need = size + DISK_MARGIN
    if free < need:
        raise InstallError(f"not enough disk: the bundle needs about {need >> 20} MiB free under {folder}, "
                           f"{free >> 20} MiB are; the active model keeps serving")


def download(spec: Install, part: Path, headers: dict[str, str], timeout_s: float, attempts: int,
             sleep: Callable[[float], None] = time.sleep) -> Path:
    """Fetch spec.url into `part`, continuing from the bytes already there (HTTP Range), and check its sha256.
    A partial file survives a failed attempt, a crash or a kill, so the next attempt or agent carries on."""
    for attempt in range(1, attempts + 1):
        try:
            _fetch(spec, part, headers, timeout_s)
            break
        except InstallError:
            raise
        except (OSError, HTTPException) as exc:  # URLError, timeouts and resets are OSErrors
            if isinstance(exc, OSError) and exc.errno in NO_SPACE:
                part.unlink(missing_ok=True)  # give the space back to what serves
                raise InstallError(f"disk full while downloading the bundle ({exc.strerror}); the partial download was "
                                   "removed and the active model keeps serving") from None
            if attempt == attempts:
                raise InstallError(f"download of {_safe_url(spec.url)} failed after {attempts} attempt(s): "
                                   f"{_describe(exc)}; the partial download is kept and resumes next time") from None
            log.warning("download attempt %d of %d failed (%s); retrying", attempt, attempts, _describe(exc))
            sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
    digest = _sha256(part)
    if digest != spec.sha256:
        part.unlink(missing_ok=True)  # a resumed download must not build on bytes that are wrong
        raise InstallError(f"the archive's sha256 is {digest[:16]}..., the command expects {spec.sha256[:16]}...: "
                           "tampered with or corrupted in transit; refused")
    return part


def _fetch(spec: Install, part: Path, headers: dict[str, str], timeout_s: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > spec.size:
        part.unlink()
        have = 0
    if have == spec.size:
        return
    request = urllib.request.Request(spec.url, headers={**headers, "Range": f"bytes={have}-"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # our offset is past what the server has: start over
            part.unlink(missing_ok=True)
            raise ConnectionError("the server refused the resume offset (416); starting over") from None
        if exc.code in (401, 403):
            raise InstallError(f"the bundle server refused this device's credentials (HTTP {exc.code})") from None
        if exc.code == 404:
            raise InstallError(f"the bundle server has no archive at {_safe_url(spec.url)} (HTTP 404)") from None
        raise ConnectionError(f"HTTP {exc.code} from the bundle server") from None
    with response:
        if response.status == 206:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match[1]) != have:
                raise InstallError("the bundle server answered a range request with a range we did not ask for")
            if match[3] != "*" and int(match[3]) != spec.size:
                raise InstallError(f"the archive on the server is {match[3]} bytes, the command says {spec.size}: refused")
            mode = "ab"
        elif response.status == 200:  # no range support, or it chose to send everything: start over
            have, mode = 0, "wb"
        else:
            raise ConnectionError(f"HTTP {response.status} from the bundle server")
        with part.open(mode) as fh:
            while chunk := response.read1(min(CHUNK, spec.size - have + 1)):  # what has arrived: read() waits for all
                have += len(chunk)
                if have > spec.size:
                    raise InstallError(f"the bundle server sent more than the {spec.size} bytes the command gives: refused")
                fh.write(chunk)
                fh.flush()  # on disk (the page cache) at once: a killed agent resumes from every byte it got
            os.fsync(fh.fileno())
    if have < spec.size:
        raise ConnectionError(f"the connection closed after {have} of {spec.size} bytes")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _safe_url(url: str) -> str:
    """A URL without its query string or user info, for messages: a signed URL's token is a secret."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, _, rest = head.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach the bundle server ({getattr(exc.reason, 'strerror', None) or exc.reason})"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# --- the policy ---------------------------------------------------------------------------------------------

POLICY_FILE = "policy.json"
MAX_POLICY_RECORD_BYTES = 3 * MAX_POLICY_BYTES  # the record carries the policy's text and its signature's, JSON-escaped


def fetch_policy(ref: PolicyRef, staging: Path, headers: dict[str, str], timeout_s: float, attempts: int, trust: Any,
                 signers: Sequence[str], sleep: Callable[[float], None] = time.sleep) -> tuple[Path, str]:
    """Fetch the policy record `ref` names into a new folder under `staging` (POLICY_FILE and its .sig), then check
    the text's sha256, its signature (by a trusted key, one of `signers` when the command names them) and the policy
    itself. (the policy file, the signer's key id)"""
    from edgeslm.formats import strict_json
    from edgeslm.formats.signing import policy_signature_path

    raw = _get(ref.url, headers, timeout_s, attempts, MAX_POLICY_RECORD_BYTES, "policy", sleep)
    try:
        record = strict_json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise InstallError("the policy server's answer is not a JSON policy record") from None
    body, sig = (record.get("body"), record.get("signature")) if isinstance(record, dict) else (None, None)
    if not isinstance(body, str) or not (sig is None or isinstance(sig, str)):
        raise InstallError("the policy server's answer has no policy text (body) or a signature that is not text")
    data = body.encode("utf-8", "surrogatepass")  # the registry hashes the text the same way
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256 or len(data) != ref.size:
        raise InstallError(f"the policy's sha256 is {digest[:16]}..., the command expects {ref.sha256[:16]}...: "
                           "tampered with or corrupted in transit; refused")
    folder = staging / f"policy.{time.time_ns()}"
    folder.mkdir(parents=True)
    path = folder / POLICY_FILE
    try:
        path.write_bytes(data)
        if sig is not None:
            policy_signature_path(path).write_bytes(sig.encode("utf-8", "surrogatepass"))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InstallError(f"cannot write the policy: {exc.strerror}; the active model keeps serving") from None
    try:
        return path, verify_policy(path, trust, signers)
    except EdgeslmError as exc:  # named as the operator knows it, not by the staging path
        raise InstallError(str(exc).replace(str(path), f"the policy {ref.sha256[:16]}")) from None


def verify_policy(path: Path, trust: Any, signers: Sequence[str]) -> str:
    """Signature (by a trusted key, one of `signers` when given), then the policy's own checks; the signer's key id."""
    from edgeslm.formats.signing import verify_policy as verify_signature
    from edgeslm.runtime.tiers.policy import load_policy

    signer = verify_signature(path, trust)
    if signers and signer not in signers:
        raise InstallError(f"the policy is signed by key {signer[:16]}, which this rollout does not accept "
                           f"(it expects {', '.join(s[:16] for s in signers)})")
    load_policy(path)  # PolicyError names what is wrong with it
    return signer


def _get(url: str, headers: dict[str, str], timeout_s: float, attempts: int, cap: int, what: str,
         sleep: Callable[[float], None]) -> bytes:
    """A small document from the control plane, refused past `cap` bytes; retried like a download."""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
                raw = response.read(cap + 1)
            if len(raw) > cap:
                raise InstallError(f"the {what} from the control plane is over {cap} bytes: refused")
            return raw
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (401, 403, 404):
                raise InstallError(f"the control plane refused the {what} at {_safe_url(url)} (HTTP {exc.code})") from None
            failure: BaseException = exc
        except (OSError, HTTPException) as exc:
            failure = exc
        if attempt == attempts:
            raise InstallError(f"fetching the {what} from {_safe_url(url)} failed after {attempts} attempt(s): "
                               f"{_describe(failure)}") from None
        sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


# --- unpack --------------------------------------------------------------------------------------------------

def unpack(archive: Path, staging: Path, prefix: str) -> Path:
    """Unpack the archive into a new folder under `staging` (formats/archive.py checks every member before
    writing it: no absolute name, '..', link, device or repeated name); the folder holding manifest.json."""
    from edgeslm.formats.archive import extract_archive

    out = staging / f"{prefix}.{time.time_ns()}"
    try:
        with archive.open("rb") as fh:
            extract_archive(fh, out, max_bytes=archive.stat().st_size, where="the downloaded archive")
        return _bundle_root(out)
    except OSError as exc:
        shutil.rmtree(out, ignore_errors=True)
        if exc.errno in NO_SPACE:
            raise InstallError(f"disk full while unpacking the bundle ({exc.strerror}); the active model keeps serving") from None
        raise InstallError(f"cannot unpack the archive: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _bundle_root(out: Path) -> Path:
    if (out / "manifest.json").is_file():
        return out
    entries = list(out.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "manifest.json").is_file():
        return entries[0]
    raise InstallError("the archive holds no bundle (no manifest.json at its top, nor in its one folder)")


# --- verify and check ---------------------------------------------------------------------------------------

def verify(bundle_dir: Path, trust: Any, signers: Sequence[str]) -> str:
    """Signature (by a trusted key, and one of `signers` when the command names them), manifest and every
    file's sha256; the signer's key id."""
    from edgeslm.formats.signing import verify_bundle

    signer = verify_bundle(bundle_dir, trust)
    if signers and signer not in signers:
        raise InstallError(f"the bundle is signed by key {signer[:16]}, which this rollout does not accept "
                           f"(it expects {', '.join(s[:16] for s in signers)})")
    return signer


@dataclass
class Checked:
    """A bundle that loaded and passed its probe set: its engine, ready to serve."""

    engine: Any
    name: str
    probe_accuracy: float | None
    probe_size: int


def check(bundle_dir: Path, probe: Probe | None, threads: int | None) -> Checked:
    """Load the (verified) bundle with the engine its manifest names, answer one request, then run the probe
    set; the engine stays loaded for the caller to serve with, or is closed when the check fails."""
    from edgeslm.formats.reader import open_bundle
    from edgeslm.runtime.engines.registry import LoadSettings, engine_kind

    bundle = open_bundle(bundle_dir)
    kind = engine_kind(bundle.manifest.engine, bundle.path)
    try:
        engine = kind.load(bundle, LoadSettings(threads=threads))
    except EdgeslmError as exc:
        raise InstallError(f"health check: the bundle does not load: {exc}") from None
    except Exception as exc:  # an engine's own library refusing the model file is a failed check, not a crash
        raise InstallError(f"health check: the bundle does not load ({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        if "classify" in kind.capabilities:
            answer = engine.predict(["health check"])
            if len(answer) != 1 or answer[0].get("label") not in bundle.manifest.labels:
                raise InstallError("health check: the classifier's answer is not one of its labels")
        elif not engine.tokenize("health check"):
            raise InstallError("health check: the model's tokenizer returned no tokens")
        if probe is None:
            return Checked(engine, bundle.manifest.name, None, 0)
        if "classify" not in kind.capabilities:
            raise InstallError(f"a probe set needs a classifier; engine {bundle.manifest.engine} does not classify")
        items = probe.items if probe.items is not None else read_probe_file(bundle, probe.file or "")
        unknown = sorted({i.label for i in items} - set(bundle.manifest.labels))
        if unknown:
            raise InstallError(f"the probe set has labels the bundle does not know: {', '.join(unknown[:5])}")
        accuracy = probe_accuracy(engine, items)
        if accuracy < probe.min_accuracy:
            raise InstallError(f"probe set accuracy {accuracy:.3f} on {len(items)} texts is below the floor "
                               f"{probe.min_accuracy:.3f}; the active model keeps serving", probe_accuracy=accuracy)
        return Checked(engine, bundle.manifest.name, accuracy, len(items))
    except BaseException:
        close_engine(engine)
        raise


def probe_accuracy(engine: Any, items: Sequence[ProbeItem]) -> float:
    right = 0
    for start in range(0, len(items), PROBE_BATCH):
        batch = items[start:start + PROBE_BATCH]
        answers = engine.predict([i.text for i in batch])
        right += sum(a["label"] == i.label for a, i in zip(answers, batch, strict=True))
    return right / len(items)


def read_probe_file(bundle: Any, name: str) -> list[ProbeItem]:
    """A probe set shipped in the bundle: JSONL of {"text", "label"}, listed in its manifest (so signed)."""
    if name not in bundle.manifest.files:
        raise InstallError(f"the probe file {name!r} is not listed in the bundle's manifest (an unsigned probe set is "
                           "no evidence)")
    path = bundle.path / name
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_PROBE_FILE_BYTES:
        raise InstallError(f"the probe file {name!r} must be a regular file of at most {MAX_PROBE_FILE_BYTES} bytes")
    items = []
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict) or set(data) - {"text", "label"}:
                    raise ProtocolError("each line must be an object with text and label only")
                items.append(ProbeItem(text=data.get("text"), label=data.get("label")))
            except (ValueError, RecursionError, ProtocolError) as exc:
                raise InstallError(f"the probe file {name!r}, line {number}: {str(exc)[:120]}") from None
    except UnicodeDecodeError:
        raise InstallError(f"the probe file {name!r} is not UTF-8") from None
    if not items:
        raise InstallError(f"the probe file {name!r} is empty")
    return items


def close_engine(engine: Any) -> None:
    close = getattr(engine, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing is best effort: the engine is being dropped either way
            log.warning("closing an engine failed", exc_info=True)
