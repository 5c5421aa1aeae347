"""Write a store-mode (``-m0``) RAR4 volume set, as a release group's ``rar -v`` would.

No `rar` binary ships with Debian (it is non-free); `unar` and 7-Zip only read. Tests that
need a large set of a given content write it here, after the RAR 2.9 technote: the
signature, a main header, one file header per volume (split flags; the CRC of that
volume's piece, the CRC of the whole file in the last), the bytes verbatim, and an
end-of-archive block with the volume number. Volumes are named ``STEM.partNN.rar``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.support.rar import write_volumes

SIGNATURE = b"Rar!\x1a\x07\x00"
MAIN, FILE, END = 0x73, 0x74, 0x7B
MAIN_VOLUME, MAIN_NEWNUMBERING, MAIN_FIRSTVOLUME = 0x0001, 0x0010, 0x0100
FILE_SPLIT_BEFORE, FILE_SPLIT_AFTER, FILE_LARGE, LONG_BLOCK = 0x0001, 0x0002, 0x0100, 0x8000
END_NEXT_VOLUME, END_VOLNUMBER = 0x0001, 0x0008
HOST_UNIX, VERSION_29, METHOD_STORE = 3, 29, 0x30
DOS_TIME = (2020 - 1980) << 25 | 1 << 21 | 1 << 16  # 2020-01-01 00:00


def _block(kind: int, flags: int, body: bytes) -> bytes:
    """A RAR4 block: its 16-bit CRC is the low half of CRC32 over type, flags, size, body."""
    rest = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def _file_header(name: bytes, piece: int, size: int, crc: int, flags: int, *, large: bool) -> bytes:
    if large:
        flags |= FILE_LARGE
    body = struct.pack(
        "<IIBIIBBHI",
        piece & 0xFFFFFFFF,
        size & 0xFFFFFFFF,
        HOST_UNIX,
        crc,
        DOS_TIME,
        VERSION_29,
        METHOD_STORE,
        len(name),
        0o100644,
    )
    if large:
        body += struct.pack("<II", piece >> 32, size >> 32)
    return _block(FILE, flags | LONG_BLOCK, body + name)


def _frame(name: bytes, i: int, last: bool, piece: int, size: int, crc: int) -> tuple[bytes, bytes]:
    flags = (FILE_SPLIT_BEFORE if i else 0) | (0 if last else FILE_SPLIT_AFTER)
    main_flags = MAIN_VOLUME | MAIN_NEWNUMBERING | (0 if i else MAIN_FIRSTVOLUME)
    end_flags = END_VOLNUMBER | (0 if last else END_NEXT_VOLUME)
    head = SIGNATURE + _block(MAIN, main_flags, bytes(6))
    head += _file_header(name, piece, size, crc, flags, large=size >= 1 << 32)
    return head, _block(END, end_flags, struct.pack("<H", i))


def write_store_set(src: Path, out_dir: Path, stem: str, volume_size: int) -> list[Path]:
    """Store `src` in volumes of `volume_size` data bytes each; returns the volume paths."""
    return write_volumes(src, out_dir, stem, volume_size, _frame)
