"""The file formats, torch-free and shared by both sides: the bundle (a directory with
manifest.json and the files it lists, each with its sha256) and the GGUF header."""

from edgeslm.formats.manifest import FORMAT_VERSION, Manifest
from edgeslm.formats.reader import open_bundle

__all__ = ["FORMAT_VERSION", "Manifest", "open_bundle"]
