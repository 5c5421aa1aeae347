"""Store-mode RAR4 and RAR5 archives built byte by byte, with correct CRCs: for the parser's
hostile-input tests, and for posts shaped like real releases (a movie split into volumes)
that unar and lsar read like those made by WinRAR.

Command line, for the benchmarks (which may not import tests/; run from the repository
root): ``python -m tests.support.rar FOLDER --size-mib 2048 --volume-mib 100``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import struct
import sys
import zlib
from pathlib import Path

from nntp.rar import RAR4_SIGNATURE, RAR5_SIGNATURE

DOS_TIME = 0x5A210000  # 2025-01-01 00:00 (a zero date makes unar complain)


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


def movie_set(content: bytes, cuts: list[int], name: bytes = b"movie.mkv") -> list[bytes]:
    """A RAR5 store-mode volume set of one file (``name``) split at ``cuts``."""
    bounds = [0, *cuts, len(content)]
    volumes = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        last = index == len(bounds) - 2
        part = content[start:stop]
        # Earlier parts carry the CRC of their own bytes, the last one that of the file.
        crc = zlib.crc32(content if last else part)
        volumes.append(rar5_volume(name, part, index, last=last, size=len(content), crc=crc))
    return volumes


def rar5_volume(name: bytes, part: bytes, index: int, *, last: bool, size: int, crc: int) -> bytes:
    """Volume ``index`` (0-based) of a RAR5 store-mode set of one file of ``size`` bytes."""
    split = (0x0008 if index else 0) | (0 if last else 0x0010)
    header = r5_file(name, part, block_flags=split, size=size, crc=crc)
    number = index if index else None
    return RAR5_SIGNATURE + r5_main(0x0001, number) + header + r5_end(not last)


def write_rar5_set(folder: Path, stem: str, name: str, size: int, volume: int) -> str:
    """A RAR5 store-mode set of a random movie of ``size`` bytes in ``volume``-byte parts,
    written to ``folder`` as ``stem.partNN.rar`` one volume at a time (a set of gigabytes
    never sits in memory). Returns the movie's SHA-256."""
    digest, whole_crc = hashlib.sha256(), 0
    count = -(-size // volume)
    for index in range(count):
        part = os.urandom(min(volume, size - index * volume))
        digest.update(part)
        whole_crc = zlib.crc32(part, whole_crc)
        last = index == count - 1
        crc = whole_crc if last else zlib.crc32(part)
        data = rar5_volume(name.encode(), part, index, last=last, size=size, crc=crc)
        (folder / f"{stem}.part{index + 1:02d}.rar").write_bytes(data)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.rar",
        description="Write a RAR5 store-mode set of a random movie; print its SHA-256.",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--volume-mib", type=int, default=100)
    parser.add_argument("--name", default="Movie.2019.1080p.BluRay.x264-GRP.mkv")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    stem = args.name.rsplit(".", 1)[0].lower()
    print(write_rar5_set(args.folder, stem, args.name, args.size_mib << 20, args.volume_mib << 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def extra_record(kind: int, payload: bytes) -> bytes:
    body = vint(kind) + payload
    return vint(len(body)) + body


def rar4_movie_set(name: bytes, content: bytes, cuts: list[int]) -> list[bytes]:
    """A RAR4 store-mode volume set of one file split at ``cuts``, as WinRAR 3-4 writes it
    with new volume numbering: the first volume marked so, each volume's number in its end
    block, each part's CRC over its own bytes except the last part's, which covers the file.
    """
    bounds = [0, *cuts, len(content)]
    volumes = []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        last = index == len(bounds) - 2
        part = content[start:stop]
        split = (0x0001 if index else 0) | (0 if last else 0x0002)
        crc = zlib.crc32(content if last else part)
        fixed = struct.pack(
            "<IIBIIBBHI", len(part), len(content), 3, crc, DOS_TIME, 29, 0x30, len(name), 0o100644
        )
        header = r4_block(0x74, split | 0x8000, fixed + name) + part
        main = r4_main(0x0001 | 0x0010 | (0 if index else 0x0100))
        end = r4_end(0 if last else 0x0001, number=index)
        volumes.append(RAR4_SIGNATURE + main + header + end)
    return volumes
