"""A TCP proxy on loopback that counts the bytes on the wire, for tests and benchmarks.

Put it in front of a server (INN2, say) and point the client at it: every accepted
connection opens its own connection upstream, and bytes are copied both ways as they
come. What a test can read:

* `down_bytes` / `up_bytes`: bytes the server sent towards the client / the client sent
  towards the server, over every connection so far (counted as they are read, so a
  client killed mid-transfer is still charged for what its server sent, as a provider
  would charge it);
* `links`: one `Link` per connection, with its own counts and whether it is still open;
* `await wait_down(n)`: returns as soon as the server has sent `n` bytes in total.

    async with WireProxy(inn2.host, inn2.port) as proxy:
        ... client connects to proxy.host, proxy.port ...
        await proxy.wait_down(10_000_000)

Each direction is one `_pump` coroutine per connection, the one place where a line
emulator (delay queues, bandwidth caps) would shape the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType

CHUNK = 256 * 1024  # bytes read at once; large enough that the proxy keeps up with INN2


@dataclass(eq=False)
class Link:
    """One proxied connection."""

    number: int  # 1-based, in the order connections were accepted
    down: int = 0  # server -> client
    up: int = 0  # client -> server
    open: bool = True


class WireProxy:
    """Forwards `host:port` (port 0: any free one, read it after start) to the upstream."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.links: list[Link] = []
        self.down_bytes = 0
        self.up_bytes = 0
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

    def _counted_down(self, n: int) -> None:
        self.down_bytes += n
        if self._down_waiters:
            for threshold, fut in self._down_waiters:
                if self.down_bytes >= threshold and not fut.done():
                    fut.set_result(self.down_bytes)

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
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return  # the client sees its connection closed, as with a dead server
            self._writers.add(up_writer)
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
        """Copy one direction until EOF, then pass the half-close on."""
        try:
            while data := await reader.read(CHUNK):
                if down:
                    link.down += len(data)
                    self._counted_down(len(data))
                else:
                    link.up += len(data)
                    self.up_bytes += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            # The receiving side is gone: stop sending to it (the connection's handler
            # closes the other side once both directions have ended).
            writer.transport.abort()
