"""A span of a movie as a file object that reads from disk as it is read: the request body of
one part, so that nothing holds a part in memory while it is sent.

Given bytes, botocore wraps them in a ``BytesIO`` and aiohttp copies that whole before it
sends it: two copies of every part in flight (and glibc keeps the freed 8 MiB blocks). Given
a file object, aiohttp reads it in chunks of 256 KiB, each in its executor (never on the
event loop), and waits for the socket to take one before it reads the next.

The span may lie in several files (the volumes of a store-mode RAR set read in place). Each
read opens, reads and closes: a read of a failed attempt that is still running in the
executor touches no descriptor that was closed or reused since. Links are never followed.
"""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from nntp.media import Piece

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class SpanBody(io.RawIOBase):
    """The bytes of ``pieces`` one after the other: read-only and seekable.

    A file shorter than its piece says is an ``OSError``, never short content; the first
    such error is kept in ``error`` (the HTTP client hides it in a connection error).
    """

    def __init__(self, pieces: Sequence[Piece]) -> None:
        super().__init__()
        self._pieces = tuple(pieces)
        self._starts = [0, *accumulate(p.length for p in self._pieces)]
        self.size = self._starts[-1]
        self._pos = 0
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the position (all that is left when negative)."""
        self._check_open()
        left = max(0, self.size - self._pos)
        want = left if size is None or size < 0 else min(size, left)
        # One piece (the usual case) is one pread, no copy; a volume boundary is joined.
        data = b"".join(self._read_span(path, at, n, None) for path, at, n in self._spans(want))
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill ``buffer`` (to hash with one reused buffer); 0 at the end."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        done = 0
        for path, at, n in self._spans(min(len(view), max(0, self.size - self._pos))):
            self._read_span(path, at, n, view[done : done + n])
            done += n
        self._pos += done
        return done

    def _spans(self, want: int) -> Iterator[tuple[str, int, int]]:
        """(path, offset in it, length) covering ``want`` bytes from the position."""
        start, end = self._pos, self._pos + want
        i = bisect.bisect_right(self._starts, start) - 1
        while start < end and i < len(self._pieces):
            piece = self._pieces[i]
            skip = start - self._starts[i]
            n = min(piece.length - skip, end - start)
            yield piece.path, piece.offset + skip, n
            start += n
            i += 1

    def _read_span(self, path: str, offset: int, length: int, into: memoryview | None) -> bytes:
        """``length`` bytes at ``offset`` of ``path``: returned, or put ``into`` a view."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if into is None:
                    data = os.pread(fd, length, offset)
                    got = len(data)
                else:
                    data, got = b"", os.preadv(fd, [into], offset)
            finally:
                os.close(fd)
            if got != length:
                raise OSError(f"{Path(path).name} is shorter than expected")
        except OSError as exc:
            self.error = self.error or exc
            raise
        return data

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
