"""What a download holds per file, and what it reports: the file model shared by the
download, its connections (``nntp.lanes``), repair (``nntp.fetch``) and readers
(``nntp.media``). ``nntp.download`` re-exports these names."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sabctools

from nntp.errors import NntpError
from nntp.names import names_a_media_part
from nntp.nzb import NzbFile
from nntp.par2 import Par2Kind, par2_kind_in_name
from nntp.rangeset import RangeSet
from nntp.scheduler import SegmentTask

# yEnc grows data by ~2 % plus headers; used to guess sizes before the first reply.
YENC_OVERHEAD = 1.03

# What to do with a file at the start: download it, park it until asked for, or fetch its
# first segment and decide by content ("probe": the name says nothing).
Selection = Literal["fetch", "park", "probe"]


class DownloadError(NntpError):
    """The download cannot go on (every server refused, the disk failed)."""


@dataclass(eq=False)
class FileTask:
    index: int
    nzb_file: NzbFile
    path: Path
    tasks: list[SegmentTask]
    ranges: RangeSet = field(default_factory=RangeSet)
    size: int | None = None  # from =ybegin size=, once a reply arrived
    part_size: int | None = None  # decoded bytes of a full (non-last) part
    selected: bool = True
    probing: bool = False  # its first segment decides whether it is selected
    par2: Par2Kind | None = None  # by name, or by content once probed
    writer: sabctools.FileWriter | None = None
    failed: set[int] = field(default_factory=set)
    # NZB sizes summed segment by segment, for estimates before the first reply.
    _cumulative: list[int] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.nzb_file.name

    @property
    def estimated_size(self) -> int:
        if self.size is not None:
            return self.size
        return int(self.cumulative[-1] / YENC_OVERHEAD)

    @property
    def cumulative(self) -> list[int]:
        """NZB sizes summed segment by segment (computed once: files have thousands)."""
        if len(self._cumulative) != len(self.tasks) + 1:
            self._cumulative = list(
                itertools.accumulate((t.segment.bytes for t in self.tasks), initial=0)
            )
        return self._cumulative

    @property
    def complete(self) -> bool:
        return self.size is not None and self.ranges.contains(0, self.size)

    def offset_of(self, index: int) -> int:
        """Where segment ``index`` starts (exact for uniform parts, estimated before)."""
        if self.part_size:
            return index * self.part_size
        cumulative = self.cumulative
        total = cumulative[-1] or 1
        return int(cumulative[min(index, len(self.tasks))] / total * self.estimated_size)

    def tasks_for(self, start: int, end: int) -> list[SegmentTask]:
        """The segments that cover [start, end), by estimate; callers loop until served."""
        n = len(self.tasks)
        if n == 0 or end <= start:
            return []
        if self.part_size:
            first = min(n - 1, start // self.part_size)
            last = min(n - 1, (end - 1) // self.part_size)
        else:
            first = 0
            while first + 1 < n and self.offset_of(first + 1) <= start:
                first += 1
            last = first
            while last + 1 < n and self.offset_of(last + 1) < end:
                last += 1
        return self.tasks[first : last + 1]


@dataclass(frozen=True)
class FileResult:
    name: str
    path: str
    size: int
    complete: bool
    missing_segments: int


@dataclass(frozen=True)
class DownloadResult:
    bytes: int  # decoded bytes fetched in this run (resumed bytes not counted)
    seconds: float
    files: tuple[FileResult, ...]
    missing_segments: int
    server_errors: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.missing_segments == 0 and all(f.complete for f in self.files)


@dataclass
class Progress:
    bytes_done: int = 0  # on disk, all runs
    bytes_total: int = 0
    bytes_this_run: int = 0
    speed_bps: float = 0.0


def default_selection(nzb_file: NzbFile) -> Selection:
    """Everything but PAR2 recovery volumes, which are fetched only when a repair needs them.

    Files whose names do not say they are a video, a RAR volume or a PAR2 file (obfuscated
    posts) are probed: a recovery volume is known by its packets, not by its name.
    """
    name = nzb_file.name
    if par2_kind_in_name(name) == "volume":
        return "park"
    return "fetch" if names_a_media_part(name) else "probe"
