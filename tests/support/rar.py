"""RAR4 and RAR5 headers and small archives built byte by byte with correct CRCs, so that
hostile input reaches the parser's checks behind the CRC. Whole store-mode volume sets of
a file are written by ``tests/support/rar4.py`` and ``rar5.py`` through ``write_volumes``."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from nntp.rar import RAR5_SIGNATURE


def vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def r5_header(body: bytes) -> bytes:
    size = vint(len(body))
    return struct.pack("<I", zlib.crc32(size + body)) + size + body


def r5_main(flags: int = 0, number: int | None = None) -> bytes:
    if number is not None:
        flags |= 0x0002
    fields = vint(flags) + (vint(number) if number is not None else b"")
    return r5_header(vint(1) + vint(0) + fields)


def r5_file(
    name: bytes,
    data: bytes,
    *,
    block_flags: int = 0,
    file_flags: int = 0x0004,
    method: int = 0,
    size: int | None = None,
    extra: bytes = b"",
    data_size: int | None = None,
    crc: int | None = None,
) -> bytes:
    flags = block_flags | 0x0002 | (0x0001 if extra else 0)
    common = vint(2) + vint(flags) + (vint(len(extra)) if extra else b"")
    common += vint(len(data) if data_size is None else data_size)
    fields = vint(file_flags) + vint(len(data) if size is None else size) + vint(0o644)
    if file_flags & 0x0004:
        fields += struct.pack("<I", zlib.crc32(data) if crc is None else crc)
    fields += vint(method << 7) + vint(1) + vint(len(name)) + name
    return r5_header(common + fields + extra) + data


def r5_end(more: bool = False) -> bytes:
    return r5_header(vint(5) + vint(0) + vint(1 if more else 0))


def r4_block(kind: int, flags: int, body: bytes, crc_end: int | None = None) -> bytes:
    header = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    covered = header if crc_end is None else header[: crc_end - 2]
    return struct.pack("<H", zlib.crc32(covered) & 0xFFFF) + header


def r4_main(flags: int = 0) -> bytes:
    return r4_block(0x73, flags, b"\0" * 6)


def r4_file(
    name: bytes,
    data: bytes,
    *,
    flags: int = 0,
    method: int = 0x30,
    tail: bytes = b"",
    crc_end: int | None = None,
    high: tuple[int, int] | None = None,
) -> bytes:
    fixed = struct.pack(
        "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0, 29, method, len(name), 0o100644
    )
    if high is not None:
        flags |= 0x0100
        fixed += struct.pack("<II", *high)
    return r4_block(0x74, flags | 0x8000, fixed + name + tail, crc_end) + data


def r4_end(flags: int = 0, number: int | None = None) -> bytes:
    body = b""
    if number is not None:
        flags |= 0x0008
        body = struct.pack("<H", number)
    return r4_block(0x7B, flags, body)


def movie_set(content: bytes, cuts: list[int]) -> list[bytes]:
    """A RAR5 store-mode volume set of one file ``movie.mkv`` split at ``cuts``."""
    bounds = [0, *cuts, len(content)]
    volumes = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        last = index == len(bounds) - 2
        split = (0x0008 if index else 0) | (0 if last else 0x0010)
        part = content[start:stop]
        # Earlier parts carry the CRC of their own bytes, the last one that of the file.
        crc = zlib.crc32(content if last else part)
        header = r5_file(b"movie.mkv", part, block_flags=split, size=len(content), crc=crc)
        number = index if index else None
        volumes.append(RAR5_SIGNATURE + r5_main(0x0001, number) + header + r5_end(not last))
    return volumes


def extra_record(kind: int, payload: bytes) -> bytes:
    body = vint(kind) + payload
    return vint(len(body)) + body


# (name, volume index, last?, piece length, file size, CRC) -> the bytes before and after
# the piece in its volume. The CRC is the piece's, the whole file's in the last volume; the
# length of what comes before must not depend on it (it is written again once known).
VolumeFrame = Callable[[bytes, int, bool, int, int, int], tuple[bytes, bytes]]
CHUNK = 1 << 20


def write_volumes(
    src: Path, out_dir: Path, stem: str, volume_size: int, frame: VolumeFrame
) -> list[Path]:
    """Store `src` in volumes ``STEM.partNN.rar`` of `volume_size` data bytes each, framed by
    `frame`, streaming (a set of gigabytes never sits in memory); returns their paths."""
    size = src.stat().st_size
    count = max(1, -(-size // volume_size))
    name = src.name.encode()
    digits = max(2, len(str(count)))
    whole_crc = 0
    paths = []
    with src.open("rb") as f:
        for i in range(count):
            piece = min(volume_size, size - i * volume_size)
            last = i == count - 1
            path = out_dir / f"{stem}.part{i + 1:0{digits}d}.rar"
            with path.open("wb") as out:
                head, tail = frame(name, i, last, piece, size, 0)
                out.write(head)
                piece_crc, left = 0, piece
                while left:
                    chunk = f.read(min(CHUNK, left))
                    piece_crc = zlib.crc32(chunk, piece_crc)
                    whole_crc = zlib.crc32(chunk, whole_crc)
                    out.write(chunk)
                    left -= len(chunk)
                out.write(tail)
                out.seek(0)
                out.write(frame(name, i, last, piece, size, whole_crc if last else piece_crc)[0])
            paths.append(path)
    return paths
