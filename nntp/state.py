"""The persisted record of a download: which segments and byte ranges are on disk.

A small file beside the downloaded files, so a download that is stopped or killed resumes
without fetching again what it had. Each save is written only after the bytes it
describes were handed to the kernel, so a killed process never claims bytes it did not
write.

The engine saves often (after every 1/64 of a download), so a save must cost next to
nothing: each one appends a JSON line to the file, and the last complete line that parses
is the state. A kill mid-append leaves a torn last line, which is skipped. Replacing the
file on every save (write a copy, rename it over) would cost ~0.5 ms each on ext4, which
flushes a file renamed over another, and longer on a disk busy with the download; the
log is replaced that way only when it has grown. Segments are kept as runs of indexes, so
a save costs the same for a file of 70,000 segments as for one of ten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nntp.nzb import Nzb
from nntp.rangeset import RangeSet

STATE_VERSION = 1
# The log is rewritten to its last line when it would pass this many lines' worth of bytes
# (and at least COMPACT_MIN_BYTES): rare, so its rename costs nothing that matters.
COMPACT_LINES = 64
COMPACT_MIN_BYTES = 256 * 1024


def nzb_fingerprint(nzb: Nzb) -> str:
    """Identifies an NZB's content (its message-ids), not its file name or formatting."""
    h = hashlib.sha256()
    for f in nzb.files:
        h.update(f.name.encode() + b"\0")
        for s in f.segments:
            h.update(s.message_id.encode() + b"\n")
    return h.hexdigest()


def index_runs(runs: object, limit: int) -> RangeSet:
    """Segment indexes as saved, [[0,3],[5,7]]: the valid runs below ``limit``."""
    out = RangeSet()
    if not isinstance(runs, list):
        return out
    for run in runs:
        if (
            isinstance(run, list)
            and len(run) == 2
            and all(isinstance(x, int) for x in run)
            and 0 <= run[0] < run[1] <= limit
        ):
            out.add(run[0], run[1])
    return out


@dataclass(slots=True)
class FileRecord:
    name: str
    size: int | None = None
    part_size: int | None = None
    # Segment indexes on disk, as runs (a RangeSet of indexes rather than of bytes).
    done: RangeSet = field(default_factory=RangeSet)
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
                    "done": r.done.to_list(),
                    "ranges": r.ranges,
                }
                for r in self.files.values()
            ],
        }


class StateFile:
    """Appends states to the file at ``path``; see the module docstring. Not thread-safe:
    the engine saves from its event loop only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0

    def save(self, state: DownloadState) -> None:
        """Record ``state``; raises OSError (the file is then rewritten on the next save)."""
        line = (json.dumps(state.to_json(), separators=(",", ":")) + "\n").encode()
        limit = max(COMPACT_MIN_BYTES, COMPACT_LINES * len(line))
        if self._fd is None or self._size + len(line) > limit:
            self._replace(line)
            return
        try:
            written = os.write(self._fd, line)
        except OSError:
            self.close()
            raise
        self._size += written
        if written != len(line):  # a torn line: the next save starts a clean file
            self.close()

    def _replace(self, line: bytes) -> None:
        """Start the log afresh with one line, atomically (write a copy, rename it over)."""
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def load_state(
    path: Path, fingerprint: str, segment_counts: Sequence[tuple[str, int]]
) -> DownloadState:
    """The last state saved in the file if it belongs to this NZB, else an empty one. Never
    raises on a damaged file: a bad state costs a re-download, not a failure."""
    try:
        data = path.read_bytes()
    except OSError:
        return DownloadState(fingerprint)
    for line in reversed(data.splitlines()):
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # torn by a kill mid-append: the line before it holds
        return _parse_state(raw, fingerprint, segment_counts)
    return DownloadState(fingerprint)


def _parse_state(
    raw: object, fingerprint: str, segment_counts: Sequence[tuple[str, int]]
) -> DownloadState:
    state = DownloadState(fingerprint)
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
            done=index_runs(item.get("done"), counts[name]),
            ranges=ranges if isinstance(ranges, list) else [],
        )
    return state
