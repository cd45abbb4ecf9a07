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
# Arrays of arrays are legal GGUF (llama.cpp writes none deeper than 2); past this a file is a depth
# bomb: 12 bytes a level, 100,000 levels in 1.2 MB used to raise RecursionError.
MAX_ARRAY_DEPTH = 16
SUMMARY_ITEMS = 64  # longer arrays (vocabularies, merges) are counted, not kept
# The fewest bytes one item of a type takes: a count bigger than the bytes left / this is a lie
# told before any allocation. An array item is its own item type (u32) and count (u64).
MIN_BYTES = {**{t: struct.calcsize(f) for t, f in SCALARS.items()}, STRING: 8, ARRAY: 12}
MIN_TENSOR_INFO = 24  # u64 name length, u32 n_dims, u32 type, u64 offset


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

    def left(self) -> int:
        return self.size - self.fh.tell()

    def corrupt(self, what: str) -> ModelNotFoundError:
        return ModelNotFoundError(f"{self.path}: corrupt or truncated GGUF file ({what} at offset {self.fh.tell()})")

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelNotFoundError(f"{self.path}: truncated GGUF file (wanted {n} bytes at offset {self.fh.tell()})")
        return data

    def skip(self, n: int) -> None:
        if n > self.left():
            raise ModelNotFoundError(f"{self.path}: truncated GGUF file (wanted {n} bytes at offset {self.fh.tell()})")
        self.fh.seek(n, 1)

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self, keep: bool = True) -> str:
        n = self.scalar("<Q")
        if n > self.left() or (keep and n > MAX_STRING):
            raise self.corrupt(f"string of {n} bytes")
        if not keep:
            self.skip(n)
            return ""
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True, depth: int = 0) -> Any:
        if vtype in SCALARS:  # (arrays skip their scalars in one seek when not kept)
            return self.scalar(SCALARS[vtype])
        if vtype == STRING:
            return self.string(keep)
        if vtype == ARRAY:
            return self.array(keep, depth + 1)
        raise self.corrupt(f"unknown value type {vtype}")

    def array(self, keep: bool, depth: int) -> Any:
        if depth > MAX_ARRAY_DEPTH:
            raise self.corrupt(f"arrays nested deeper than {MAX_ARRAY_DEPTH}")
        item_type, count = self.scalar("<I"), self.scalar("<Q")
        if item_type not in MIN_BYTES:
            raise self.corrupt(f"unknown array item type {item_type}")
        if count * MIN_BYTES[item_type] > self.left():
            raise self.corrupt(f"array of {count} items in {self.left()} bytes")
        keep = keep and count <= SUMMARY_ITEMS  # a vocabulary is walked (strings vary in length), not kept
        if not keep and item_type in SCALARS:
            self.skip(count * MIN_BYTES[item_type])
        else:
            items = [self.value(item_type, keep, depth) for _ in range(count)]
        return items if keep else {"array_of": count}


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
        if kv_count > MAX_KV or kv_count * (MIN_BYTES[STRING] + 4) > r.left():
            raise r.corrupt(f"{kv_count} metadata entries")
        metadata = {}
        for _ in range(kv_count):
            key = r.string()
            metadata[key] = r.value(r.scalar("<I"))
        if tensor_count * MIN_TENSOR_INFO > r.left():
            raise r.corrupt(f"{tensor_count} tensors in {r.left()} bytes")
    return GgufHeader(version=version, tensor_count=tensor_count, metadata=metadata)
