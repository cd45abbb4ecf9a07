"""The bundle: a directory with manifest.json and the files it lists, each with its sha256."""

from edgeslm.bundle.manifest import FORMAT_VERSION, Manifest
from edgeslm.bundle.reader import open_bundle

__all__ = ["FORMAT_VERSION", "Manifest", "open_bundle"]
