"""How a file is cut for a multipart upload, and where it goes in the bucket. Pure: no I/O
but the reads of `read_part` and `sha256_of` (which callers run in a thread)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from nntp.media import Piece

MIB = 1024 * 1024
#: S3's (and R2's) limits: at most 10 000 parts, each but the last at least 5 MiB.
MAX_PARTS = 10_000
#: Ours: big enough that a film is a few hundred requests, small enough that `concurrency`
#: parts in memory stay a few tens of MiB.
MIN_PART = 8 * MIB
#: Every object Matinee writes is under this prefix: the start-up sweep looks only there.
PREFIX = "movies/"
HASH_CHUNK = 4 * MIB


def part_size(size: int) -> int:
    """The part size for a file of ``size`` bytes: at least 8 MiB, whole MiB, and large enough
    that the file fits in 10 000 parts."""
    needed = -(-size // MAX_PARTS)  # ceil
    return max(MIN_PART, -(-needed // MIB) * MIB)


def part_count(size: int, part: int) -> int:
    """Parts of ``part`` bytes a file of ``size`` is cut into (an empty file is one part)."""
    return max(1, -(-size // part))


def part_span(number: int, size: int, part: int) -> tuple[int, int]:
    """(offset, length) of part ``number`` (1-based)."""
    offset = (number - 1) * part
    return offset, max(0, min(part, size - offset))


def object_key(job_id: str, name: str) -> str:
    """``movies/{job_id}/{name}``: a job's objects share one prefix, so deleting a job
    deletes everything under it. ``name`` is the movie's file name (already checked when the
    job took it from the post: no directories, no control characters)."""
    return f"{job_prefix(job_id)}{name}"


def job_prefix(job_id: str) -> str:
    return f"{PREFIX}{job_id}/"


def job_of_key(key: str) -> str | None:
    """The job id a key of ours belongs to; None for a key outside the prefix."""
    if not key.startswith(PREFIX):
        return None
    job_id, sep, _ = key[len(PREFIX) :].partition("/")
    return job_id if sep and job_id else None


#: Where a movie's bytes lie on disk: (offset, length) -> the pieces of files that hold them
#: (a MediaView's ``pieces``: one file, or the volumes of a store-mode RAR set).
Pieces = Callable[[int, int], list[Piece]]


def read_part(pieces: Pieces, number: int, size: int, part: int) -> bytes:
    """Part ``number`` of the movie, read from disk (in a thread: never on the event loop)."""
    offset, length = part_span(number, size, part)
    found = pieces(offset, length)
    # One piece (a plain file) is read as it is; volumes are joined (one copy).
    data = _pread(found[0]) if len(found) == 1 else b"".join(_pread(p) for p in found)
    if len(data) != length:
        raise OSError(f"the movie is shorter than {size} bytes")
    return data


def part_with_md5(pieces: Pieces, number: int, size: int, part: int) -> tuple[bytes, str]:
    """The part and its Content-MD5 (base64), both made in the reading thread: the store
    checks the bytes it got against it, and the event loop never hashes a part."""
    data = read_part(pieces, number, size, part)
    md5 = hashlib.md5(data, usedforsecurity=False).digest()
    return data, base64.b64encode(md5).decode()


def sha256_of(pieces: Pieces, size: int) -> str:
    """The movie's SHA-256, read in chunks (in a thread)."""
    digest = hashlib.sha256()
    for offset in range(0, size, HASH_CHUNK):
        for piece in pieces(offset, min(HASH_CHUNK, size - offset)):
            digest.update(_pread(piece))
    return digest.hexdigest()


def file_pieces(path: Path) -> Pieces:
    """The pieces of a movie that is one plain file."""

    def pieces(offset: int, length: int) -> list[Piece]:
        return [Piece(str(path), offset, length)]

    return pieces


def _pread(piece: Piece) -> bytes:
    fd = os.open(piece.path, os.O_RDONLY | os.O_NOFOLLOW)  # links are never followed
    try:
        data = os.pread(fd, piece.length, piece.offset)
    finally:
        os.close(fd)
    if len(data) != piece.length:
        raise OSError(f"{Path(piece.path).name} is shorter than expected")
    return data
