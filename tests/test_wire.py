"""The byte-counting proxy the resume tests rely on: what it counts is what was sent."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from tests.support.wire import Shape, WireProxy, mbit

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


async def serve_on_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Each line `N` asks for N bytes of PAYLOAD."""
    while line := await reader.readline():
        writer.write(PAYLOAD[: int(line)])
        await writer.drain()
    writer.close()


async def fetch(proxy: WireProxy, *sizes: int) -> list[float]:
    """Open a connection, ask for each size in turn; seconds from the connect to each end."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    out = []
    for n in sizes:
        writer.write(b"%d\n" % n)
        assert await reader.readexactly(n) == PAYLOAD[:n]
        out.append(loop.time() - t0)
    writer.close()
    return out


async def test_a_line_delays_each_way_and_greets_after_two_round_trips() -> None:
    server = await asyncio.start_server(serve_on_request, "127.0.0.1", 0)
    shape = Shape(rtt=0.08)
    async with server, WireProxy("127.0.0.1", server.sockets[0].getsockname()[1], shape=shape) as p:
        first, second = await fetch(p, 10, 10)
        # The connect's handshake (1.5 RTT until the server accepts) plus a round trip.
        assert first >= 2.5 * shape.rtt - 0.005
        assert second - first >= shape.rtt - 0.005
        assert p.delivered_bytes == p.down_bytes == 20


async def test_a_line_caps_the_total_and_each_connection() -> None:
    server = await asyncio.start_server(serve_on_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        shape = Shape(rate=mbit(40), per_connection=mbit(20))  # 5 MB/s, 2.5 MB/s each
        async with WireProxy("127.0.0.1", port, shape=shape) as p:
            (alone,) = await fetch(p, 1_000_000)
            assert alone >= 1_000_000 / mbit(20) - 0.02  # one connection: its own cap
            both = await asyncio.gather(fetch(p, 1_000_000), fetch(p, 1_000_000), fetch(p, 1))
            # Three at once share the line's 5 MB/s: 2 MB take at least 0.4 s.
            assert max(t for ts in both for t in ts) >= 2_000_000 / mbit(40) - 0.02
            # Fair: neither waited for the other to finish.
            assert abs(both[0][0] - both[1][0]) < 0.15


async def test_a_reset_reaches_the_server_one_delay_later() -> None:
    seen: list[float] = []
    loop = asyncio.get_running_loop()

    async def note_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        seen.append(loop.time())
        writer.close()

    server = await asyncio.start_server(note_close, "127.0.0.1", 0)
    shape = Shape(rtt=0.2)
    async with server, WireProxy("127.0.0.1", server.sockets[0].getsockname()[1], shape=shape) as p:
        _, writer = await asyncio.open_connection(p.host, p.port)
        await asyncio.sleep(2 * shape.rtt)  # connected upstream by now
        writer.transport.abort()
        gone = loop.time()
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
        assert seen[0] - gone >= shape.delay - 0.01
