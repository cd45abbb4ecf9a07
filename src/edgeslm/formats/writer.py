"""Write a bundle: stage every file in a temporary folder next to the target, hash them, write the
manifest last, then move the folder into place. A failure (a full disk included) leaves any
previous bundle at the target untouched and no half-written one behind."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeslm import __version__
from edgeslm.errors import BundleError
from edgeslm.formats.hashing import sha256_file
from edgeslm.formats.manifest import FORMAT, MANIFEST, FileEntry, Manifest, required_version
from edgeslm.formats.signing import check_not_private_key


class BundleWriter:
    """with BundleWriter(out) as w: w.add(...); w.finish(**manifest fields)"""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.done = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if not self.done:
            shutil.rmtree(self.stage, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to write a file that the bundle will carry."""
        target = self.stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add(self, source: Path, name: str) -> Path:
        try:
            return Path(shutil.copyfile(source, self.path(name)))
        except OSError as exc:
            raise BundleError(f"cannot write {name} into the bundle: {exc.strerror}") from None

    def finish(self, **fields: Any) -> Manifest:
        staged = [p for p in sorted(self.stage.rglob("*")) if p.is_file()]
        for p in staged:  # a bundle is copied to every device: a signing key must never ride along
            check_not_private_key(p, str(p.relative_to(self.stage)), str(self.out))
        files = {str(p.relative_to(self.stage)): FileEntry(sha256_file(p), p.stat().st_size) for p in staged}
        manifest = Manifest(
            format=FORMAT,
            format_version=required_version(fields.get("engine", ""), fields),  # older devices read what needs nothing newer
            files=files,
            created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            edgeslm_version=__version__,
            **fields,
        )
        manifest.check()
        try:
            (self.stage / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        except OSError as exc:
            raise BundleError(f"cannot write bundle {self.out}: {exc.strerror}") from None
        self._swap()
        self.done = True
        return manifest

    def _swap(self) -> None:
        """Move the staged folder to the target; on failure the previous bundle goes back where it was."""
        old = self.out.with_name(f".{self.out.name}.old")
        moved = False
        try:
            if self.out.exists():
                shutil.rmtree(old, ignore_errors=True)
                self.out.rename(old)
                moved = True
            self.stage.rename(self.out)
        except OSError as exc:
            shutil.rmtree(self.stage, ignore_errors=True)
            message = f"cannot write bundle {self.out}: {exc.strerror}"
            if moved:
                try:
                    old.rename(self.out)
                except OSError:
                    message += f"; the previous bundle is at {old}: move it back by hand"
            raise BundleError(message) from None
        shutil.rmtree(old, ignore_errors=True)
