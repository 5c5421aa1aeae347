"""A TCP proxy on loopback that counts the bytes on the wire and can play a real line.

Put it in front of a server (INN2, say) and point the client at it: every accepted
connection opens its own connection upstream, and bytes are copied both ways. What a test
can read:

* `down_bytes` / `up_bytes`: bytes the server sent towards the client / the client sent
  towards the server, over every connection so far (counted as they are read, so a
  client killed mid-transfer is still charged for what its server sent, as a provider
  would charge it);
* `delivered_bytes`: bytes that reached the client (after the line's delay);
* `links`: one `Link` per connection, with its own counts, whether it is still open and,
  with `record=True`, every command line the client sent (`Link.commands`);
* `await wait_down(n)`: returns as soon as the server has sent `n` bytes in total.

    async with WireProxy(inn2.host, inn2.port, shape=PROFILES["slow"]) as proxy:
        ... client connects to proxy.host, proxy.port ...

## The line (`Shape`)

The kernel here has no netem, so the line is played in user space (see
../shared/notes/line-emulation.md): a one-way delay each way (half the RTT), a cap on the
total rate towards the client and a cap per connection, both token buckets. Connections
share the total cap round-robin, one chunk at a time, as a router with fair queueing
(fq_codel, cake) shares a home line; bytes past the bucket are "on the wire" and arrive
one delay later. The server's greeting arrives two RTTs after the connect, as over TCP.
A client that closes its connection stops the server only one delay later, and what the
server sent meanwhile still crosses the bottleneck: aborting a connection is not free.

`python -m tests.support.wire serve --upstream HOST:PORT --profile cable` runs one as a
program (the benchmarks may not import tests/): it prints one JSON line with its address
once listening, and on SIGTERM another with its counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 256 * 1024  # bytes read at once without a line; the proxy keeps up with INN2
# With a line, bytes cross the bottleneck in chunks of about this many seconds' worth: fine
# enough that connections interleave as they would on a router, coarse enough to be cheap.
SLICE = 0.002
MIN_SLICE_BYTES, MAX_SLICE_BYTES = 8 * 1024, 128 * 1024
# A bucket forgives this much lateness of a sleeping pump (the event loop wakes late).
BURST = 0.004


@dataclass(frozen=True)
class Shape:
    """A line as one household's connection to its provider."""

    rtt: float = 0.0  # seconds; each direction is delayed by half
    rate: float | None = None  # bytes/s towards the client, all connections together
    per_connection: float | None = None  # bytes/s towards the client, each connection

    @property
    def delay(self) -> float:
        return self.rtt / 2

    @property
    def shaped(self) -> bool:
        return self.rtt > 0 or self.rate is not None or self.per_connection is not None

    def slice_bytes(self) -> int:
        rate = min(r for r in (self.rate, self.per_connection, 1e12) if r is not None)
        return int(min(MAX_SLICE_BYTES, max(MIN_SLICE_BYTES, rate * SLICE)))

    def describe(self) -> str:
        def mbit(r: float | None) -> str:
            return "unlimited" if r is None else f"{r * 8 / 1e6:g} Mbit/s"

        return (
            f"RTT {self.rtt * 1000:g} ms, {mbit(self.rate)} in total, "
            f"{mbit(self.per_connection)} per connection"
        )


def mbit(n: float) -> float:
    """Bytes per second of a rate in Mbit/s."""
    return n * 1e6 / 8


# A provider 5 ms to 30 ms away. One connection cannot fill the faster lines (providers and
# TCP over a long RTT both limit it): that is why downloaders open several.
PROFILES: dict[str, Shape] = {
    "loopback": Shape(),
    "fibre": Shape(rtt=0.010, rate=mbit(500), per_connection=mbit(200)),
    "cable": Shape(rtt=0.040, rate=mbit(200), per_connection=mbit(100)),
    "slow": Shape(rtt=0.060, rate=mbit(25)),
}


class _Bucket:
    """A token bucket as a virtual clock: each reservation is served after the earlier ones."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0

    def reserve(self, n: int, now: float) -> float:
        """When `n` more bytes will have passed, if they start as soon as allowed."""
        start = max(self._free_at, now - BURST)
        self._free_at = start + n / self.rate
        return self._free_at


async def _until(when: float) -> None:
    loop = asyncio.get_running_loop()
    wait = when - loop.time()
    if wait > 0.0005:
        await asyncio.sleep(wait)


@dataclass(eq=False)
class Link:
    """One proxied connection."""

    number: int  # 1-based, in the order connections were accepted
    down: int = 0  # server -> client, as the server sent it
    up: int = 0  # client -> server
    delivered: int = 0  # server -> client, as it reached the client
    open: bool = True
    # With record=True: (proxy time, command line, the proxy's delivered_bytes then).
    commands: list[tuple[float, str, int]] = field(default_factory=list)
    _partial: bytes = b""


class WireProxy:
    """Forwards `host:port` (port 0: any free one, read it after start) to the upstream."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shape: Shape | None = None,
        record: bool = False,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.shape = shape or Shape()
        self.record = record
        self.links: list[Link] = []
        self.down_bytes = 0
        self.up_bytes = 0
        self.delivered_bytes = 0
        self._total = _Bucket(self.shape.rate) if self.shape.rate else None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._down_waiters: list[tuple[int, asyncio.Future[int]]] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every connection; the counts stay readable."""
        if self._server is None:
            return
        self._server.close()
        self.drop_all()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        await self._server.wait_closed()
        self._server = None
        for _, fut in self._down_waiters:
            if not fut.done():
                fut.set_exception(ConnectionError("the proxy was stopped"))
        self._down_waiters.clear()

    async def __aenter__(self) -> WireProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def drop_all(self) -> None:
        """Abort every open connection, both sides, as a broken line would."""
        for writer in list(self._writers):
            writer.transport.abort()

    # -- observing ---------------------------------------------------------------------

    @property
    def open_links(self) -> int:
        return sum(1 for link in self.links if link.open)

    async def wait_down(self, n: int) -> int:
        """Until the server has sent at least `n` bytes in total; returns the count then."""
        if self.down_bytes >= n:
            return self.down_bytes
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._down_waiters.append(entry)
        try:
            return await fut
        finally:
            with contextlib.suppress(ValueError):
                self._down_waiters.remove(entry)

    def counts(self) -> dict[str, int]:
        return {
            "down_bytes": self.down_bytes,
            "up_bytes": self.up_bytes,
            "delivered_bytes": self.delivered_bytes,
            "connections": len(self.links),
        }

    def _counted_down(self, link: Link, n: int) -> None:
        link.down += n
        self.down_bytes += n
        if self._down_waiters:
            for threshold, fut in self._down_waiters:
                if self.down_bytes >= threshold and not fut.done():
                    fut.set_result(self.down_bytes)

    def _counted_up(self, link: Link, data: bytes) -> None:
        link.up += len(data)
        self.up_bytes += len(data)
        if self.record:
            lines = (link._partial + data).split(b"\r\n")
            link._partial = lines.pop()
            now = asyncio.get_running_loop().time()
            for line in lines:
                text = line.decode("utf-8", "replace")
                if text.upper().startswith("AUTHINFO PASS"):
                    text = "AUTHINFO PASS"
                link.commands.append((now, text, self.delivered_bytes))

    def _counted_delivered(self, link: Link, n: int) -> None:
        link.delivered += n
        self.delivered_bytes += n

    # -- forwarding --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        link = Link(len(self.links) + 1)
        self.links.append(link)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.shape.rtt:
                # The client's connect returned at once (we are on loopback); the server's
                # greeting must still take the two RTTs it takes over TCP.
                await asyncio.sleep(1.5 * self.shape.rtt)
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return  # the client sees its connection closed, as with a dead server
            self._writers.add(up_writer)
            if self.shape.shaped:
                await _ShapedLink(self, link, reader, writer, up_reader, up_writer).run()
            else:
                await asyncio.gather(
                    self._pump(up_reader, writer, link, down=True),
                    self._pump(reader, up_writer, link, down=False),
                )
        finally:
            link.open = False
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._handlers.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: Link,
        *,
        down: bool,
    ) -> None:
        """Copy one direction until EOF, then pass the half-close on (no line)."""
        try:
            while data := await reader.read(CHUNK):
                if down:
                    self._counted_down(link, len(data))
                    self._counted_delivered(link, len(data))
                else:
                    self._counted_up(link, data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            # The receiving side is gone: stop sending to it (the connection's handler
            # closes the other side once both directions have ended).
            writer.transport.abort()


class _Wire:
    """One direction's bytes in flight: (arrival time, data), data b"" for the sender's EOF."""

    def __init__(self) -> None:
        self.queue: deque[tuple[float, bytes]] = deque()
        self.event = asyncio.Event()

    def put(self, when: float, data: bytes) -> None:
        self.queue.append((when, data))
        self.event.set()


class _ShapedLink:
    """Both directions of one connection through the line: paced, delayed, fair."""

    def __init__(
        self,
        proxy: WireProxy,
        link: Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.link = link
        self.shape = proxy.shape
        self.client = (reader, writer)
        self.server = (up_reader, up_writer)
        per = self.shape.per_connection
        self.own = _Bucket(per) if per else None
        self.to_client = _Wire()
        self.to_server = _Wire()
        # When the client dropped the connection (a reset) and when the server hears it.
        self.reset_at: float | None = None

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._down()),
            asyncio.create_task(self._deliver(self.to_client, self.client[1], down=True)),
            asyncio.create_task(self._up()),
            asyncio.create_task(self._deliver(self.to_server, self.server[1], down=False)),
        ]
        try:
            # Over when the server's side has ended and reached the client, or when the
            # client's reset has reached the server.
            await asyncio.wait([tasks[1], tasks[3]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _down(self) -> None:
        """Server -> client: through the per-connection and the shared bucket, then the wire."""
        loop = asyncio.get_running_loop()
        reader = self.server[0]
        size = self.shape.slice_bytes()
        total = self.proxy._total
        delay = self.shape.delay
        try:
            while data := await reader.read(size):
                self.proxy._counted_down(self.link, len(data))
                if self.own is not None:
                    await _until(self.own.reserve(len(data), loop.time()))
                if total is not None:
                    await _until(total.reserve(len(data), loop.time()))
                self.to_client.put(loop.time() + delay, data)
        except OSError:
            pass
        self.to_client.put(loop.time() + delay, b"")

    async def _up(self) -> None:
        """Client -> server: commands are small; only the delay applies."""
        loop = asyncio.get_running_loop()
        reader = self.client[0]
        try:
            while data := await reader.read(CHUNK):
                self.proxy._counted_up(self.link, data)
                self.to_server.put(loop.time() + self.shape.delay, data)
        except OSError:
            # A reset: the server hears it one delay later, and what it sends until then
            # still takes its share of the line (then the connection ends: see run).
            self.reset_at = loop.time()
            self.to_server.put(self.reset_at + self.shape.delay, b"")
            return
        self.to_server.put(loop.time() + self.shape.delay, b"")  # a half-close, passed on

    async def _deliver(self, wire: _Wire, writer: asyncio.StreamWriter, *, down: bool) -> None:
        """Write what is on the wire when it arrives; pass the sender's EOF on."""
        loop = asyncio.get_running_loop()
        queue = wire.queue
        while True:
            if not queue:
                wire.event.clear()
                await wire.event.wait()
                continue
            when, data = queue[0]
            if when - loop.time() > 0.0005:
                await _until(when)
                continue
            queue.popleft()
            if not data:
                if not down and self.reset_at is not None:
                    return  # the reset reached the server: the connection is over
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                if down:
                    return
                continue  # the server may still answer a half-closed client
            if down and self.reset_at is not None:
                continue  # arrives at a socket that is gone
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                if not down:
                    return
                self.reset_at = self.reset_at or loop.time()
                continue
            if down:
                self.proxy._counted_delivered(self.link, len(data))


# -- as a program -------------------------------------------------------------------------


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def shape_from_args(args: argparse.Namespace) -> Shape:
    shape = PROFILES[args.profile]
    rtt = shape.rtt if args.rtt_ms is None else args.rtt_ms / 1000
    rate = shape.rate if args.mbit is None else (mbit(args.mbit) if args.mbit > 0 else None)
    per = shape.per_connection
    if args.conn_mbit is not None:
        per = mbit(args.conn_mbit) if args.conn_mbit > 0 else None
    return Shape(rtt=rtt, rate=rate, per_connection=per)


async def _serve(upstream: tuple[str, int], host: str, port: int, shape: Shape) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WireProxy(*upstream, host=host, port=port, shape=shape) as proxy:
        started = time.monotonic()
        print(
            json.dumps(
                {
                    "host": proxy.host,
                    "port": proxy.port,
                    "line": shape.describe(),
                    "rtt": shape.rtt,
                    "rate": shape.rate,
                    "per_connection": shape.per_connection,
                }
            ),
            flush=True,
        )
        await stop.wait()
        counts = proxy.counts()
    print(json.dumps({**counts, "seconds": round(time.monotonic() - started, 3)}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A line in a box: a shaping TCP proxy.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="forward a local port to HOST:PORT through a line")
    serve.add_argument("--upstream", type=_parse_address, required=True, metavar="HOST:PORT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--profile", choices=sorted(PROFILES), default="loopback")
    serve.add_argument("--rtt-ms", type=float, default=None, help="override the profile's")
    serve.add_argument("--mbit", type=float, default=None, help="total cap; 0: none")
    serve.add_argument("--conn-mbit", type=float, default=None, help="per connection; 0: none")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.upstream, args.host, args.port, shape_from_args(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
