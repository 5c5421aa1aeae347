"""Which byte ranges of a file are on disk, and readers that wait for the rest."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Iterator

from nntp.errors import SegmentsMissing


class RangeSet:
    """Disjoint half-open intervals [start, end), merged as they are added.

    Readers call ``await wait(start, end)``; it returns once every byte of the range is
    present, or raises SegmentsMissing if part of it was declared unobtainable.
    """

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._failed: list[tuple[int, int]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        for start, end in ranges:
            self.add(start, end)

    # -- queries -----------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    @property
    def total(self) -> int:
        return sum(e - s for s, e in self)

    def contains(self, start: int, end: int) -> bool:
        """True when every byte of [start, end) is present (an empty range always is)."""
        if end <= start:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def available_from(self, start: int) -> int:
        """How many contiguous bytes are present from ``start`` on (0 if ``start`` is missing)."""
        i = bisect.bisect_right(self._starts, start) - 1
        if i < 0 or self._ends[i] <= start:
            return 0
        return self._ends[i] - start

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The missing sub-ranges of [start, end)."""
        out: list[tuple[int, int]] = []
        pos = start
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while pos < end and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if e <= pos:
                i += 1
                continue
            if s > pos:
                out.append((pos, min(s, end)))
            pos = max(pos, e)
            i += 1
        if pos < end:
            out.append((pos, end))
        return out

    # -- changes -----------------------------------------------------------------
    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        lo = bisect.bisect_left(self._ends, start)  # first interval that could touch
        hi = bisect.bisect_right(self._starts, end)  # one past the last that could touch
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]
        self._wake()

    def fail(self, start: int, end: int) -> None:
        """Declare [start, end) unobtainable: waiters overlapping it get SegmentsMissing."""
        self._failed.append((start, end))
        self._wake()

    def clear_failures(self) -> None:
        """After a repair the bytes may come after all."""
        self._failed.clear()

    def cancel_waiters(self, exc: BaseException) -> None:
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters.clear()

    async def wait(self, start: int, end: int) -> None:
        if self.contains(start, end):
            return
        self._check_failed(start, end)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (start, end, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _check_failed(self, start: int, end: int) -> None:
        for fs, fe in self._failed:
            if fs < end and start < fe and self.gaps(max(fs, start), min(fe, end)):
                raise SegmentsMissing(
                    f"bytes {max(fs, start)}-{min(fe, end) - 1} are missing on every server"
                )

    def _wake(self) -> None:
        if not self._waiters:
            return
        keep: list[tuple[int, int, asyncio.Future[None]]] = []
        for start, end, fut in self._waiters:
            if fut.done():
                continue
            if self.contains(start, end):
                fut.set_result(None)
                continue
            try:
                self._check_failed(start, end)
            except SegmentsMissing as exc:
                fut.set_exception(exc)
                continue
            keep.append((start, end, fut))
        self._waiters = keep

    # -- persistence -------------------------------------------------------------
    def to_list(self) -> list[list[int]]:
        return [[s, e] for s, e in self]

    @classmethod
    def from_list(cls, data: object) -> RangeSet:
        if not isinstance(data, list):
            raise ValueError("ranges must be a list")
        out = cls()
        for item in data:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not all(isinstance(x, int) and x >= 0 for x in item)
            ):
                raise ValueError(f"bad range {item!r}")
            out.add(item[0], item[1])
        return out
