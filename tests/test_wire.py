"""The byte-counting proxy the resume tests rely on: what it counts is what was sent."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.support.wire import WireProxy

PAYLOAD = os.urandom(3_000_000)


async def serve_payload(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the client's request to its end, then send PAYLOAD and close."""
    await reader.read()
    writer.write(PAYLOAD)
    await writer.drain()
    writer.close()


async def test_counts_both_directions_per_connection_and_in_total() -> None:
    server = await asyncio.start_server(serve_payload, "127.0.0.1", 0)
    async with server, WireProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
        for request in (b"x" * 10, b"y" * 70_000):
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
            writer.write(request)
            writer.write_eof()  # the half-close reaches the server through the proxy
            assert await reader.read() == PAYLOAD
            writer.close()
            await writer.wait_closed()
        assert proxy.down_bytes == 2 * len(PAYLOAD)
        assert proxy.up_bytes == 70_010
        assert [(link.number, link.up, link.down) for link in proxy.links] == [
            (1, 10, len(PAYLOAD)),
            (2, 70_000, len(PAYLOAD)),
        ]
        assert await proxy.wait_down(len(PAYLOAD)) == 2 * len(PAYLOAD)  # already there


async def test_wait_down_wakes_mid_transfer_and_stop_cuts_connections() -> None:
    release = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(PAYLOAD[:1_000_000])
        await writer.drain()
        await release.wait()  # the rest never comes: the proxy must not wait for it
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    async with server:
        proxy = WireProxy("127.0.0.1", server.sockets[0].getsockname()[1])
        await proxy.start()
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        async with asyncio.timeout(10):
            assert await proxy.wait_down(500_000) >= 500_000
            waiter = asyncio.ensure_future(proxy.wait_down(2_000_000))
            await reader.readexactly(1_000_000)
            assert proxy.open_links == 1
            await proxy.stop()
            assert await reader.read() == b""  # cut, as a broken line would
            with pytest.raises(ConnectionError):
                await waiter
        assert proxy.open_links == 0
        assert proxy.down_bytes == 1_000_000
        writer.close()
        release.set()
