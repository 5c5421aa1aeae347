"""One client cannot hold every slot: a connection that never finishes its headers is closed,
and event streams are bounded per client address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.http.limits import MAX_STREAMS_PER_CLIENT, server_options
from tests.support.app import API, HEADERS, Client, post_of, settings_for, submit
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer


@pytest.fixture
async def nntp(fake_nntp: FakeNntpFactory) -> FakeNntpServer:
    return await fake_nntp()


@pytest.fixture
async def slow_client(tmp_path: Path, nntp: FakeNntpServer) -> AsyncIterator[Client]:
    """The app with a header timeout of one second (serve uses server_options() too)."""
    server = TestServer(create_app(settings_for(tmp_path, nntp)))
    await server.start_server(**server_options(header_seconds=1.0))
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()


async def test_a_request_whose_headers_never_end_is_closed(slow_client: Client) -> None:
    assert slow_client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_client.port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and then nothing
    await writer.drain()
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        leftover = await reader.read()  # returns at EOF: the server closed the connection
    took = asyncio.get_running_loop().time() - started
    assert leftover == b"" and took < 5, took
    writer.close()
    # A client that sends its request at a normal pace is served as ever.
    resp = await slow_client.get("/api/health")
    assert resp.status == 200


async def test_event_streams_are_bounded_per_client(
    slow_client: Client, nntp: FakeNntpServer
) -> None:
    nzb, arts = post_of(b"x" * 600_000, "Film.mkv")
    nntp.add(arts)
    nntp.bytes_per_second = 20_000  # half a minute: the job keeps changing meanwhile
    job_id = await submit(slow_client, nzb)
    url = f"{API}/jobs/{job_id}/events"
    opened = [await slow_client.get(url, headers=HEADERS) for _ in range(MAX_STREAMS_PER_CLIENT)]
    assert [r.status for r in opened] == [200] * MAX_STREAMS_PER_CLIENT
    refused = await slow_client.get(url, headers=HEADERS)
    assert refused.status == 429
    assert (await refused.json())["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
    # A stream that ends gives its slot back.
    opened[0].close()
    async with asyncio.timeout(30):
        while True:
            again = await slow_client.get(url, headers=HEADERS)
            if again.status == 200:
                break
            again.release()
            await asyncio.sleep(0.2)
    again.close()
    for resp in opened[1:]:
        resp.close()
