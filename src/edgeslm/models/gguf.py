"""A GGUF header reader: validates magic, version and every length against the file before trusting
it, and returns the metadata key/values and tensor count. No torch; the device side uses it too.

Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
then kv_count entries of (string key, u32 value_type, value). Strings are u64 length + UTF-8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edgeslm.errors import ModelNotFoundError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# value type id -> struct format of a scalar
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
MAX_KV = 1 << 20
MAX_STRING = 1 << 24


@dataclass(frozen=True)
class GgufHeader:
    version: int
    tensor_count: int
    metadata: dict[str, Any]

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))


class _Reader:
    def __init__(self, fh: BinaryIO, size: int, path: Path):
        self.fh, self.size, self.path = fh, size, path

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelNotFoundError(f"{self.path}: truncated GGUF file (wanted {n} bytes at offset {self.fh.tell()})")
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > min(MAX_STRING, self.size):
            raise ModelNotFoundError(f"{self.path}: corrupt or truncated GGUF file (string of {n} bytes)")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True) -> Any:
        if vtype in SCALARS:
            return self.scalar(SCALARS[vtype])
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            item_type, count = self.scalar("<I"), self.scalar("<Q")
            if count > self.size:
                raise ModelNotFoundError(f"{self.path}: corrupt or truncated GGUF file (array of {count} items)")
            items = [self.value(item_type) for _ in range(count)]
            return items if len(items) <= 64 else {"array_of": len(items)}  # keep vocabularies out of the summary
        raise ModelNotFoundError(f"{self.path}: corrupt or truncated GGUF file (unknown value type {vtype})")


def read_header(path: Path) -> GgufHeader:
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        r = _Reader(fh, size, path)
        if r.take(4) != MAGIC:
            raise ModelNotFoundError(f"{path}: not a GGUF file (bad magic)")
        version = r.scalar("<I")
        if version not in SUPPORTED_VERSIONS:
            raise ModelNotFoundError(f"{path}: GGUF version {version} is not supported (reads {SUPPORTED_VERSIONS})")
        tensor_count, kv_count = r.scalar("<Q"), r.scalar("<Q")
        if kv_count > MAX_KV:
            raise ModelNotFoundError(f"{path}: corrupt or truncated GGUF file ({kv_count} metadata entries)")
        metadata = {}
        for _ in range(kv_count):
            key = r.string()
            metadata[key] = r.value(r.scalar("<I"))
    return GgufHeader(version=version, tensor_count=tensor_count, metadata=metadata)
