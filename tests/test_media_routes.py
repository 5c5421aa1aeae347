"""/media range serving, seen from a player: headers, exact bytes, partial downloads, faults.

Two test doubles stand in for the engine's views: ``PieceView`` over files that are complete
(one file, or several like RAR volumes with headers between the pieces), and ``GatedView``
over a file whose bytes past a gate are not written yet, as during a download; the test opens
the gate. Bytes past the gate are garbage on disk, so serving them early would show.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from nntp.errors import SegmentsMissing
from nntp.media import MediaView, Piece, read_pieces
from server.http.errors import json_errors
from server.http.media import MEDIA_PATH, media_handler

JOB = "job_1700000000000_ab12"
GARBAGE = b"\xee"


class PieceView:
    """A complete movie laid out as (path, offset in file, length) pieces."""

    def __init__(
        self,
        layout: list[Piece],
        *,
        name: str = "movie.mp4",
        content_type: str = "video/mp4",
        etag: str | None = None,
    ) -> None:
        self.layout = layout
        self.name = name
        self.size = sum(p.length for p in layout)
        self.content_type = content_type
        self.etag = etag if etag is not None else f'"{JOB}-{self.size}"'
        self.prioritised: list[tuple[int, int]] = []
        self.held = 0  # priorities taken and not yet released
        self.waits: list[tuple[int, int]] = []
        self.waiting = 0

    def pieces(self, offset: int, length: int) -> list[Piece]:
        out, pos, end = [], 0, offset + length
        for p in self.layout:
            lo, hi = max(offset, pos), min(end, pos + p.length)
            if lo < hi:
                out.append(Piece(p.path, p.offset + lo - pos, hi - lo))
            pos += p.length
        return out

    def available(self, offset: int) -> int:
        return max(0, self.size - offset)

    async def wait(self, offset: int, end: int) -> None:
        self.waits.append((offset, end))

    async def read(self, offset: int, length: int) -> bytes:
        await self.wait(offset, offset + length)
        return await asyncio.to_thread(read_pieces, self.pieces(offset, length))

    def prioritise(self, offset: int, end: int) -> Callable[[], None]:
        self.prioritised.append((offset, end))
        self.held += 1
        released = False

        def release() -> None:
            nonlocal released
            assert not released, "released twice"
            released = True
            self.held -= 1

        return release


class GatedView(PieceView):
    """One file of which only [0, gate) is on disk; ``open_to`` lets more of it "download"."""

    def __init__(self, path: Path, data: bytes, gate: int, **kw: Any) -> None:
        path.write_bytes(data[:gate] + GARBAGE * (len(data) - gate))
        super().__init__([Piece(str(path), 0, len(data))], **kw)
        self.path, self.data, self.gate = path, data, gate
        self.missing_from: int | None = None  # bytes from here on will never come
        self.changed = asyncio.Event()

    def open_to(self, gate: int) -> None:
        with self.path.open("r+b") as f:
            f.seek(self.gate)
            f.write(self.data[self.gate : gate])
        self.gate = gate
        self.changed.set()

    def give_up_from(self, offset: int) -> None:
        self.missing_from = offset
        self.changed.set()

    def available(self, offset: int) -> int:
        return max(0, self.gate - offset)

    async def wait(self, offset: int, end: int) -> None:
        self.waits.append((offset, end))
        self.waiting += 1
        try:
            while self.gate < end:
                if self.missing_from is not None and end > self.missing_from:
                    raise SegmentsMissing(f"bytes {self.missing_from}- are missing on every server")
                self.changed.clear()
                await self.changed.wait()
        finally:
            self.waiting -= 1


def file_view(path: Path, data: bytes, **kw: Any) -> PieceView:
    path.write_bytes(data)
    return PieceView([Piece(str(path), 0, len(data))], **kw)


def volumes_view(tmp_path: Path, data: bytes, cuts: list[int], headers: list[int]) -> PieceView:
    """The movie split over volume files, each with a junk header before its piece."""
    layout, start = [], 0
    for i, (cut, header) in enumerate(zip([*cuts, len(data)], headers, strict=True)):
        path = tmp_path / f"movie.part{i + 1}.rar"
        path.write_bytes(os.urandom(header) + data[start:cut] + os.urandom(17))
        layout.append(Piece(str(path), header, cut - start))
        start = cut
    return PieceView(layout, name="movie.mkv", content_type="video/x-matroska")


def make_app(views: Mapping[str, MediaView], **kw: Any) -> web.Application:
    async def lookup(job_id: str, name: str) -> MediaView | None:
        view = views.get(job_id)
        return view if view is not None and view.name == name else None

    # The main app's error middleware gives /media its JSON errors; the API's one stands in.
    app = web.Application(middlewares=[json_errors])
    app.router.add_get(MEDIA_PATH, media_handler(lookup, **kw))
    return app


def url(view: MediaView) -> str:
    return f"/media/{JOB}/{view.name}"


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def read_until_cut(resp: aiohttp.ClientResponse) -> tuple[bytes, BaseException | None]:
    """The body as far as it came, and the error that ended it early (None if it did not)."""
    got = bytearray()
    try:
        # A body that is neither completed nor cut would leave the client waiting forever.
        async with asyncio.timeout(10):
            async for chunk in resp.content.iter_any():
                got += chunk
    except aiohttp.ClientError as exc:
        return bytes(got), exc
    return bytes(got), None


DATA = os.urandom(1000)
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def small(aiohttp_client: AiohttpClient, tmp_path: Path) -> tuple[Client, PieceView]:
    view = file_view(tmp_path / "movie.mp4", DATA)
    return await aiohttp_client(make_app({JOB: view})), view


# -- headers and bytes of a complete file -------------------------------------------------


async def test_full_get(small: tuple[Client, PieceView]) -> None:
    client, view = small
    resp = await client.get(url(view))
    assert resp.status == 200
    assert await resp.read() == DATA
    assert resp.headers["Content-Length"] == "1000"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["ETag"] == f'"{JOB}-1000"'
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Content-Range" not in resp.headers
    assert view.prioritised == []  # nothing to fetch, nothing to prioritise


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-", 0, 999),
        ("bytes=5-", 5, 999),
        ("bytes=100-199", 100, 199),
        ("bytes=-1", 999, 999),
        ("bytes=-300", 700, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=990-999999999999", 990, 999),
        ("BYTES = 3-4", 3, 4),
    ],
)
async def test_ranges(small: tuple[Client, PieceView], header: str, first: int, last: int) -> None:
    client, view = small
    resp = await client.get(url(view), headers={"Range": header})
    assert resp.status == 206
    assert await resp.read() == DATA[first : last + 1]
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/1000"
    assert resp.headers["Content-Length"] == str(last - first + 1)
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable(small: tuple[Client, PieceView], header: str) -> None:
    client, view = small
    resp = await client.get(url(view), headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */1000"
    assert await resp.read() == b""


@pytest.mark.parametrize("header", ["bytes=1-2,4-5", "bytes=9-3", "bytes=abc", "items=1-2"])
async def test_ignored_range_sends_everything(small: tuple[Client, PieceView], header: str) -> None:
    client, view = small
    resp = await client.get(url(view), headers={"Range": header})
    assert resp.status == 200
    assert "Content-Range" not in resp.headers
    assert await resp.read() == DATA


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        (f'"{JOB}-1000"', 206),
        (f'"{JOB}-999"', 200),  # another version: the client's copy is stale
        (f'W/"{JOB}-1000"', 200),  # weak tags never match strongly
        ("Sun, 06 Nov 1994 08:49:37 GMT", 200),  # no Last-Modified to compare with
    ],
)
async def test_if_range(small: tuple[Client, PieceView], if_range: str, status: int) -> None:
    client, view = small
    resp = await client.get(url(view), headers={"Range": "bytes=10-19", "If-Range": if_range})
    assert resp.status == status
    assert await resp.read() == (DATA[10:20] if status == 206 else DATA)


async def test_if_range_without_range_is_ignored(
    small: tuple[Client, PieceView],
) -> None:
    client, view = small
    resp = await client.get(url(view), headers={"If-Range": f'"{JOB}-1000"'})
    assert resp.status == 200
    assert await resp.read() == DATA


async def test_head(small: tuple[Client, PieceView]) -> None:
    client, view = small
    get = await client.get(url(view))
    await get.read()
    head = await client.head(url(view))
    assert head.status == 200
    assert await head.read() == b""
    for name in ("Content-Length", "Content-Type", "Accept-Ranges", "ETag", "Cache-Control"):
        assert head.headers[name] == get.headers[name], name


async def test_head_ignores_range(small: tuple[Client, PieceView]) -> None:
    # RFC 9110 14.2 defines range handling for GET only.
    client, view = small
    head = await client.head(url(view), headers={"Range": "bytes=0-9"})
    assert head.status == 200
    assert head.headers["Content-Length"] == "1000"
    assert "Content-Range" not in head.headers


async def test_content_type_comes_from_the_view(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    view = file_view(tmp_path / "m.mkv", DATA, name="m.mkv", content_type="video/x-matroska")
    client = await aiohttp_client(make_app({JOB: view}))
    resp = await client.get(url(view), headers={"Range": "bytes=0-3"})
    assert resp.headers["Content-Type"] == "video/x-matroska"


async def test_empty_file(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    view = file_view(tmp_path / "movie.mp4", b"")
    client = await aiohttp_client(make_app({JOB: view}))
    resp = await client.get(url(view))
    assert (resp.status, await resp.read(), resp.headers["Content-Length"]) == (200, b"", "0")
    resp = await client.get(url(view), headers={"Range": "bytes=0-"})
    assert (resp.status, resp.headers["Content-Range"]) == (416, "bytes */0")


@pytest.mark.parametrize("path", ["/media/job_0_none/movie.mp4", f"/media/{JOB}/other.mp4"])
async def test_unknown_job_or_name_is_404_json(small: tuple[Client, PieceView], path: str) -> None:
    client, _ = small
    resp = await client.get(path)
    assert resp.status == 404
    body = await resp.json()
    assert body["code"] == "NOT_FOUND"
    assert set(body) == {"error", "code"}
    assert isinstance(body["error"], str) and body["error"]


async def test_keep_alive_serves_requests_back_to_back(
    small: tuple[Client, PieceView],
) -> None:
    # A player reuses its connection: each body must end exactly where its headers said.
    client, view = small
    for first in range(0, 1000, 97):
        resp = await client.get(url(view), headers={"Range": f"bytes={first}-{first + 9}"})
        assert await resp.read() == DATA[first : first + 10]


# -- several files, like the volumes of a store-mode RAR set ------------------------------

BIG = os.urandom(1_000_000)
CUTS = [300_001, 550_001]


class SendfileSpy:
    """Records loop.sendfile calls (path, offset, count), then does the real thing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, int | None]] = []
        loop = asyncio.get_running_loop()
        real = loop.sendfile

        async def spy(
            transport: asyncio.WriteTransport,
            file: BinaryIO,
            offset: int = 0,
            count: int | None = None,
            *,
            fallback: bool = True,
        ) -> int:
            self.calls.append((Path(file.name).name, offset, count))
            return await real(transport, file, offset, count, fallback=fallback)

        monkeypatch.setattr(loop, "sendfile", spy)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "bytes=299990-300010",  # across the first boundary
        "bytes=300001-550000",  # exactly the middle volume
        "bytes=300000-550001",  # one byte either side of it
        "bytes=-450000",
        "bytes=0-0",
    ],
)
@pytest.mark.parametrize("use_sendfile", [True, False])
async def test_volumes_serve_exact_bytes(
    aiohttp_client: AiohttpClient, tmp_path: Path, header: str | None, use_sendfile: bool
) -> None:
    view = volumes_view(tmp_path, BIG, CUTS, headers=[57, 100, 33])
    client = await aiohttp_client(make_app({JOB: view}, use_sendfile=use_sendfile))
    resp = await client.get(url(view), headers={"Range": header} if header else {})
    body = await resp.read()
    if header is None:
        assert resp.status == 200
        assert body == BIG
    else:
        first, last = resp.headers["Content-Range"].split()[1].split("/")[0].split("-")
        assert body == BIG[int(first) : int(last) + 1]
        assert len(body) == int(resp.headers["Content-Length"])


async def test_complete_volumes_go_out_in_one_sendfile_each(
    aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = volumes_view(tmp_path, BIG, CUTS, headers=[57, 100, 33])
    client = await aiohttp_client(make_app({JOB: view}, chunk_size=64 * 1024))
    spy = SendfileSpy(monkeypatch)
    resp = await client.get(url(view))
    assert await resp.read() == BIG
    assert spy.calls == [
        ("movie.part1.rar", 57, 300_001),
        ("movie.part2.rar", 100, 250_000),
        ("movie.part3.rar", 33, 449_999),
    ]
    assert view.waits == [] and view.prioritised == []


async def test_twenty_megabytes_read_whole_match(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    data = os.urandom(20 * 1024 * 1024)
    view = file_view(tmp_path / "movie.mp4", data)
    client = await aiohttp_client(make_app({JOB: view}))
    resp = await client.get(url(view))
    digest = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_concurrent_readers(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    view = volumes_view(tmp_path, BIG, CUTS, headers=[57, 100, 33])
    client = await aiohttp_client(make_app({JOB: view}))

    async def read(header: str) -> bytes:
        async with client.get(url(view), headers={"Range": header}) as resp:
            return await resp.read()

    starts = [i * 31_337 for i in range(16)]
    bodies = await asyncio.gather(*(read(f"bytes={s}-") for s in starts))
    assert all(body == BIG[s:] for s, body in zip(starts, bodies, strict=True))


# -- while the download runs --------------------------------------------------------------


@pytest.fixture
def gated(tmp_path: Path) -> GatedView:
    return GatedView(tmp_path / "movie.mkv", BIG, gate=100_000, name="movie.mkv")


async def test_partly_available_range_streams_as_bytes_arrive(
    aiohttp_client: AiohttpClient, gated: GatedView
) -> None:
    client = await aiohttp_client(make_app({JOB: gated}, chunk_size=64 * 1024))
    async with client.get(url(gated), headers={"Range": "bytes=50000-"}) as resp:
        # Status and TOTAL are final before the download is.
        assert resp.status == 206
        assert resp.headers["Content-Range"] == "bytes 50000-999999/1000000"
        assert resp.headers["Content-Length"] == "950000"
        # The bytes on disk arrive at once, before anything more is downloaded...
        assert await resp.content.readexactly(50_000) == BIG[50_000:100_000]
        await until(lambda: gated.waiting == 1)
        assert gated.waits == [(100_000, 100_000 + 64 * 1024)]
        # ...while the response holds a priority on the rest of its range.
        assert gated.prioritised == [(50_000, 1_000_000)]
        assert gated.held == 1
        gated.open_to(600_000)
        assert await resp.content.readexactly(500_000) == BIG[100_000:600_000]
        gated.open_to(1_000_000)
        assert await resp.read() == BIG[600_000:]
    await until(lambda: gated.held == 0)


async def test_whole_download_streamed_in_steps(
    aiohttp_client: AiohttpClient, gated: GatedView
) -> None:
    client = await aiohttp_client(make_app({JOB: gated}, chunk_size=64 * 1024))

    async def download() -> None:
        for gate in range(150_000, 1_000_001, 50_000):
            await until(lambda: gated.waiting > 0)
            gated.open_to(gate)

    task = asyncio.create_task(download())
    resp = await client.get(url(gated))
    assert await resp.read() == BIG
    await task
    assert gated.held == 0


class NoCancelServer(TestServer):
    """A server as production runs it: aiohttp does not cancel handlers on disconnect."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return web.AppRunner(self.app, **kwargs)


@pytest.mark.parametrize("cancelling", [True, False], ids=["cancelling", "not-cancelling"])
async def test_client_leaving_mid_body_releases_priority(
    aiohttp_client: AiohttpClient, gated: GatedView, cancelling: bool
) -> None:
    app = make_app({JOB: gated}, gone_poll=0.02)
    client: TestClient[web.Request, Any]
    if cancelling:
        client = await aiohttp_client(app)
    else:
        client = await aiohttp_client(NoCancelServer(app))
    resp = await client.get(url(gated), headers={"Range": "bytes=0-"})
    assert await resp.content.readexactly(100_000) == BIG[:100_000]
    await until(lambda: gated.waiting == 1)
    assert gated.held == 1
    resp.close()  # the player seeks elsewhere: this connection is dropped
    await until(lambda: gated.held == 0 and gated.waiting == 0)
    # Later bytes still serve other readers normally.
    gated.open_to(1_000_000)
    resp = await client.get(url(gated), headers={"Range": "bytes=900000-"})
    assert await resp.read() == BIG[900_000:]


async def test_missing_segments_cut_the_body_short(
    aiohttp_client: AiohttpClient, gated: GatedView, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(make_app({JOB: gated}))
    caplog.set_level(logging.WARNING, logger="server.http.media")
    async with client.get(url(gated), headers={"Range": "bytes=20000-"}) as resp:
        assert resp.status == 206
        first = await resp.content.readexactly(80_000)
        await until(lambda: gated.waiting == 1)
        gated.give_up_from(100_000)  # the gap itself is missing everywhere
        rest, error = await read_until_cut(resp)
    body = first + rest
    assert error is not None  # the client knows the body is incomplete
    assert body == BIG[20_000:100_000]  # and what it got is right
    assert gated.held == 0
    (record,) = [r for r in caplog.records if r.name == "server.http.media"]
    line = record.getMessage()
    assert JOB in line and "movie.mkv" in line
    assert "bytes 20000-999999 of 1000000" in line
    assert "cut at byte 100000" in line
    assert "missing on every server" in line


async def test_next_request_after_a_cut_is_clean(
    aiohttp_client: AiohttpClient, gated: GatedView
) -> None:
    # The cut closes the connection, so the next response cannot be read as this body's tail.
    client = await aiohttp_client(make_app({JOB: gated}))
    gated.give_up_from(100_000)
    resp = await client.get(url(gated))
    body, error = await read_until_cut(resp)
    assert error is not None and body == BIG[:100_000]
    resp = await client.get(url(gated), headers={"Range": "bytes=10-19"})
    assert await resp.read() == BIG[10:20]


async def test_file_shorter_than_the_view_claims_is_cut_not_padded(
    aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    view = file_view(tmp_path / "movie.mp4", DATA)
    (tmp_path / "movie.mp4").write_bytes(DATA[:600])  # e.g. deleted and recreated meanwhile
    client = await aiohttp_client(make_app({JOB: view}))
    caplog.set_level(logging.WARNING, logger="server.http.media")
    resp = await client.get(url(view))
    body, error = await read_until_cut(resp)
    assert error is not None
    assert DATA.startswith(body) and len(body) <= 600
    assert any("gave 600 of 1000 bytes" in r.getMessage() for r in caplog.records)


async def test_deleted_file_is_cut_and_logged(
    aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    view = file_view(tmp_path / "movie.mp4", DATA)
    (tmp_path / "movie.mp4").unlink()
    client = await aiohttp_client(make_app({JOB: view}))
    caplog.set_level(logging.WARNING, logger="server.http.media")
    resp = await client.get(url(view))
    body, error = await read_until_cut(resp)
    assert (body, error is not None) == (b"", True)
    assert any("No such file" in r.getMessage() for r in caplog.records)
