"""What this CPU can do, read from /proc/cpuinfo (Linux) without extra packages."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_vnni() -> bool:
    """int8 dot products without the u8*s8 saturation that makes 8-bit weights overflow on
    AVX2/AVX-512 without VNNI (why ORT offers reduce_range=7-bit weights there)."""
    return bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


def isa_summary() -> dict[str, object]:
    flags = cpu_flags()
    return {
        "machine": platform.machine(),
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "vnni": has_vnni(),
        "neon": bool({"asimd", "neon"} & flags),
        "dotprod": "asimddp" in flags,
    }
