"""A process's CPU and peak memory read from /proc, and its open-file limit raised: what the fleet simulator measures
the control plane, the broker and the agents with, and what a broker serving a fleet needs (a socket per device)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 for one that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of proc(5))


def peak_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def more_files(pid: int = 0) -> None:
    """Raise a process's soft limit on open files to its hard limit: a socket per device, and the usual default soft
    limit (1024) is below a fleet."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
