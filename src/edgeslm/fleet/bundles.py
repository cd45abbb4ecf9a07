"""Publishing: bundles (as archives, formats/archive.py) and policies, each verified before the registry
files it, and named by the sha256 of the bytes a device will download. Part of Registry (registry.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeslm.config import is_decimal
from edgeslm.errors import BundleError, ConfigError
from edgeslm.fleet.errors import Conflict, NotFound, StoreError
from edgeslm.fleet.schemas import PolicyUpload, PublishConfig
from edgeslm.fleet.store import FULL, Staged, check_sha256, full_message
from edgeslm.formats.archive import extract_archive, write_archive
from edgeslm.formats.manifest import MANIFEST
from edgeslm.formats.reader import open_bundle

BUNDLE_COLUMNS = ("sha256, name, release, variant, manifest_sha256, size_bytes, family, engine, task, profile, isa, "
                  "memory_bytes, signed_by, published_at, published_by")
POLICY_COLUMNS = "sha256, digest, signed_by, size_bytes, published_at, published_by"


class Bundles:
    """Registry methods for bundles and policies (self is a Registry)."""

    db: Any
    store: Any
    trust: Any
    allow_unsigned: bool
    max_bundle_bytes: int
    clock: Any
    log_event: Any

    # -- bundles -------------------------------------------------------------------------------------
    def stage_upload(self) -> Staged:
        """A staged file an upload streams into (write(chunk), then finish()); then publish_staged."""
        self.check_can_publish()
        return Staged(self.store.staging_dir(), self.max_bundle_bytes)

    def check_can_publish(self) -> None:
        if self.trust is None and not self.allow_unsigned:
            raise ConfigError("publishing needs the public key(s) bundles and policies must be signed by (--trust KEYS, "
                              "from `edgeslm keys new`), or --allow-unsigned for a test fleet")

    def publish_folder(self, folder: Path, options: PublishConfig, actor: str) -> tuple[dict[str, Any], bool]:
        """Verify a bundle folder, archive it, publish the archive. (record, True when newly published)"""
        self.check_can_publish()
        open_bundle(Path(folder), trust=self.trust)  # refuse before archiving anything
        with self.stage_upload() as staged:
            try:
                write_archive(Path(folder), staged)
            except OSError as exc:
                raise BundleError(f"{folder}: cannot read the bundle: {exc.strerror}") from None
            path, sha, size = staged.finish()
        return self.publish_staged(path, sha, size, options, actor)

    def publish_archive(self, archive: Path, options: PublishConfig, actor: str) -> tuple[dict[str, Any], bool]:
        """Publish a bundle archive file (an uncompressed tar, as `publish_folder` writes)."""
        with self.stage_upload() as staged, Path(archive).open("rb") as src:
            while chunk := src.read(1 << 20):
                staged.write(chunk)
            path, sha, size = staged.finish()
        return self.publish_staged(path, sha, size, options, actor)

    def publish_staged(self, staged: Path, sha: str, size: int, options: PublishConfig,
                       actor: str) -> tuple[dict[str, Any], bool]:
        """Verify a staged archive (unpacked safely, then read as a bundle, signature included when the registry
        has trusted keys), move it into the store and file it. The staged file is consumed either way."""
        try:
            existing = self._bundle_row(sha)
            if existing is not None:
                _same_filing(existing, options)
                return existing, False
            facts = self._verify_archive(staged)
            self.store.put(sha, staged)  # before the row: a row never names a missing archive
            try:
                record = self._file_bundle(sha, size, facts, options, actor)
            except BaseException:
                if self._bundle_row(sha) is None:  # (another publish of the same bytes may have filed it meanwhile)
                    self.store.delete(sha)
                raise
            return record, True
        finally:
            Path(staged).unlink(missing_ok=True)

    def _verify_archive(self, staged: Path) -> dict[str, Any]:
        workdir = Path(tempfile.mkdtemp(prefix=".up-verify-", dir=self.store.staging_dir()))
        try:
            folder = workdir / "bundle"
            try:
                with Path(staged).open("rb") as src:
                    extract_archive(src, folder, self.max_bundle_bytes, where="the uploaded archive")
            except OSError as exc:
                if exc.errno in FULL:
                    raise StoreError(full_message(self.store.staging_dir(), exc)) from None
                raise StoreError(f"cannot unpack the upload in {self.store.staging_dir()}: {exc.strerror}") from None
            bundle = open_bundle(folder, trust=self.trust)
            manifest = bundle.manifest
            raw = (folder / MANIFEST).read_bytes()
            return {"manifest": manifest, "manifest_sha256": hashlib.sha256(raw).hexdigest(),
                    "signed_by": bundle.signed_by, "files_bytes": sum(f.bytes for f in manifest.files.values())}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _file_bundle(self, sha: str, size: int, facts: dict[str, Any], options: PublishConfig, actor: str) -> dict[str, Any]:
        manifest = facts["manifest"]
        variant = options.variant or manifest.profile
        now = self.clock()
        with self.db.transaction() as tx:
            release = options.release or _next_release(tx, manifest.name)
            taken = tx.one("SELECT sha256 FROM bundles WHERE name = ? AND release = ? AND variant = ?",
                           (manifest.name, release, variant))
            if taken is not None:
                raise Conflict(f"{manifest.name} release {release} variant {variant} is already published with other "
                               f"bytes ({taken['sha256'][:16]}); publish these under another --release or --variant")
            tx.execute(f"INSERT INTO bundles ({BUNDLE_COLUMNS}, manifest) VALUES ({', '.join('?' * 16)})", (
                sha, manifest.name, release, variant, facts["manifest_sha256"], size, manifest.family, manifest.engine,
                manifest.task, manifest.profile, json.dumps(list(options.isa)),
                options.memory_bytes or facts["files_bytes"], facts["signed_by"], now, actor, manifest.to_json()))
            self.log_event(tx, actor, "bundle.published", f"bundle:{sha}",
                           f"{manifest.name} release {release} variant {variant}",
                           {"name": manifest.name, "release": release, "variant": variant, "size_bytes": size,
                            "signed_by": facts["signed_by"]})
        return self.bundle(sha)

    def _bundle_row(self, sha: str) -> dict[str, Any] | None:
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {BUNDLE_COLUMNS} FROM bundles WHERE sha256 = ?", (sha,))
        return None if row is None else _bundle_record(row)

    def bundle(self, sha: str, with_manifest: bool = False) -> dict[str, Any]:
        check_sha256(sha)
        with self.db.transaction(write=False) as tx:
            extra = ", manifest" if with_manifest else ""
            row = tx.one(f"SELECT {BUNDLE_COLUMNS}{extra} FROM bundles WHERE sha256 = ?", (sha,))
        if row is None:
            raise NotFound(f"no bundle {sha} in the registry (GET /v1/bundles lists them)")
        return _bundle_record(row)

    def bundles(self, name: str | None = None, release: str | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if release is not None:
            where.append("release = ?")
            params.append(release)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.db.transaction(write=False) as tx:
            rows = tx.all(f"SELECT {BUNDLE_COLUMNS} FROM bundles{clause} ORDER BY name, published_at, variant", params)
        return [_bundle_record(r) for r in rows]

    # -- policies ------------------------------------------------------------------------------------
    def publish_policy(self, upload: PolicyUpload, actor: str) -> tuple[dict[str, Any], bool]:
        """Validate a policy file (and its signature, when the registry has trusted keys) and file it by the
        sha256 of its bytes. (record, True when newly published)"""
        from edgeslm.formats.signing import POLICY_SIGNATURE_SUFFIX, verify_policy
        from edgeslm.runtime.tiers.policy import load_policy

        self.check_can_publish()
        raw = upload.policy.encode("utf-8", "surrogatepass")
        sha = hashlib.sha256(raw).hexdigest()
        with tempfile.TemporaryDirectory(prefix=".up-policy-", dir=self.store.staging_dir()) as tmp:
            path = Path(tmp) / "policy.json"
            path.write_bytes(raw)
            if upload.signature is not None:
                (Path(tmp) / f"policy.json{POLICY_SIGNATURE_SUFFIX}").write_bytes(
                    upload.signature.encode("utf-8", "surrogatepass"))
            try:  # the signature first: nothing parses untrusted bytes before they are known to be vouched for
                signed_by = verify_policy(path, self.trust) if self.trust is not None else None
                policy = load_policy(path)  # PolicyError (a ConfigError) names what is wrong
            except (ConfigError, BundleError) as exc:  # (SignatureError is a BundleError) named as the caller knows it
                raise type(exc)(str(exc).replace(str(path), "the uploaded policy")) from None
        with self.db.transaction() as tx:
            if tx.one("SELECT sha256 FROM policies WHERE sha256 = ?", (sha,)) is not None:
                created = False
            else:
                tx.execute(f"INSERT INTO policies ({POLICY_COLUMNS}, body, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (sha, policy.digest(), signed_by, len(raw), self.clock(), actor, upload.policy, upload.signature))
                self.log_event(tx, actor, "policy.published", f"policy:{sha}", f"policy {sha[:16]}",
                               {"size_bytes": len(raw), "signed_by": signed_by})
                created = True
        return self.policy(sha), created

    def policy(self, sha: str, with_body: bool = False) -> dict[str, Any]:
        check_sha256(sha)
        extra = ", body, signature" if with_body else ""
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {POLICY_COLUMNS}{extra} FROM policies WHERE sha256 = ?", (sha,))
        if row is None:
            raise NotFound(f"no policy {sha} in the registry (GET /v1/policies lists them)")
        return row

    def policies(self) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            return tx.all(f"SELECT {POLICY_COLUMNS} FROM policies ORDER BY published_at")


def _bundle_record(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, "isa": json.loads(row["isa"])}
    if "manifest" in out:
        out["manifest"] = json.loads(out["manifest"])
    return out


def _next_release(tx: Any, name: str) -> str:
    """One more than the highest integer release of `name` ("1" for a new name); labels like "2026-12" are skipped."""
    rows = tx.all("SELECT DISTINCT release FROM bundles WHERE name = ?", (name,))
    numbers = [int(r["release"]) for r in rows if is_decimal(r["release"]) and len(r["release"]) < 12]
    return str(max(numbers, default=0) + 1)


def _same_filing(existing: dict[str, Any], options: PublishConfig) -> None:
    """Publishing the same bytes again is a no-op, unless it asks to file them differently."""
    asked = {"release": options.release, "variant": options.variant,
             "isa": list(options.isa) or None, "memory_bytes": options.memory_bytes}
    differs = [k for k, v in asked.items() if v is not None and v != existing[k]]
    if differs:
        raise Conflict(f"this archive is already published as {existing['name']} release {existing['release']} variant "
                       f"{existing['variant']} ({existing['sha256'][:16]}), with other {', '.join(differs)}; the same bytes "
                       "are filed once")
