"""RAR headers: where the bytes of each file of a RAR4 or RAR5 volume set sit in the volumes.

Usenet posts are usually RAR volume sets. When a file is stored with method 0 (``-m0``,
no compression) and not encrypted, its bytes lie verbatim in the volumes, one piece per
volume, so it can be read in place, even while the volumes are still downloading. This
module reads only the headers and maps every file to ``(volume, offset, length)`` pieces;
it never extracts, decompresses or decrypts anything.

The parser is pure: callers hand it bytes. ``parse_volume`` takes the beginning of one
volume file; ``VolumeScanner`` is the same walk made incremental, asking for the bytes at
each header offset in turn, so a caller can read just the headers out of a sparse,
partially downloaded file (the packed data between headers is skipped by the sizes the
headers give). ``assemble`` joins the volumes of a set and checks their continuity;
``volume_order`` puts volumes with obfuscated names into order by what their headers say.

Formats: RAR 1.5-4.x ("RAR 2.9" format, called RAR4 here) and RAR 5.0, after the
technical notes published with WinRAR. Not supported: RAR 1.4 archives, self-extracting
archives (the signature must be at offset 0), and anything behind encrypted headers
(``-hp``: the volume reports ``headers_encrypted`` and no entries). Every size and count
read from a header is bounded, so hostile input fails fast with ``RarError``.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "RAR4_SIGNATURE",
    "RAR5_SIGNATURE",
    "NeedMoreData",
    "RarEntry",
    "RarError",
    "RarFilePart",
    "RarPiece",
    "RarVolumeInfo",
    "VolumeScanner",
    "assemble",
    "detect",
    "parse_volume",
    "volume_order",
]

RAR4_SIGNATURE = b"Rar!\x1a\x07\x00"
RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"

# No real volume or file comes near 1 PiB; anything larger is a hostile or corrupt size,
# refused before it can drive an offset or a request for bytes.
_MAX_SIZE = 1 << 50
# One volume of a movie release holds a handful of headers; these caps keep a crafted
# volume of millions of tiny headers from running away with time or memory.
_MAX_HEADERS = 1_000_000
_MAX_ENTRIES = 100_000
# RAR itself limits names to a few thousand characters.
_MAX_NAME_UNITS = 8192
# The smallest possible header of either format (RAR4: crc, type, flags, size; RAR5:
# crc, one-byte size, type, flags), so asking for it never reads past a real header.
_MIN_HEADER = 7
# Signature plus the smallest main header of either format (RAR5: 8 + 8, RAR4: 7 + 13).
_MIN_START = 16

# RAR4 block types and flags (RAR 2.9 technote).
_R4_MAIN = 0x73
_R4_FILE = 0x74
_R4_SUB = 0x7A
_R4_END = 0x7B
_R4_OLD_SUB = 0x77
# Old blocks whose CRC covers only their fixed fields (authenticity info of RAR 1.5-2.x).
_R4_OLD_CRC_SPAN = {0x76: 14, 0x79: 15}
_R4_LONG_BLOCK = 0x8000
_R4_MAIN_VOLUME = 0x0001
_R4_MAIN_SOLID = 0x0008
_R4_MAIN_NEWNUMBERING = 0x0010
_R4_MAIN_PASSWORD = 0x0080
_R4_MAIN_FIRSTVOLUME = 0x0100
_R4_MAIN_ENCRYPTVER = 0x0200
_R4_FILE_SPLIT_BEFORE = 0x0001
_R4_FILE_SPLIT_AFTER = 0x0002
_R4_FILE_PASSWORD = 0x0004
_R4_FILE_COMMENT = 0x0008
_R4_FILE_SOLID = 0x0010
_R4_FILE_DIRECTORY = 0x00E0  # all three dictionary bits set
_R4_FILE_LARGE = 0x0100
_R4_FILE_UNICODE = 0x0200
_R4_FILE_SALT = 0x0400
_R4_FILE_EXTTIME = 0x1000
_R4_END_NEXT_VOLUME = 0x0001
_R4_END_DATACRC = 0x0002
_R4_END_VOLNUMBER = 0x0008
_R4_HOST_UNIX = 3
_R4_METHOD_STORE = 0x30
_R4_METHOD_BEST = 0x35
# crc, type, flags, size; then the fixed part of a file header up to the name.
_R4_BASE = struct.Struct("<HBHH")
_R4_FILE_FIXED = struct.Struct("<IIBIIBBHI")
_R4_FILE_NAME_AT = 32
_R4_MAIN_SIZE = 13

# RAR5 header types and flags (RAR 5.0 technote).
_R5_MAIN = 1
_R5_FILE = 2
_R5_SERVICE = 3
_R5_CRYPT = 4
_R5_END = 5
_R5_HAS_EXTRA = 0x0001
_R5_HAS_DATA = 0x0002
_R5_SPLIT_BEFORE = 0x0008
_R5_SPLIT_AFTER = 0x0010
_R5_MAIN_VOLUME = 0x0001
_R5_MAIN_VOLNUMBER = 0x0002
_R5_MAIN_SOLID = 0x0004
_R5_FILE_DIRECTORY = 0x0001
_R5_FILE_MTIME = 0x0002
_R5_FILE_CRC32 = 0x0004
_R5_FILE_SIZE_UNKNOWN = 0x0008
_R5_COMP_SOLID = 0x0040
_R5_EXTRA_CRYPT = 0x01
_R5_EXTRA_REDIR = 0x05
_R5_END_NEXT_VOLUME = 0x0001
# The header size vint is at most 3 bytes long, so no header exceeds 2 MiB.
_R5_SIZE_VINT_MAX = 3
_VINT_MAX = 10


class RarError(ValueError):
    """The bytes are not a RAR volume this parser can read, or the volumes do not fit."""


# A request for more bytes, not a failure: deliberately not a RarError, so that callers
# catching RarError for bad archives never mistake a short read for one.
class NeedMoreData(Exception):
    """``parse_volume`` needs a longer head: at least ``bytes_needed`` bytes from the start.

    The figure is a lower bound: once it is supplied, a later header may ask for more.
    """

    def __init__(self, bytes_needed: int) -> None:
        super().__init__(f"need at least {bytes_needed} bytes of the volume")
        self.bytes_needed = bytes_needed


@dataclass(frozen=True, slots=True)
class RarPiece:
    """A run of a file's packed bytes: ``length`` bytes at ``offset`` of volume ``volume``.

    ``volume`` is the index into the sequence of volumes given to ``assemble``.
    """

    volume: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class RarFilePart:
    """One file header of one volume: a whole file, or the part of a split one in this volume.

    ``size`` is the unpacked size of the whole file (None when a RAR5 header says it is
    unknown). ``crc32`` is the header's data CRC: the CRC of the whole file in an unsplit
    file or a last part, but of this part's packed bytes in the earlier parts of a split
    file. ``data_offset``/``data_size`` locate the packed bytes within this volume file.
    """

    name: str
    size: int | None
    method: int
    is_dir: bool
    is_link: bool
    encrypted: bool
    solid: bool
    crc32: int | None
    split_before: bool
    split_after: bool
    header_offset: int
    data_offset: int
    data_size: int


@dataclass(frozen=True, slots=True)
class RarVolumeInfo:
    """What the headers of one volume file say.

    ``volume_number`` counts from 0 (the first volume); it is None when the headers do not
    tell (RAR4 volumes whose end-of-archive block was not read or carries no number,
    encrypted headers). ``has_next`` comes from the end-of-archive block, or, without
    one, from the split-after flag of the last file. With ``headers_encrypted`` nothing but
    the version (and, for RAR4, the main header flags) is known: the other fields keep
    their defaults and ``entries`` is empty. ``complete`` is False for a snapshot taken
    before the scan reached the end of the headers (``VolumeScanner.info``); such a
    snapshot may lack entries. ``end_offset`` is where the scan stopped.
    """

    version: int
    volume_number: int | None
    is_multivolume: bool
    is_first: bool
    has_next: bool
    headers_encrypted: bool
    solid: bool
    new_numbering: bool
    entries: tuple[RarFilePart, ...]
    complete: bool
    end_offset: int


@dataclass(frozen=True, slots=True)
class RarEntry:
    """One file of a volume set, its parts joined across volumes.

    ``name`` is the raw name from the header with ``/`` separators: UNTRUSTED, the caller
    sanitises it. ``size`` is the unpacked size (the packed size when a RAR5 header marks
    it unknown). ``method`` is 0 (store) to 5 (best) in both formats. ``solid`` is the
    file's own solid flag or the archive's. ``crc32`` is the CRC of the whole unpacked file
    (from the last part). ``pieces`` hold the packed bytes in order; they are the content
    only when ``stored``.
    """

    name: str
    size: int
    method: int
    is_dir: bool
    encrypted: bool
    solid: bool
    crc32: int | None
    pieces: tuple[RarPiece, ...]
    is_link: bool = False

    @property
    def stored(self) -> bool:
        """True when the content lies verbatim in ``pieces`` and can be read in place."""
        return self.method == 0 and not self.encrypted and not self.is_dir and not self.is_link

    def locate(self, offset: int, length: int) -> tuple[RarPiece, ...]:
        """The pieces of the volumes that hold content bytes ``[offset, offset + length)``."""
        if not self.stored:
            raise RarError(f"{self.name!r} is not stored: its bytes cannot be read in place")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"range {offset}+{length} is outside 0..{self.size}")
        wanted_end = offset + length
        found: list[RarPiece] = []
        at = 0
        for piece in self.pieces:
            if at >= wanted_end:
                break
            start = max(offset, at)
            stop = min(wanted_end, at + piece.length)
            if start < stop:
                found.append(RarPiece(piece.volume, piece.offset + start - at, stop - start))
            at += piece.length
        return tuple(found)


def detect(data: bytes | bytearray | memoryview) -> int | None:
    """4 or 5 when ``data`` starts with a RAR4 or RAR5 signature, else None."""
    head = bytes(data[: len(RAR5_SIGNATURE)])
    if head == RAR5_SIGNATURE:
        return 5
    if head.startswith(RAR4_SIGNATURE):
        return 4
    return None


class _Short(Exception):
    """Internal: the buffer ends before the header; ``needed`` bytes from its start are wanted."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


def _require(buf: memoryview, needed: int) -> None:
    if len(buf) < needed:
        raise _Short(needed)


def _vint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """A RAR5 variable-length integer at ``pos``, which must end before ``end``."""
    value = 0
    for index in range(_VINT_MAX):
        if pos + index >= end:
            raise RarError("header field runs past the end of its header")
        byte = buf[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if value >> 64:
                raise RarError("integer field exceeds 64 bits")
            return value, pos + index + 1
    raise RarError("integer field longer than 10 bytes")


def _bounded(value: int, what: str) -> int:
    if value > _MAX_SIZE:
        raise RarError(f"{what} of {value} bytes is beyond any real archive")
    return value


class VolumeScanner:
    """Walks the headers of one volume file, asking for the bytes at each header in turn.

    Loop::

        scanner = VolumeScanner(volume_size=size)
        while scanner.next_offset is not None:
            scanner.feed(scanner.next_offset, read(scanner.next_offset, scanner.need))
        info = scanner.info()

    ``need`` is the minimum that lets the scan progress; reading more is fine (feed
    consumes every header the chunk covers) and saves round trips. Feeding fewer bytes
    just raises ``need``. The scanner keeps no bytes between calls.

    With ``volume_size`` the scan also ends where the file ends (volumes without an
    end-of-archive block) and a header or data area running past it is a ``RarError``.
    Without it, the scan ends only at an end-of-archive block (or encrypted headers),
    so a truncated head can never pass for a complete volume.
    """

    __slots__ = (
        "_done",
        "_end_next",
        "_end_number",
        "_entries",
        "_first_flag",
        "_headers",
        "_headers_encrypted",
        "_main_seen",
        "_multivolume",
        "_need",
        "_new_numbering",
        "_pos",
        "_solid",
        "_version",
        "_volume_number",
        "_volume_size",
    )

    def __init__(self, *, volume_size: int | None = None) -> None:
        if volume_size is not None and volume_size < 0:
            raise ValueError("volume_size must not be negative")
        self._volume_size = volume_size
        self._pos = 0
        self._need = _MIN_START
        self._done = False
        self._version: int | None = None
        self._main_seen = False
        self._multivolume = False
        self._first_flag = False
        self._new_numbering = False
        self._solid = False
        self._headers_encrypted = False
        self._volume_number: int | None = None
        self._end_number: int | None = None
        self._end_next: bool | None = None
        self._entries: list[RarFilePart] = []
        self._headers = 0
        self._check_need()

    @property
    def done(self) -> bool:
        """True once every header of the volume has been read."""
        return self._done

    @property
    def next_offset(self) -> int | None:
        """Offset in the volume file of the next bytes to feed; None when done."""
        return None if self._done else self._pos

    @property
    def need(self) -> int:
        """How many bytes from ``next_offset`` the next step needs at least (0 when done)."""
        return 0 if self._done else self._need

    def feed(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Consume ``data``, the volume's bytes from ``offset`` on, covering ``next_offset``.

        Raises ``RarError`` when the headers are invalid; the scanner is then spent.
        """
        if self._done:
            return
        buf = memoryview(data).cast("B")
        if offset < 0 or not offset <= self._pos <= offset + len(buf):
            raise ValueError(f"the bytes fed must cover offset {self._pos}")
        while not self._done:
            rel = self._pos - offset
            if rel > len(buf):
                # The last data area ran past this chunk: the next header lies beyond it.
                self._need = _MIN_HEADER
                self._check_need()
                return
            try:
                self._step(buf[rel:])
            except _Short as short:
                self._need = short.needed
                self._check_need()
                return

    def info(self) -> RarVolumeInfo:
        """What is known so far; ``complete`` tells whether the walk is finished.

        Raises ``NeedMoreData`` until the main header (or the RAR5 encryption header) has
        been read, since nothing useful is known before.
        """
        if self._version is None or not (self._main_seen or self._headers_encrypted):
            raise NeedMoreData(self._pos + self._need)
        entries = tuple(self._entries)
        if self._version == 5:
            number = self._volume_number
            is_first = number == 0
        else:
            number = self._end_number
            if number is None and (self._first_flag or not self._multivolume):
                number = 0
            is_first = self._first_flag or not self._multivolume or self._end_number == 0
        if self._end_next is not None:
            has_next = self._end_next
        else:
            has_next = bool(entries) and entries[-1].split_after
        return RarVolumeInfo(
            version=self._version,
            volume_number=number,
            is_multivolume=self._multivolume,
            is_first=is_first,
            has_next=has_next,
            headers_encrypted=self._headers_encrypted,
            solid=self._solid,
            new_numbering=self._new_numbering,
            entries=entries,
            complete=self._done,
            end_offset=self._pos,
        )

    # -- the walk ---------------------------------------------------------------------

    def _check_need(self) -> None:
        end = self._pos + self._need
        if end > _MAX_SIZE:
            raise RarError(f"a header at offset {self._pos} lies beyond any real volume")
        if self._volume_size is not None and end > self._volume_size:
            raise RarError(
                f"the volume ends at {self._volume_size} inside a header at offset {self._pos}"
            )

    def _step(self, buf: memoryview) -> None:
        """Read one header (or the signature) at the start of ``buf`` and move past it."""
        if self._version is None:
            self._read_signature(buf)
            return
        if self._version == 4:
            length, data_size = self._read_rar4(buf)
        else:
            length, data_size = self._read_rar5(buf)
        self._headers += 1
        if self._headers > _MAX_HEADERS:
            raise RarError("too many headers in one volume")
        if self._done:
            # End of archive or encrypted headers: nothing after the header is read.
            self._pos += length
            return
        self._advance(length + data_size)

    def _advance(self, length: int) -> None:
        new_pos = self._pos + length
        if new_pos > _MAX_SIZE:
            raise RarError("a data area runs beyond any real volume")
        if self._volume_size is not None:
            if new_pos > self._volume_size:
                raise RarError(
                    f"a data area runs to offset {new_pos}, past the volume end {self._volume_size}"
                )
            if new_pos == self._volume_size and self._main_seen:
                # Volumes may end without an end-of-archive block (RAR 2.x did).
                self._done = True
        self._pos = new_pos

    def _read_signature(self, buf: memoryview) -> None:
        head = bytes(buf[: len(RAR5_SIGNATURE)])
        if len(head) < len(RAR5_SIGNATURE):
            if RAR5_SIGNATURE.startswith(head) or RAR4_SIGNATURE.startswith(head[:7]):
                raise _Short(_MIN_START)
            raise RarError("not a RAR archive: no RAR signature at offset 0")
        version = detect(head)
        if version is None:
            raise RarError("not a RAR archive: no RAR4 or RAR5 signature at offset 0")
        self._version = version
        self._advance(len(RAR5_SIGNATURE) if version == 5 else len(RAR4_SIGNATURE))

    def _add_entry(self, part: RarFilePart) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            raise RarError("too many files in one volume")
        self._entries.append(part)

    # -- RAR4 -------------------------------------------------------------------------

    def _read_rar4(self, buf: memoryview) -> tuple[int, int]:
        """Parse the RAR4 block at the start of ``buf``: (header length, data size)."""
        _require(buf, _R4_BASE.size)
        crc, kind, flags, size = _R4_BASE.unpack_from(buf)
        if size < _R4_BASE.size:
            raise RarError(f"RAR4 header at offset {self._pos} is {size} bytes long")
        _require(buf, size)
        header = buf[:size]
        if not self._main_seen and kind != _R4_MAIN:
            raise RarError("RAR4 archive without a main header after the signature")
        if kind == _R4_MAIN:
            if self._main_seen:
                raise RarError("RAR4 volume with two main headers")
            self._rar4_main(header, crc, flags)
            return size, 0
        if kind in (_R4_FILE, _R4_SUB):
            part, data_size = self._rar4_file(header, crc, flags, kind)
            if part is not None:
                self._add_entry(part)
            return size, data_size
        if kind == _R4_END:
            self._rar4_end(header, crc, flags)
            return size, 0
        # Old-style and unknown blocks are skipped, but only once their CRC holds: else a
        # damaged type byte could turn a file header into a block that is skipped silently.
        if kind == _R4_OLD_SUB:
            pass  # its CRC also covers its data, which is not at hand; RAR 2.x only
        else:
            crc_end = _R4_OLD_CRC_SPAN.get(kind, size)
            if size < crc_end:
                raise RarError(f"RAR4 block of type {kind:#x} too short")
            self._rar4_check_crc(header, crc, crc_end, f"type {kind:#x}")
        if flags & _R4_LONG_BLOCK:
            if size < _R4_BASE.size + 4:
                raise RarError("RAR4 block too short for its data size field")
            (add_size,) = struct.unpack_from("<I", header, _R4_BASE.size)
            return size, add_size
        return size, 0

    @staticmethod
    def _rar4_check_crc(header: memoryview, crc: int, end: int, what: str) -> None:
        # The 16-bit header CRC is the low half of CRC32 over the header after the CRC field.
        if zlib.crc32(header[2:end]) & 0xFFFF != crc:
            raise RarError(f"RAR4 {what} header CRC mismatch")

    def _rar4_main(self, header: memoryview, crc: int, flags: int) -> None:
        # The CRC covers the fixed fields only: RAR 2.x put an old-style comment after them.
        end = _R4_MAIN_SIZE + (1 if flags & _R4_MAIN_ENCRYPTVER else 0)
        if len(header) < end:
            raise RarError("RAR4 main header too short")
        self._rar4_check_crc(header, crc, end, "main")
        self._main_seen = True
        self._multivolume = bool(flags & _R4_MAIN_VOLUME)
        self._solid = bool(flags & _R4_MAIN_SOLID)
        self._new_numbering = bool(flags & _R4_MAIN_NEWNUMBERING)
        self._first_flag = bool(flags & _R4_MAIN_FIRSTVOLUME)
        if flags & _R4_MAIN_PASSWORD:
            # Every later header is encrypted: nothing more can be read without the password.
            self._headers_encrypted = True
            self._done = True

    def _rar4_file(
        self, header: memoryview, crc: int, flags: int, kind: int
    ) -> tuple[RarFilePart | None, int]:
        """A file header, or (kind 0x7a) a service header laid out alike: (part, data size)."""
        size = len(header)
        if size < _R4_FILE_NAME_AT:
            raise RarError("RAR4 file header too short")
        (pack, unpacked, host_os, data_crc, _mtime, _version, method, name_size, attrs) = (
            _R4_FILE_FIXED.unpack_from(header, _R4_BASE.size)
        )
        pos = _R4_FILE_NAME_AT
        if flags & _R4_FILE_LARGE:
            if size < pos + 8:
                raise RarError("RAR4 file header too short for 64-bit sizes")
            high_pack, high_unpacked = struct.unpack_from("<II", header, pos)
            pack |= high_pack << 32
            unpacked |= high_unpacked << 32
            pos += 8
        name_end = pos + name_size
        after = name_end + (8 if flags & _R4_FILE_SALT else 0)
        if after > size:
            raise RarError("RAR4 file name runs past its header")
        crc_end = size
        if flags & _R4_FILE_COMMENT:
            # RAR 2.x appended a file comment that the CRC leaves out: find where it starts.
            crc_end = _rar4_exttime_end(header, after) if flags & _R4_FILE_EXTTIME else after
        self._rar4_check_crc(header, crc, crc_end, "file")
        _bounded(pack, "packed size")
        _bounded(unpacked, "unpacked size")
        if kind != _R4_FILE:
            # Comments, recovery records, NTFS streams: skipped with their data.
            return None, pack
        if not _R4_METHOD_STORE <= method <= _R4_METHOD_BEST:
            raise RarError(f"RAR4 file header with unknown method byte {method:#x}")
        is_dir = flags & _R4_FILE_DIRECTORY == _R4_FILE_DIRECTORY
        # Unix symlinks are stored as files whose data is the link target.
        is_link = host_os == _R4_HOST_UNIX and attrs & 0o170000 == 0o120000
        name = _rar4_name(bytes(header[pos:name_end]), bool(flags & _R4_FILE_UNICODE))
        part = RarFilePart(
            name=name.replace("\\", "/"),
            size=unpacked,
            method=method - _R4_METHOD_STORE,
            is_dir=is_dir,
            is_link=is_link,
            encrypted=bool(flags & _R4_FILE_PASSWORD),
            solid=bool(flags & _R4_FILE_SOLID) or self._solid,
            crc32=data_crc,
            split_before=bool(flags & _R4_FILE_SPLIT_BEFORE),
            split_after=bool(flags & _R4_FILE_SPLIT_AFTER),
            header_offset=self._pos,
            data_offset=self._pos + size,
            data_size=pack,
        )
        return part, pack

    def _rar4_end(self, header: memoryview, crc: int, flags: int) -> None:
        self._rar4_check_crc(header, crc, len(header), "end-of-archive")
        pos = _R4_BASE.size + (4 if flags & _R4_END_DATACRC else 0)
        if flags & _R4_END_VOLNUMBER:
            if len(header) < pos + 2:
                raise RarError("RAR4 end-of-archive header too short for its volume number")
            (self._end_number,) = struct.unpack_from("<H", header, pos)
        self._end_next = bool(flags & _R4_END_NEXT_VOLUME)
        self._done = True

    # -- RAR5 -------------------------------------------------------------------------

    def _read_rar5(self, buf: memoryview) -> tuple[int, int]:
        """Parse the RAR5 header at the start of ``buf``: (header length, data size)."""
        _require(buf, _MIN_HEADER)
        (crc,) = struct.unpack_from("<I", buf)
        size, body = _vint(buf, 4, 4 + _R5_SIZE_VINT_MAX)
        if size < 2:
            raise RarError(f"RAR5 header at offset {self._pos} is {size} bytes long")
        end = body + size
        _require(buf, end)
        if zlib.crc32(buf[4:end]) != crc:
            raise RarError(f"RAR5 header CRC mismatch at offset {self._pos}")
        kind, pos = _vint(buf, body, end)
        flags, pos = _vint(buf, pos, end)
        extra_size = data_size = 0
        if flags & _R5_HAS_EXTRA:
            extra_size, pos = _vint(buf, pos, end)
        if flags & _R5_HAS_DATA:
            data_size, pos = _vint(buf, pos, end)
            _bounded(data_size, "data area")
        if extra_size > end - pos:
            raise RarError("RAR5 extra area larger than its header")
        fields_end = end - extra_size
        if not self._main_seen and kind not in (_R5_MAIN, _R5_CRYPT):
            raise RarError("RAR5 archive without a main header after the signature")
        if kind == _R5_MAIN:
            if self._main_seen:
                raise RarError("RAR5 volume with two main headers")
            self._rar5_main(buf, pos, fields_end)
        elif kind == _R5_CRYPT:
            if self._main_seen:
                raise RarError("RAR5 encryption header after the main header")
            # Every later header is encrypted: nothing more can be read without the password.
            self._headers_encrypted = True
            self._done = True
        elif kind == _R5_FILE:
            part = self._rar5_file(buf, pos, fields_end, end, flags, data_size)
            self._add_entry(part)
        elif kind == _R5_END:
            end_flags, _ = _vint(buf, pos, fields_end)
            self._end_next = bool(end_flags & _R5_END_NEXT_VOLUME)
            self._done = True
        # Service headers (comment, quick open, recovery record, streams) and unknown
        # types are skipped with their data.
        return end, data_size

    def _rar5_main(self, buf: memoryview, pos: int, end: int) -> None:
        flags, pos = _vint(buf, pos, end)
        number = 0
        if flags & _R5_MAIN_VOLNUMBER:
            # Present in every volume but the first.
            number, pos = _vint(buf, pos, end)
        self._main_seen = True
        self._volume_number = number
        self._multivolume = bool(flags & _R5_MAIN_VOLUME)
        self._solid = bool(flags & _R5_MAIN_SOLID)
        self._new_numbering = True

    def _rar5_file(
        self, buf: memoryview, pos: int, fields_end: int, end: int, flags: int, data_size: int
    ) -> RarFilePart:
        file_flags, pos = _vint(buf, pos, fields_end)
        unpacked, pos = _vint(buf, pos, fields_end)
        _attrs, pos = _vint(buf, pos, fields_end)
        if file_flags & _R5_FILE_MTIME:
            pos += 4
        data_crc: int | None = None
        if file_flags & _R5_FILE_CRC32:
            if pos + 4 > fields_end:
                raise RarError("RAR5 file header too short for its CRC")
            (data_crc,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        compression, pos = _vint(buf, pos, fields_end)
        _host_os, pos = _vint(buf, pos, fields_end)
        name_size, pos = _vint(buf, pos, fields_end)
        if pos + name_size > fields_end:
            raise RarError("RAR5 file name runs past its header")
        name = bytes(buf[pos : pos + name_size]).decode("utf-8", "replace")
        encrypted = is_link = False
        for record_type in _rar5_extra_types(buf, fields_end, end):
            if record_type == _R5_EXTRA_CRYPT:
                encrypted = True
            elif record_type == _R5_EXTRA_REDIR:
                is_link = True
        size: int | None = None
        if not file_flags & _R5_FILE_SIZE_UNKNOWN:
            size = _bounded(unpacked, "unpacked size")
        header_size = end
        return RarFilePart(
            name=name,
            size=size,
            method=(compression >> 7) & 0x07,
            is_dir=bool(file_flags & _R5_FILE_DIRECTORY),
            is_link=is_link,
            encrypted=encrypted,
            solid=bool(compression & _R5_COMP_SOLID) or self._solid,
            crc32=data_crc,
            split_before=bool(flags & _R5_SPLIT_BEFORE),
            split_after=bool(flags & _R5_SPLIT_AFTER),
            header_offset=self._pos,
            data_offset=self._pos + header_size,
            data_size=data_size,
        )


def _rar5_extra_types(buf: memoryview, pos: int, end: int) -> list[int]:
    """The record types in a RAR5 extra area ``[pos, end)``.

    Like unrar, a malformed record ends the list rather than the parse: the header CRC
    has already vouched for these bytes, and writers may pad the area.
    """
    types: list[int] = []
    while pos < end:
        try:
            record_size, body = _vint(buf, pos, end)
            if record_size == 0 or body + record_size > end:
                break
            record_type, _ = _vint(buf, body, body + record_size)
        except RarError:
            break
        types.append(record_type)
        pos = body + record_size
    return types


def _rar4_exttime_end(header: memoryview, pos: int) -> int:
    """Where the RAR4 extended-time field starting at ``pos`` ends."""
    if pos + 2 > len(header):
        raise RarError("RAR4 extended time runs past its header")
    (flags,) = struct.unpack_from("<H", header, pos)
    pos += 2
    for index in range(4):  # mtime, ctime, atime, archive time; four bits each, high first
        bits = (flags >> ((3 - index) * 4)) & 0x0F
        if bits & 0x08:
            # mtime reuses the DOS time of the header; the others carry their own 4 bytes.
            pos += (4 if index else 0) + (bits & 0x03)
    if pos > len(header):
        raise RarError("RAR4 extended time runs past its header")
    return pos


def _rar4_name(raw: bytes, unicode: bool) -> str:
    """Decode a RAR4 name field: plain bytes, or (flag 0x200) plain + NUL + encoded UTF-16."""
    if unicode:
        nul = raw.find(b"\0")
        if nul < 0:
            # RAR 3.x writes a name that needs no encoding as plain UTF-8 under this flag.
            return raw.decode("utf-8", "replace")
        decoded = _rar4_unicode(raw, nul)
        if decoded:
            return decoded
        raw = raw[:nul]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Windows RAR wrote names in the OEM code page; 437 is the common one. Only a
        # display name: the caller sanitises it anyway.
        return raw.decode("cp437")


def _rar4_unicode(raw: bytes, nul: int) -> str:
    """The RAR 3.x compressed Unicode name that follows the plain name and its NUL.

    The encoded bytes are: a high byte, then groups of four 2-bit opcodes (most
    significant first, each group led by its flags byte): 0 = one byte with high byte 0,
    1 = one byte with the shared high byte, 2 = a full 16-bit unit, 3 = a run copied from
    the plain name at the same positions (with an optional low-byte correction and the
    shared high byte). The units are UTF-16.
    """
    enc = raw[nul + 1 :]
    if not enc:
        return ""
    high = enc[0] << 8
    pos = 1
    units: list[int] = []
    flags = 0
    flag_bits = 0
    while pos < len(enc) and len(units) < _MAX_NAME_UNITS:
        if flag_bits == 0:
            flags = enc[pos]
            pos += 1
            flag_bits = 8
            if pos >= len(enc):
                break
        opcode = flags >> 6
        if opcode == 0:
            units.append(enc[pos])
            pos += 1
        elif opcode == 1:
            units.append(enc[pos] | high)
            pos += 1
        elif opcode == 2:
            if pos + 1 >= len(enc):
                break
            units.append(enc[pos] | enc[pos + 1] << 8)
            pos += 2
        else:
            run = enc[pos]
            pos += 1
            if run & 0x80:
                if pos >= len(enc):
                    break
                correction = enc[pos]
                pos += 1
                for _ in range((run & 0x7F) + 2):
                    at = len(units)
                    plain = raw[at] if at < len(raw) else 0
                    units.append(((plain + correction) & 0xFF) | high)
            else:
                for _ in range(run + 2):
                    at = len(units)
                    units.append(raw[at] if at < len(raw) else 0)
        flags = (flags << 2) & 0xFF
        flag_bits -= 2
    units = units[:_MAX_NAME_UNITS]
    if 0 in units:
        units = units[: units.index(0)]
    data = b"".join(unit.to_bytes(2, "little") for unit in units)
    return data.decode("utf-16-le", "replace")


def parse_volume(
    head: bytes | bytearray | memoryview, *, volume_size: int | None = None
) -> RarVolumeInfo:
    """All the headers of one volume, from ``head``: the volume's bytes from offset 0.

    ``head`` must reach every header, including those after data areas; the data areas
    themselves are skipped. Raises ``NeedMoreData`` (with the total length of head it
    needs) when it ends too soon, and ``RarError`` when the volume is not valid. Give
    ``volume_size`` when the file's real size is known: it lets volumes without an
    end-of-archive block finish, and turns sizes past the end into errors rather than
    requests for more bytes.
    """
    view = memoryview(head).cast("B")
    scanner = VolumeScanner(volume_size=volume_size)
    while (offset := scanner.next_offset) is not None:
        if offset + scanner.need > len(view):
            raise NeedMoreData(offset + scanner.need)
        scanner.feed(offset, view[offset:])
    return scanner.info()


def _same_file(first: RarFilePart, part: RarFilePart) -> bool:
    return (first.name, first.size, first.method, first.encrypted, first.is_dir) == (
        part.name,
        part.size,
        part.method,
        part.encrypted,
        part.is_dir,
    )


def _join(parts: list[tuple[int, RarFilePart]]) -> RarEntry:
    first = parts[0][1]
    last = parts[-1][1]
    pieces = tuple(RarPiece(index, p.data_offset, p.data_size) for index, p in parts if p.data_size)
    packed = sum(piece.length for piece in pieces)
    entry = RarEntry(
        name=first.name,
        size=packed if last.size is None else last.size,
        method=first.method,
        is_dir=first.is_dir,
        encrypted=first.encrypted,
        solid=any(p.solid for _, p in parts),
        crc32=last.crc32,
        pieces=pieces,
        is_link=first.is_link,
    )
    if entry.stored and packed != entry.size:
        raise RarError(
            f"stored file {entry.name!r} has {packed} packed bytes for a size of {entry.size}"
        )
    return entry


def assemble(volumes: Sequence[RarVolumeInfo]) -> tuple[RarEntry, ...]:
    """The files of a volume set, from its volumes' headers in volume order.

    Checks that the volumes form one whole set: same format, consecutive volume numbers
    where known, the first volume first, every split file continued at the start of the
    next volume and finished by the last, and no volume announcing more after the last.
    A ``RarPiece.volume`` is an index into ``volumes``. Raises ``RarError`` otherwise, and
    for volumes with encrypted headers or not completely scanned.
    """
    entries: list[RarEntry] = []
    pending: list[tuple[int, RarFilePart]] = []
    for index, volume in enumerate(volumes):
        where = f"volume {index}"
        if volume.version != volumes[0].version:
            raise RarError(f"{where} is RAR{volume.version}, the first is RAR{volumes[0].version}")
        if volume.headers_encrypted:
            raise RarError(f"{where} has encrypted headers: its files cannot be listed")
        if not volume.complete:
            raise RarError(f"{where} was not scanned to its end")
        if len(volumes) > 1 and not volume.is_multivolume:
            raise RarError(f"{where} is not part of a multi-volume set")
        if index == 0 and volume.volume_number not in (None, 0):
            raise RarError(f"the set starts at volume number {volume.volume_number}, not 0")
        if index > 0:
            previous = volumes[index - 1]
            if not previous.has_next:
                raise RarError(f"volume {index - 1} is the last of its set, yet more follow")
            if (
                previous.volume_number is not None
                and volume.volume_number is not None
                and volume.volume_number != previous.volume_number + 1
            ):
                raise RarError(
                    f"{where} has number {volume.volume_number} after "
                    f"{previous.volume_number}: a volume is missing or out of order"
                )
        for position, part in enumerate(volume.entries):
            if pending:
                if position != 0 or not part.split_before or not _same_file(pending[0][1], part):
                    raise RarError(f"{where} does not continue {pending[0][1].name!r}")
            elif part.split_before:
                raise RarError(f"{where} continues {part.name!r} from a volume not given")
            pending.append((index, part))
            if part.split_after:
                if position != len(volume.entries) - 1:
                    raise RarError(f"{where}: split file {part.name!r} is not its last file")
                continue
            entries.append(_join(pending))
            pending = []
        if pending and pending[-1][0] != index:
            raise RarError(f"{where} does not continue {pending[0][1].name!r}")
    if pending:
        raise RarError(f"the set ends inside {pending[0][1].name!r}: volumes are missing")
    if volumes and volumes[-1].has_next:
        raise RarError("the last volume given announces another: volumes are missing")
    return tuple(entries)


# Volume numbers from conventional names, counted from 0 like the headers' numbers:
# name.partN.rar (N from 1); name.rar, name.r00..r99, name.s00..; name.001, name.002, ...
_PART_NAME = re.compile(r"\.part(\d{1,6})\.rar\Z", re.IGNORECASE)
_RAR_NAME = re.compile(r"\.rar\Z", re.IGNORECASE)
_OLD_NAME = re.compile(r"\.([r-z])(\d\d)\Z", re.IGNORECASE)
_NUMBER_NAME = re.compile(r"\.(\d{3})\Z")


def _number_from_name(name: str) -> int | None:
    if match := _PART_NAME.search(name):
        return int(match.group(1)) - 1
    if _RAR_NAME.search(name):
        return 0
    if match := _OLD_NAME.search(name):
        return (ord(match.group(1).lower()) - ord("r")) * 100 + int(match.group(2)) + 1
    if match := _NUMBER_NAME.search(name):
        return int(match.group(1)) - 1
    return None


def _snapshot(data: bytes | bytearray | memoryview) -> RarVolumeInfo:
    scanner = VolumeScanner()
    scanner.feed(0, data)
    return scanner.info()


def volume_order(names_and_heads: Mapping[str, bytes | bytearray | RarVolumeInfo]) -> list[str]:
    """The names of one set's volumes, first volume first.

    Each value is the volume's beginning (as much as is at hand: the more, the more is
    known) or its ``RarVolumeInfo``. The order comes from the headers when every volume's
    number is known: RAR5 main headers carry it; RAR4 carries it in the end-of-archive
    block (so the whole volume must be given) and marks the first volume. Otherwise the
    names decide (``.partN.rar``; ``.rar``, ``.r00``, ...; ``.001``, ...), checked against
    whatever numbers the headers give. Raises ``RarError`` when neither tells (obfuscated
    names with encrypted headers, or RAR4 heads without their end blocks), when two
    volumes claim the same number, or for non-RAR data; ``NeedMoreData`` when a head is
    too short to reach its main header.
    """
    infos = {
        name: value if isinstance(value, RarVolumeInfo) else _snapshot(value)
        for name, value in names_and_heads.items()
    }
    if len({info.version for info in infos.values()}) > 1:
        raise RarError("the volumes mix RAR4 and RAR5")
    from_headers = {name: info.volume_number for name, info in infos.items()}
    known = {name: number for name, number in from_headers.items() if number is not None}
    if len(known) == len(infos):
        return _sorted_unique(known, "headers")
    from_names = {name: _number_from_name(name) for name in infos}
    by_name = {name: number for name, number in from_names.items() if number is not None}
    if len(by_name) == len(infos):
        for name, number in known.items():
            if by_name[name] != number:
                raise RarError(
                    f"{name!r} is volume {number} by its headers but {by_name[name]} by its name"
                )
        return _sorted_unique(by_name, "names")
    unknown = sorted(name for name in infos if name not in known and name not in by_name)
    raise RarError(
        f"cannot tell the volume order: neither headers nor names number {unknown[:3]}"
        + (" (headers encrypted)" if any(i.headers_encrypted for i in infos.values()) else "")
    )


def _sorted_unique(numbers: Mapping[str, int], source: str) -> list[str]:
    order = sorted(numbers, key=lambda name: (numbers[name], name))
    for before, after in itertools.pairwise(order):
        if numbers[before] == numbers[after]:
            raise RarError(f"{before!r} and {after!r} are both volume {numbers[after]} ({source})")
    return order
