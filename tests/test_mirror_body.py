"""A part streams from disk while it is sent: `SpanBody` over real files (several volumes,
every way of reading it), and the uploader against moto's S3 server, where no part is ever
whole in memory, no read of the movie runs on the event loop, and a movie that cannot be read
mid-part stops the upload instead of being retried as R2's fault."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nntp.media import Piece
from server.config.settings import R2Config
from server.mirror import client as r2_client
from server.mirror.body import SpanBody
from server.mirror.client import open_client
from server.mirror.parts import MIB, file_pieces, object_key, part_md5
from server.mirror.upload import Target, Uploader
from server.store.db import Store, store_context
from tests.support.jobs import new_job
from tests.support.s3 import FaultProxy, Moto, is_part, r2_settings

PART = 8 * MIB  # what the uploader picks for these sizes
SIZE = 2 * PART + 12345  # three parts, the last one short


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(r2_client, "BACKOFF_FIRST", 0.01)


# -- SpanBody over files on disk -------------------------------------------------------------


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[list[Piece], bytes]:
    """Three files holding a span in pieces (at offsets inside them, one piece a byte long),
    and the span's bytes."""
    spans = [
        (b"head" + os.urandom(1000), 4, 700),
        (os.urandom(10), 3, 1),
        (os.urandom(5000), 0, 5000),
    ]
    pieces, data = [], b""
    for i, (content, offset, length) in enumerate(spans):
        path = tmp_path / f"set.part{i + 1}.rar"
        path.write_bytes(content)
        pieces.append(Piece(str(path), offset, length))
        data += content[offset : offset + length]
    return pieces, data


@pytest.mark.parametrize("chunk", [1, 7, 700, 701, 4096, 5701, 100_000])
def test_a_span_reads_across_its_files_in_any_chunks(
    volumes: tuple[list[Piece], bytes], chunk: int
) -> None:
    pieces, data = volumes
    with SpanBody(pieces) as body:
        got = b"".join(iter(lambda: body.read(chunk), b""))
        assert got == data and body.tell() == len(data)
        body.seek(0)
        buffer = bytearray(chunk)
        into = bytearray()
        while n := body.readinto(buffer):
            into += buffer[:n]
        assert into == data


def test_a_span_seeks_like_a_file(volumes: tuple[list[Piece], bytes]) -> None:
    pieces, data = volumes
    with SpanBody(pieces) as body:
        assert body.seekable() and body.readable() and not body.writable()
        assert body.seek(0, io.SEEK_END) == len(data) == body.size
        assert body.read(10) == b""
        assert body.seek(-5, io.SEEK_END) == len(data) - 5
        assert body.read() == data[-5:]
        body.seek(699)
        assert body.read(3) == data[699:702]  # the last byte of one file, then the next two
        body.seek(-2, io.SEEK_CUR)
        assert body.read(1) == data[700:701]
        assert body.read(-1) == data[701:]
        with pytest.raises(ValueError, match="negative"):
            body.seek(-1)
    with pytest.raises(ValueError, match="closed"):
        body.read(1)


def test_a_short_or_linked_file_is_an_error_never_short_content(
    volumes: tuple[list[Piece], bytes], tmp_path: Path
) -> None:
    pieces, _ = volumes
    last = Path(pieces[-1].path)
    last.write_bytes(last.read_bytes()[:4000])  # 1000 bytes short of its piece
    with SpanBody(pieces) as body, pytest.raises(OSError, match="shorter than expected"):
        body.read()
    assert body.error is not None
    linked = tmp_path / "linked.rar"
    linked.symlink_to(pieces[0].path)  # links are never followed
    with SpanBody([Piece(str(linked), 0, 10)]) as body, pytest.raises(OSError):
        body.read()
    assert body.error is not None


def test_the_md5_of_a_part_is_read_through_its_pieces(volumes: tuple[list[Piece], bytes]) -> None:
    pieces, data = volumes
    assert part_md5(pieces) == base64.b64encode(hashlib.md5(data).digest()).decode()


# -- the uploader against moto ---------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with store_context(tmp_path / "store.sqlite3") as opened:
        yield opened


async def _uploader(
    stack: AsyncExitStack, store: Store, endpoint: str, bucket: str, concurrency: int
) -> Uploader:
    config = R2Config(**r2_settings(endpoint, bucket, concurrency=concurrency))
    client = await open_client(config, stack)
    return Uploader(client, bucket, store, concurrency=concurrency)


async def _movie(store: Store, tmp_path: Path) -> tuple[Target, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "Film.2024.mkv"
    await asyncio.to_thread(path.write_bytes, data)
    job = await store.jobs.create(new_job(dir=str(tmp_path)))
    key = object_key(job.job_id, path.name)
    return Target(job.job_id, file_pieces(path), SIZE, key, "video/x-matroska"), data


async def _nothing(_done: int) -> None:
    pass


async def test_no_part_is_ever_whole_in_memory_nor_read_on_the_event_loop(
    tmp_path: Path, store: Store, moto_server: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    target, data = await _movie(store, tmp_path)
    loop_thread = threading.get_ident()
    reads: list[tuple[int, int]] = []  # (thread, bytes asked) of each read of a body
    read = SpanBody.read

    def recorded(self: SpanBody, size: int | None = -1) -> bytes:
        reads.append((threading.get_ident(), -1 if size is None else size))
        return read(self, size)

    monkeypatch.setattr(SpanBody, "read", recorded)
    async with AsyncExitStack() as stack:
        uploader = await _uploader(stack, store, moto_server.url, bucket, concurrency=3)
        tracemalloc.start()  # what is allocated from now on (not the test's copy of the movie)
        try:
            done = await uploader.upload(target, _nothing)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Python's allocations peaked below one part, with three parts in flight (the bytes of
    # a part, wrapped by botocore and copied whole by aiohttp, were 16 MiB each).
    assert peak < PART, f"{peak / MIB:.1f} MiB"
    assert done.parts_sent == 3
    assert reads and all(thread != loop_thread for thread, _ in reads)  # in the executor
    assert all(0 < size < PART for _, size in reads)  # in chunks, never a part at once
    got = await asyncio.to_thread(
        lambda: moto_server.client().get_object(Bucket=bucket, Key=target.key)["Body"].read()
    )
    assert got == data and hashlib.sha256(got).hexdigest() == done.sha256


async def test_a_movie_unreadable_mid_part_stops_the_upload_without_retrying_r2(
    tmp_path: Path, store: Store, s3_proxy: FaultProxy, moto_server: Moto
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    target, _ = await _movie(store, tmp_path)
    movie = Path(target.pieces(0, 1)[0].path)

    def gone(request: web.Request) -> bool:
        # R2 fails the first part after it took its bytes, and the movie goes away then:
        # the part's next try cannot read it.
        if is_part(request):
            movie.unlink()
            return True
        return False

    s3_proxy.fail(503, times=1, when=gone)
    async with AsyncExitStack() as stack:
        uploader = await _uploader(stack, store, s3_proxy.url, bucket, concurrency=1)
        with pytest.raises(FileNotFoundError):
            await uploader.upload(target, _nothing)
    tried: list[Any] = [s for s in s3_proxy.seen if s.method == "PUT"]
    assert [s.status for s in tried] == [503]  # R2 was not asked again
