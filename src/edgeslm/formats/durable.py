"""Durable file changes: a rename or a new file survives a crash only once its folder is flushed too. The one owner of
that step for every writer (signatures and keys, the control plane's bundle store, the device agent's pointers)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries, so a rename or a file created in it is durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # the caller's own write into the folder already reported any real problem with it
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename is atomic and the file's data flushed either way
    finally:
        os.close(fd)
