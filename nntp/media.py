"""Readable views over partial downloads: the bytes of one movie, wherever they sit on disk.

A ``MediaView`` is what the range server reads through. It maps a range of the movie's
bytes to ``Piece``\\ s of files on disk (``pieces``), says how much is already there
(``available``), waits for what is not while moving it to the front of the download
(``wait``/``prioritise``), and reads (``read``). Two implementations:

* ``FileView``: one plain file of a ``Download``; its size is the ``=ybegin size=`` of
  the first reply, so it can be built once ``wait_size`` returned.
* ``RarView``: a file stored (method 0) in a RAR volume set whose volumes are files of the
  ``Download``; a media range maps to pieces of volumes (``RarEntry.locate``) and so to
  ranges of the download's files. ``open_rar_view`` builds one from the partial volumes:
  it reads just their headers as they arrive, orders the volumes (by headers, names may
  be obfuscated), assembles the set and picks the movie, or says why it cannot stream.

This module also holds the byte-level helpers the post picker (``nntp.pick``) uses: waiting
for exact byte ranges without read-ahead, reading them, and telling a container by its
magic bytes (``sniff``) and its content type.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, TypeVar

from nntp.download import DEFAULT_READAHEAD, Download, DownloadError, FileTask
from nntp.errors import SegmentsMissing
from nntp.names import VIDEO_EXTENSIONS, extension, safe_filename
from nntp.rar import (
    RAR4_SIGNATURE,
    RAR5_SIGNATURE,
    RarEntry,
    RarError,
    RarVolumeInfo,
    VolumeScanner,
    assemble,
    volume_order,
)
from nntp.scheduler import State
from nntp.state import nzb_fingerprint

__all__ = [
    "CONTENT_TYPES",
    "HEAD_BYTES",
    "OCTET_STREAM",
    "VIDEO_EXTENSIONS",
    "FileView",
    "MediaView",
    "NotStreamableReason",
    "Piece",
    "RarNotStreamable",
    "RarView",
    "choose_entry",
    "content_type_for",
    "extension",
    "gather_all",
    "make_etag",
    "open_file_view",
    "open_rar_view",
    "read_bytes",
    "read_pieces",
    "scan_volume",
    "sniff",
    "wait_bytes",
    "wait_size",
]

OCTET_STREAM = "application/octet-stream"
CONTENT_TYPES = {
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "ts": "video/mp2t",
    "m2ts": "video/mp2t",
    "avi": "video/x-msvideo",
    "wmv": "video/x-ms-wmv",
}
# What ``sniff`` reports, as content types; "rar" and "par2" are not media.
_KIND_TYPES = {
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "ts": "video/mp2t",
    "avi": "video/x-msvideo",
    "wmv": "video/x-ms-wmv",
}

# How much of a file's beginning is enough to tell its container.
HEAD_BYTES = 4096
# A waiter re-prioritises this often: before a file's size is known the segments that
# cover a range are an estimate, so the request is renewed as bytes arrive.
# Header scans read at most this much of what is already on disk per step.
_SCAN_CHUNK = 64 * 1024


class Piece(NamedTuple):
    """``length`` bytes of the media at ``offset`` of the file at ``path``."""

    path: str
    offset: int
    length: int


class MediaView(Protocol):
    """The one interface the range server reads a movie through, downloaded or not.

    ``size`` is the final size, known before the bytes are; ``etag`` is stable for the job
    and the file (not the modification time). Ranges are half-open; offsets past ``size``
    are clamped to it, negative ones are a ``ValueError``.
    """

    # Read-only properties, so that plain attributes and properties both implement them.
    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def etag(self) -> str: ...

    def pieces(self, offset: int, length: int) -> list[Piece]:
        """Where the media bytes ``[offset, offset + length)`` lie on disk (pure mapping)."""
        ...

    def available(self, offset: int) -> int:
        """How many contiguous media bytes from ``offset`` on are on disk now."""
        ...

    async def wait(self, offset: int, end: int) -> None:
        """Until ``[offset, end)`` is on disk, prioritised meanwhile.

        Raises ``SegmentsMissing`` when part of it cannot be had from any server.
        """
        ...

    def prioritise(self, offset: int, end: int) -> Callable[[], None]:
        """Move ``[offset, end)`` plus read-ahead to the front; returns the release."""
        ...

    async def read(self, offset: int, length: int) -> bytes:
        """``wait`` for the bytes, then read them from disk (in a thread)."""
        ...


# -- magic bytes and content types -------------------------------------------------------

_PAR2_MAGIC = b"PAR2\0PKT"
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = b"\x42\x82"
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# Top-level ISO BMFF boxes that may come first in a QuickTime file without 'ftyp'.
_QT_FIRST_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_TS_PACKETS_CHECKED = 16
_TS_PACKETS_NEEDED = 3


def sniff(first_bytes: bytes | bytearray | memoryview) -> str | None:
    """What a file is by its first bytes: "mkv", "webm", "mp4", "mov", "ts", "avi", "wmv",
    "rar" (RAR4 or RAR5), "par2", or None when the bytes say nothing known.

    Give the first few KiB (an MPEG-TS needs three packets, 564 bytes, to be told).
    """
    b = bytes(first_bytes[:16384])
    if b.startswith(RAR5_SIGNATURE) or b.startswith(RAR4_SIGNATURE):
        return "rar"
    if b.startswith(_PAR2_MAGIC):
        return "par2"
    if b.startswith(_EBML_MAGIC):
        return "webm" if _ebml_doctype(b) == "webm" else "mkv"
    if len(b) >= 12 and b[4:8] == b"ftyp":
        return "mov" if b[8:12] == b"qt  " else "mp4"
    if len(b) >= 8 and b[4:8] in _QT_FIRST_BOXES:
        box_size = int.from_bytes(b[:4], "big")
        if box_size == 1 or box_size >= 8:  # 1: a 64-bit size follows
            return "mov"
    if len(b) >= 12 and b[:4] == b"RIFF" and b[8:12] == b"AVI ":
        return "avi"
    if b.startswith(_ASF_GUID):
        return "wmv"
    if _mpeg_ts(b, 0, 188) or _mpeg_ts(b, 4, 192):  # TS, or M2TS with its 4-byte timecodes
        return "ts"
    return None


def _mpeg_ts(b: bytes, first: int, stride: int) -> bool:
    # A packet is 188 bytes; M2TS puts a 4-byte timecode before each (stride 192).
    whole = (len(b) - first - 188) // stride + 1 if len(b) >= first + 188 else 0
    packets = min(_TS_PACKETS_CHECKED, whole)
    if packets < _TS_PACKETS_NEEDED:
        return False
    return all(b[first + i * stride] == 0x47 for i in range(packets))


def _ebml_vint(b: bytes, pos: int, *, keep_marker: bool = False) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``pos``: (value or None if invalid, next pos)."""
    if pos >= len(b) or b[pos] == 0:
        return None, pos
    first = b[pos]
    length = 9 - first.bit_length()
    if pos + length > len(b):
        return None, pos
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in b[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return None, pos  # "unknown size"
    return value, pos + length


def _ebml_doctype(b: bytes) -> str | None:
    size, pos = _ebml_vint(b, len(_EBML_MAGIC))
    if size is None:
        return None
    end = min(len(b), pos + size)
    while pos < end:
        element, body = _ebml_vint(b, pos, keep_marker=True)
        if element is None or body - pos > 4:
            return None
        length, data = _ebml_vint(b, body)
        if length is None:
            return None
        if b[pos:body] == _EBML_DOCTYPE:
            return b[data : data + length].rstrip(b"\0").decode("ascii", "replace")
        pos = data + length
    return None


def content_type_for(name: str, head: bytes | bytearray | memoryview = b"") -> str:
    """The content type of a movie: by its magic bytes when ``head`` tells, else by name."""
    kind = sniff(head) if head else None
    if kind is not None:
        return _KIND_TYPES.get(kind, OCTET_STREAM)
    return CONTENT_TYPES.get(extension(name), OCTET_STREAM)


def make_etag(seed: str, name: str, *, size: int) -> str:
    """A strong ETag for a movie from its identity: the job (``seed``), the movie's name and
    its size, '"<hash>-<size>"'.

    Nothing about where the bytes lie or whether they are all there yet goes in: the
    downloading view and the finished file of one movie hold the same bytes, so a player
    resuming with ``If-Range`` across the moment the job becomes ready gets its 206.
    """
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).hexdigest()[:24]
    return f'"{digest}-{size}"'


# -- bytes of a download's files ---------------------------------------------------------


def _raise_if_unobtainable(download: Download, f: FileTask, start: int, end: int) -> None:
    if download.failure is not None:
        raise download.failure
    if download.stopped:
        raise DownloadError("the download was stopped")
    if f.size is not None:
        covering = f.tasks_for(start, end)
        if covering and all(t.state is State.FAILED for t in covering):
            raise SegmentsMissing(f"{f.name}: bytes {start}-{end - 1} are missing on every server")


async def wait_bytes(download: Download, index: int, start: int, end: int) -> None:
    """Until bytes ``[start, end)`` of file ``index`` are on disk, prioritising exactly them.

    Unlike ``Download.wait_range`` nothing beyond the range is prioritised: header scans
    and content checks ask for a few bytes of many files and must not pull megabytes of
    read-ahead of each to the front. Raises ``SegmentsMissing`` (or the download's error).
    """
    _raise_if_unobtainable(download, download.files[index], start, end)
    await download.wait_range(index, start, end, readahead=0)


async def wait_size(download: Download, index: int) -> int:
    """The final size of file ``index`` (``=ybegin size=``), waiting for its first bytes.

    Raises ``SegmentsMissing`` when no segment of the file can be had.
    """
    f = download.files[index]
    if (size := _size_of(f)) is not None:
        return size
    try:
        await wait_bytes(download, index, 0, 1)
    except SegmentsMissing:
        # The head is missing everywhere; any other segment tells the size too: ask for
        # the first one that may still come, one at a time.
        while _size_of(f) is None:
            hopeful = [t for t in f.tasks if t.state is not State.FAILED]
            if not hopeful:
                raise
            _raise_if_unobtainable(download, f, 0, 0)
            at = f.offset_of(hopeful[0].index)
            release = download.prioritise(index, at, at + 1, readahead=0)
            try:
                await asyncio.sleep(0.05)
            finally:
                release()
    size = _size_of(f)
    if size is None:  # pragma: no cover - the bytes that arrived always carry the size
        raise SegmentsMissing(f"{f.name}: its size cannot be learnt")
    return size


def _size_of(f: FileTask) -> int | None:
    # A call, not an attribute read, so type narrowing does not outlive the awaits.
    return f.size


def read_bytes(path: str, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of a file (blocking: call it in a thread).

    Raises ``EOFError`` if the file is shorter: bytes said to be on disk must be there,
    and a short read must never pass for content.
    """
    out = bytearray()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # never through a link
    try:
        while len(out) < length:
            chunk = os.pread(fd, length - len(out), offset + len(out))
            if not chunk:
                raise EOFError(f"{path} ends before offset {offset + length}")
            out += chunk
    finally:
        os.close(fd)
    return bytes(out)


def read_pieces(pieces: Sequence[Piece]) -> bytes:
    """The bytes of ``pieces`` joined (blocking: call it in a thread)."""
    return b"".join(read_bytes(p.path, p.offset, p.length) for p in pieces)


def _clamp(offset: int, length: int, size: int) -> tuple[int, int]:
    if offset < 0 or length < 0:
        raise ValueError(f"invalid range: offset {offset}, length {length}")
    start = min(offset, size)
    return start, min(size, start + length)


# -- one plain file ------------------------------------------------------------------------


class FileView:
    """The bytes of one plain file of a download (an ``.mkv``, ``.mp4``, ...).

    Needs the file's size: build it after ``await wait_size(download, index)`` (or use
    ``open_file_view``, which also tells the content type by the magic bytes).
    ``name`` overrides the posted name (e.g. the real name from PAR2 for an obfuscated
    post); it is made safe. ``etag_seed`` identifies the job (default: the NZB's
    fingerprint).
    """

    def __init__(
        self,
        download: Download,
        index: int,
        *,
        etag_seed: str | None = None,
        name: str | None = None,
        content_type: str | None = None,
    ) -> None:
        f = download.files[index]
        if f.size is None:
            raise ValueError(f"the size of {f.name!r} is not known yet: await wait_size() first")
        self.download = download
        self.index = index
        self.path = str(f.path)
        self.name = (safe_filename(name) if name else None) or f.name
        self.size = f.size
        self.content_type = content_type or content_type_for(self.name)
        seed = etag_seed if etag_seed is not None else nzb_fingerprint(download.nzb)
        self.etag = make_etag(seed, self.name, size=self.size)
        self._file = f

    def __repr__(self) -> str:
        return f"FileView({self.name!r}, size={self.size})"

    def pieces(self, offset: int, length: int) -> list[Piece]:
        start, end = _clamp(offset, length, self.size)
        return [Piece(self.path, start, end - start)] if end > start else []

    def available(self, offset: int) -> int:
        if offset < 0 or offset >= self.size:
            return 0
        return min(self._file.ranges.available_from(offset), self.size - offset)

    async def wait(self, offset: int, end: int) -> None:
        start, stop = _clamp(offset, max(0, end - offset), self.size)
        if stop > start:
            await self.download.wait_range(self.index, start, stop)

    def prioritise(self, offset: int, end: int) -> Callable[[], None]:
        start, stop = _clamp(offset, max(0, end - offset), self.size)
        return self.download.prioritise(self.index, start, stop)

    async def read(self, offset: int, length: int) -> bytes:
        start, end = _clamp(offset, length, self.size)
        if end <= start:
            return b""
        await self.wait(start, end)
        return await asyncio.to_thread(read_bytes, self.path, start, end - start)


async def open_file_view(
    download: Download,
    index: int,
    *,
    etag_seed: str | None = None,
    name: str | None = None,
) -> FileView:
    """A ``FileView`` once the size and the first bytes are there; the type by magic bytes."""
    size = await wait_size(download, index)
    head_len = min(size, HEAD_BYTES)
    await wait_bytes(download, index, 0, head_len)
    head = await asyncio.to_thread(read_bytes, str(download.files[index].path), 0, head_len)
    view_name = (safe_filename(name) if name else None) or download.files[index].name
    return FileView(
        download,
        index,
        etag_seed=etag_seed,
        name=view_name,
        content_type=content_type_for(view_name, head),
    )


# -- a file stored in a RAR volume set -----------------------------------------------------


class RarView:
    """The bytes of a file stored (method 0, not encrypted) in RAR volumes of a download.

    ``volume_indexes_in_order`` are the download's file indexes of the volumes, first
    volume first, as given to ``assemble`` (``RarPiece.volume`` indexes into it).
    """

    def __init__(
        self,
        download: Download,
        volume_indexes_in_order: Sequence[int],
        entry: RarEntry,
        *,
        etag_seed: str | None = None,
        content_type: str | None = None,
    ) -> None:
        if not entry.stored:
            raise ValueError(f"{entry.name!r} is not stored: it cannot be read in place")
        volumes = tuple(volume_indexes_in_order)
        for piece in entry.pieces:
            if not 0 <= piece.volume < len(volumes):
                raise ValueError(f"{entry.name!r} lies in volume {piece.volume}, not given")
        self.download = download
        self.volumes = volumes
        self.entry = entry
        self.name = safe_filename(entry.name) or "movie"
        self.size = entry.size
        self.content_type = content_type or content_type_for(self.name)
        seed = etag_seed if etag_seed is not None else nzb_fingerprint(download.nzb)
        self.etag = make_etag(seed, self.name, size=self.size)
        # Media offset where each piece starts, for bisection.
        self._starts: list[int] = []
        at = 0
        for piece in entry.pieces:
            self._starts.append(at)
            at += piece.length

    def __repr__(self) -> str:
        return f"RarView({self.name!r}, size={self.size}, volumes={len(self.volumes)})"

    def _spans(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(download file index, offset in that file, length) covering media [start, end)."""
        pieces = self.entry.pieces
        i = bisect.bisect_right(self._starts, start) - 1
        while start < end and 0 <= i < len(pieces):
            piece = pieces[i]
            skip = start - self._starts[i]
            length = min(piece.length - skip, end - start)
            if length > 0:
                yield self.volumes[piece.volume], piece.offset + skip, length
                start += length
            i += 1

    def pieces(self, offset: int, length: int) -> list[Piece]:
        start, end = _clamp(offset, length, self.size)
        files = self.download.files
        return [Piece(str(files[i].path), at, n) for i, at, n in self._spans(start, end)]

    def available(self, offset: int) -> int:
        if offset < 0 or offset >= self.size:
            return 0
        total = 0
        for index, at, length in self._spans(offset, self.size):
            have = self.download.files[index].ranges.available_from(at)
            total += min(have, length)
            if have < length:
                break
        return total

    def prioritise(self, offset: int, end: int) -> Callable[[], None]:
        start, stop = _clamp(offset, max(0, end - offset), self.size)
        # The read-ahead runs on across volumes, unlike a file's own.
        stop = min(self.size, stop + DEFAULT_READAHEAD) if stop > start else stop
        releases = [
            self.download.prioritise(index, at, at + length, readahead=0)
            for index, at, length in self._spans(start, stop)
        ]

        def release() -> None:
            for each in releases:
                each()
            releases.clear()

        return release

    async def wait(self, offset: int, end: int) -> None:
        start, stop = _clamp(offset, max(0, end - offset), self.size)
        if stop <= start:
            return
        release = self.prioritise(start, stop)
        try:
            for index, at, length in list(self._spans(start, stop)):
                await self.download.wait_range(index, at, at + length)
        finally:
            release()

    async def read(self, offset: int, length: int) -> bytes:
        start, end = _clamp(offset, length, self.size)
        if end <= start:
            return b""
        await self.wait(start, end)
        return await asyncio.to_thread(read_pieces, self.pieces(start, end - start))


NotStreamableReason = Literal["compressed", "encrypted", "headers encrypted", "no files", "invalid"]


@dataclass(frozen=True)
class RarNotStreamable:
    """Why the movie in a RAR set cannot be read in place: extract it after the download.

    ``reason``: "compressed" (method 1-5), "encrypted" (file data, password needed),
    "headers encrypted" (``-hp``: not even the names can be read without the password),
    "no files", or "invalid" (the volumes do not form a readable set; ``detail`` says how).
    ``entry_name`` is the chosen file when one was chosen (untrusted: a raw RAR name).
    """

    reason: NotStreamableReason
    detail: str = ""
    entry_name: str | None = None

    @property
    def message(self) -> str:
        return f"not streamable: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    def __str__(self) -> str:
        return self.message


async def scan_volume(download: Download, index: int) -> RarVolumeInfo:
    """The headers of one RAR volume of a download, read from the partial file.

    Waits for the file's size, then for exactly the bytes at each header in turn (a
    volume's headers sit in its first and last segments, which the download fetches
    first), and reads them from disk. Raises ``RarError`` for what is not a volume.
    """
    size = await wait_size(download, index)
    f = download.files[index]
    path = str(f.path)
    scanner = VolumeScanner(volume_size=size)
    while (offset := scanner.next_offset) is not None:
        need = scanner.need
        await wait_bytes(download, index, offset, offset + need)
        # Whatever follows on disk already may hold further headers: read it too.
        length = max(need, min(f.ranges.available_from(offset), _SCAN_CHUNK, size - offset))
        scanner.feed(offset, await asyncio.to_thread(read_bytes, path, offset, length))
    return scanner.info()


_T = TypeVar("_T")


async def gather_all(awaitables: Sequence[Awaitable[_T]]) -> list[_T]:
    """Like ``gather``, but the others are cancelled as soon as one fails."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def choose_entry(entries: Sequence[RarEntry], entry_name: str | None) -> RarEntry | None:
    """The movie among a RAR set's entries: ``entry_name`` (raw or made safe) when given,
    else the largest video file, else the largest file; None when there is none."""
    files = [e for e in entries if not e.is_dir and not e.is_link]
    if entry_name is not None:
        named = [e for e in files if e.name == entry_name]
        named = named or [e for e in files if safe_filename(e.name) == entry_name]
        return named[0] if named else None
    videos = [e for e in files if extension(e.name) in VIDEO_EXTENSIONS]
    pool = videos or files
    return max(pool, key=lambda e: e.size) if pool else None


async def open_rar_view(
    download: Download,
    volume_indexes: Sequence[int],
    *,
    etag_seed: str | None = None,
    entry_name: str | None = None,
) -> RarView | RarNotStreamable:
    """A ``RarView`` over the movie in a RAR set, or why it cannot be read in place.

    ``volume_indexes`` are the download's files that hold the set's volumes, in any order:
    their headers are read from the partial files as they arrive (``scan_volume``), the
    volumes are ordered by what the headers say (or, failing that, by their names) and
    assembled. The movie is the largest video file of the set (by extension; the largest
    file when none is a video), or ``entry_name``. The volumes are then ranked on the
    download in volume order, so it fetches them first to last.

    Raises ``SegmentsMissing`` when a volume's headers cannot be downloaded; everything
    else that stops streaming (compression, encryption, broken sets) is a
    ``RarNotStreamable`` so the job can extract after the download instead.
    """
    indexes = list(dict.fromkeys(volume_indexes))
    if not indexes:
        raise ValueError("no volumes given")
    try:
        infos = await gather_all([scan_volume(download, i) for i in indexes])
    except RarError as exc:
        return RarNotStreamable("invalid", str(exc))
    if any(info.headers_encrypted for info in infos):
        return RarNotStreamable("headers encrypted", "a password is needed to list the files")
    by_name = {download.files[i].name: (i, info) for i, info in zip(indexes, infos, strict=True)}
    try:
        order = volume_order({name: info for name, (_, info) in by_name.items()})
        ordered = [by_name[name][0] for name in order]
        entries = assemble([by_name[name][1] for name in order])
    except RarError as exc:
        return RarNotStreamable("invalid", str(exc))
    entry = choose_entry(entries, entry_name)
    if entry is None:
        detail = f"no file named {entry_name!r}" if entry_name is not None else ""
        return RarNotStreamable("no files", detail)
    if entry.encrypted:
        return RarNotStreamable("encrypted", "a password is needed", entry.name)
    if entry.method != 0:
        return RarNotStreamable("compressed", f"method {entry.method}", entry.name)
    for rank, index in enumerate(ordered):
        download.set_file_rank(index, rank)
    view = RarView(download, ordered, entry, etag_seed=etag_seed)
    head_len = min(view.size, HEAD_BYTES)
    if head_len and view.available(0) >= head_len:
        head = await asyncio.to_thread(read_pieces, view.pieces(0, head_len))
        view.content_type = content_type_for(view.name, head)
    return view
