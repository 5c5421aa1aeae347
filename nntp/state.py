"""The persisted record of a download: which segments and byte ranges are on disk.

A small JSON file beside the downloaded files, replaced atomically, so a download that is
stopped or killed resumes without fetching again what it had. It is written only after the
bytes it describes were handed to the kernel, so a killed process never claims bytes it
did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nntp.nzb import Nzb

STATE_VERSION = 1


def nzb_fingerprint(nzb: Nzb) -> str:
    """Identifies an NZB's content (its message-ids), not its file name or formatting."""
    h = hashlib.sha256()
    for f in nzb.files:
        h.update(f.name.encode() + b"\0")
        for s in f.segments:
            h.update(s.message_id.encode() + b"\n")
    return h.hexdigest()


def compress_indexes(indexes: Iterable[int]) -> list[list[int]]:
    """[0,1,2,5,6] -> [[0,3],[5,7]]"""
    runs: list[list[int]] = []
    for i in sorted(indexes):
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


def expand_indexes(runs: object, limit: int) -> set[int]:
    out: set[int] = set()
    if not isinstance(runs, list):
        return out
    for run in runs:
        if (
            isinstance(run, list)
            and len(run) == 2
            and all(isinstance(x, int) for x in run)
            and 0 <= run[0] < run[1] <= limit
        ):
            out.update(range(run[0], run[1]))
    return out


@dataclass(slots=True)
class FileRecord:
    name: str
    size: int | None = None
    part_size: int | None = None
    done: set[int] = field(default_factory=set)  # segment indexes on disk
    ranges: list[list[int]] = field(default_factory=list)


@dataclass(slots=True)
class DownloadState:
    fingerprint: str
    files: dict[str, FileRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "nzb": self.fingerprint,
            "files": [
                {
                    "name": r.name,
                    "size": r.size,
                    "part_size": r.part_size,
                    "done": compress_indexes(r.done),
                    "ranges": r.ranges,
                }
                for r in self.files.values()
            ],
        }


def save_state(path: Path, state: DownloadState) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), separators=(",", ":")))
    os.replace(tmp, path)


def load_state(
    path: Path, fingerprint: str, segment_counts: Sequence[tuple[str, int]]
) -> DownloadState:
    """The saved state if it belongs to this NZB, else an empty one. Never raises on a
    damaged file: a bad state costs a re-download, not a failure."""
    state = DownloadState(fingerprint)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return state
    if (
        not isinstance(raw, dict)
        or raw.get("version") != STATE_VERSION
        or raw.get("nzb") != fingerprint
    ):
        return state
    counts = dict(segment_counts)
    for item in raw.get("files") or []:
        if not isinstance(item, dict) or item.get("name") not in counts:
            continue
        name = str(item["name"])
        size = item.get("size")
        part = item.get("part_size")
        ranges = item.get("ranges")
        state.files[name] = FileRecord(
            name=name,
            size=size if isinstance(size, int) and size >= 0 else None,
            part_size=part if isinstance(part, int) and part > 0 else None,
            done=expand_indexes(item.get("done"), counts[name]),
            ranges=ranges if isinstance(ranges, list) else [],
        )
    return state
