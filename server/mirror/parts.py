"""How a file is cut for a multipart upload, and where it goes in the bucket. Pure: no I/O
but the reads of `part_md5` and `sha256_of` (which callers run in a thread)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from nntp.media import Piece
from server.mirror.body import SpanBody

MIB = 1024 * 1024
#: S3's (and R2's) limits: at most 10 000 parts, each but the last at least 5 MiB.
MAX_PARTS = 10_000
#: Ours: big enough that a film is a few hundred requests (a part streams from disk as it
#: is sent, so its size costs no memory).
MIN_PART = 8 * MIB
#: Every object Matinee writes is under this prefix: the start-up sweep looks only there.
PREFIX = "movies/"
#: Hashing reads this much at a time into one buffer.
HASH_CHUNK = 1 * MIB


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


def part_pieces(pieces: Pieces, number: int, size: int, part: int) -> list[Piece]:
    """Where part ``number`` lies on disk; an ``OSError`` if the movie is shorter."""
    offset, length = part_span(number, size, part)
    return _whole(pieces(offset, length), length, size)


def part_md5(found: Sequence[Piece]) -> str:
    """The part's Content-MD5 (base64), read from disk in chunks (in a thread): the store
    checks the bytes it got against it, and the event loop never hashes a part. The part is
    read again as it is sent (from the page cache), never held whole."""
    digest = hashlib.md5(usedforsecurity=False)
    _read_through(found, digest.update)
    return base64.b64encode(digest.digest()).decode()


def sha256_of(pieces: Pieces, size: int) -> str:
    """The movie's SHA-256, read in chunks (in a thread)."""
    digest = hashlib.sha256()
    _read_through(_whole(pieces(0, size), size, size), digest.update)
    return digest.hexdigest()


def file_pieces(path: Path) -> Pieces:
    """The pieces of a movie that is one plain file."""

    def pieces(offset: int, length: int) -> list[Piece]:
        return [Piece(str(path), offset, length)]

    return pieces


def _whole(found: list[Piece], length: int, size: int) -> list[Piece]:
    if sum(p.length for p in found) != length:
        raise OSError(f"the movie is shorter than {size} bytes")
    return found


def _read_through(found: Sequence[Piece], update: Callable[[memoryview], object]) -> None:
    """Feed ``found``'s bytes to ``update`` through one reused buffer: no allocation per
    chunk (freed multi-MiB blocks are what glibc keeps, and what RSS shows)."""
    buffer = memoryview(bytearray(HASH_CHUNK))
    with SpanBody(found) as body:
        while n := body.readinto(buffer):
            update(buffer[:n])
