"""Which child processes a test left behind, read from /proc (zombies included)."""

from __future__ import annotations

import os
from pathlib import Path


def children_named(name: str) -> list[int]:
    """Pids of processes called ``name`` whose parent is this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm == name:
            found.append(int(entry))
    return found
