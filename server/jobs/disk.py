"""The downloads' disk as the checks see it: before the first download its folder may not
exist yet, so the nearest folder that does stands for it. Blocking: call these in a
thread."""

from __future__ import annotations

import shutil
from pathlib import Path


def disk_usage(path: Path) -> tuple[Path, int, int]:
    """(the folder measured: ``path`` or its nearest existing parent, free bytes, total
    bytes) of the disk ``path`` is, or will be, on."""
    where = path
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    return where, usage.free, usage.total


def free_bytes(path: Path) -> int:
    """Free bytes on the disk ``path`` is, or will be, on."""
    return disk_usage(path)[1]
