"""A PNG is valid when its signature, every chunk's CRC and its IHDR..IEND order are right, and an
independent decoder (Pillow) reads all its pixels."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path) -> tuple[int, int]:
    """(width, height) of a valid PNG; AssertionError otherwise."""
    data = Path(path).read_bytes()
    assert data.startswith(SIGNATURE), f"{path}: not a PNG signature"
    at, kinds = len(SIGNATURE), []
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + chunk) == crc, f"{path}: bad CRC in {kind!r}"
        kinds.append(kind)
        at += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds, kinds
    width, height = struct.unpack(">II", data[16:24])
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decodes every row: a truncated or corrupt IDAT raises here
        assert image.size == (width, height)
    return width, height
