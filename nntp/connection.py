"""One NNTP connection: login, pipelined BODY requests decoded in place by sabctools.

The socket reads straight into the free space of a ``sabctools.Decoder`` (a
BufferedProtocol), which pairs every reply with the request that asked for it and writes
yEnc bodies to their file offsets through a ``FileWriter`` sink: no copies, no buffering
of whole articles. Retry and failover policy lives in the pool, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import sabctools

from nntp.errors import (
    AuthError,
    ConnectionLost,
    NntpError,
    ProtocolError,
    error_for_reply,
)

log = logging.getLogger(__name__)

# The decoder's receive buffer. Large enough that one recv_into drains a busy socket;
# small enough that 50 connections stay well under the memory budget.
RECV_BUFFER = 512 * 1024


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Where and how to reach one Usenet provider."""

    name: str
    host: str
    port: int = 563
    tls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connections: int = 8
    priority: int = 0  # lower is tried first
    pipelining: int = 8  # BODY requests in flight per connection
    timeout: float = 30.0  # seconds without progress before a connection counts as dead
    tls_verify: bool = True
    cafile: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@functools.lru_cache(maxsize=8)
def tls_context(cafile: str | None, verify: bool) -> ssl.SSLContext:
    """One context per trust setting, shared by every connection: making one reads the
    system's CA bundle (~20 ms of CPU), which 30 connections would pay at every start."""
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Meter:
    """Bytes read by every connection that shares it (a line's delivery count), with one
    alarm: ``on_alarm`` runs (soon, not inside the read) once ``received`` reaches
    ``alarm_at``."""

    __slots__ = ("alarm_at", "on_alarm", "received")

    NEVER = 1 << 62

    def __init__(self) -> None:
        self.received = 0
        self.alarm_at = Meter.NEVER
        self.on_alarm: Callable[[], None] | None = None

    def alarm_after(self, nbytes: int) -> None:
        self.alarm_at = self.received + max(1, nbytes)

    def _ring(self) -> None:
        self.alarm_at = Meter.NEVER
        if self.on_alarm is not None:
            asyncio.get_running_loop().call_soon(self.on_alarm)


class _ConnLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Tags each line with server and connection number; never sees credentials."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('server')}#{extra.get('conn')}] {msg}", kwargs


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, conn: NntpConnection, greeting: asyncio.Future[Any]) -> None:
        self._conn = conn
        self.decoder = sabctools.Decoder(RECV_BUFFER)
        # Registered before the socket can deliver a byte, so the greeting pairs with it.
        self.decoder.expect(greeting)
        self._view: memoryview | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        self._view = memoryview(self.decoder)
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        conn = self._conn
        conn.last_activity = asyncio.get_running_loop().time()
        conn.received += nbytes
        meter = conn.meter
        if meter is not None:
            meter.received += nbytes
            if meter.received >= meter.alarm_at:
                meter._ring()
        if conn._first_byte_wanted is not None:
            conn._first_byte()
        self.decoder.process(nbytes)
        for response in self.decoder:
            fut = response.context
            if isinstance(fut, asyncio.Future) and not fut.done():
                fut.set_result(response)
            elif fut is None:
                # A reply no request asked for (e.g. "400 idle timeout" before closing).
                self._conn.unsolicited(response)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._conn.lost(exc)


class NntpConnection:
    """A logged-in connection; ``body()`` returns a future per request, in request order."""

    def __init__(self, spec: ServerSpec, number: int = 0, *, meter: Meter | None = None) -> None:
        self.spec = spec
        self.number = number
        self.log = _ConnLog(log, {"server": spec.name, "conn": number})
        self.last_activity = 0.0
        self.received = 0  # bytes read, replies of every kind
        self.meter = meter
        # Round trips measured: login commands, and the first byte of a request sent on an
        # idle connection (see time_first_byte).
        self.on_rtt: Callable[[float], None] | None = None
        self.on_lost: Callable[[], None] | None = None  # told once the connection is gone
        self._first_byte_wanted: tuple[float, Callable[[float], None]] | None = None
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._closed_exc: NntpError | None = None
        self._pending: list[asyncio.Future[sabctools.NNTPResponse]] = []

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._closed_exc is None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def time_first_byte(self, sent_at: float, report: Callable[[float], None]) -> None:
        """Report the time from ``sent_at`` (time.monotonic) to the next byte read: one
        round trip, when nothing else was in flight."""
        self._first_byte_wanted = (sent_at, report)

    def _first_byte(self) -> None:
        wanted, self._first_byte_wanted = self._first_byte_wanted, None
        if wanted is not None:
            sent_at, report = wanted
            report(time.monotonic() - sent_at)

    async def connect(self) -> None:
        """Open, read the greeting and log in; raises NntpError subclasses."""
        loop = asyncio.get_running_loop()
        ssl_ctx = tls_context(self.spec.cafile, self.spec.tls_verify) if self.spec.tls else None
        timeout = self.spec.timeout
        try:
            # The greeting is the first reply; register its future before any byte can arrive.
            greeting = self._expect(None)
            async with asyncio.timeout(timeout):
                self._transport, self._protocol = await loop.create_connection(
                    lambda: _Protocol(self, greeting),
                    self.spec.host,
                    self.spec.port,
                    ssl=ssl_ctx,
                    server_hostname=self.spec.host if ssl_ctx else None,
                )
                reply = await greeting
        except TimeoutError:
            self.close()
            raise ConnectionLost(
                f"no greeting from {self.spec.address} within {timeout:g} s", server=self.spec.name
            ) from None
        except OSError as exc:
            self.close()
            raise ConnectionLost(
                f"cannot connect to {self.spec.address}: {exc.strerror or exc}",
                server=self.spec.name,
            ) from exc
        if reply.status_code not in (200, 201):
            self.close()
            raise error_for_reply(reply.status_code, reply.message or "", server=self.spec.name)
        if self.spec.username:
            await self._login()
        self.log.debug("connected")

    async def _login(self) -> None:
        reply = await self.command(f"AUTHINFO USER {self.spec.username}", log_as="AUTHINFO USER")
        if reply.status_code == 381:
            reply = await self.command(
                f"AUTHINFO PASS {self.spec.password or ''}", log_as="AUTHINFO PASS"
            )
        if reply.status_code != 281:
            self.close()
            text = reply.message or str(reply.status_code)
            if reply.status_code in (481, 482, 502):
                raise AuthError(
                    f"{self.spec.name} refused the login: {text}",
                    code=reply.status_code,
                    server=self.spec.name,
                )
            raise error_for_reply(reply.status_code, text, server=self.spec.name)

    def _expect(self, sink: sabctools.FileWriter | None) -> asyncio.Future[sabctools.NNTPResponse]:
        fut: asyncio.Future[sabctools.NNTPResponse] = asyncio.get_running_loop().create_future()
        if self._closed_exc is not None:
            fut.set_exception(self._closed_exc)
            return fut
        self._pending.append(fut)
        fut.add_done_callback(self._forget)
        return fut

    def _forget(self, fut: asyncio.Future[sabctools.NNTPResponse]) -> None:
        with contextlib.suppress(ValueError):
            self._pending.remove(fut)

    def _send(
        self, line: str, sink: sabctools.FileWriter | None
    ) -> asyncio.Future[sabctools.NNTPResponse]:
        fut = self._expect(sink)
        if fut.done():
            return fut
        if self._transport is None or self._protocol is None:
            fut.set_exception(ConnectionLost("not connected", server=self.spec.name))
            return fut
        if "\r" in line or "\n" in line:
            fut.set_exception(ProtocolError(f"refusing to send a line break in {line[:40]!r}"))
            return fut
        self._protocol.decoder.expect(fut, sink)
        self._transport.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return fut

    def body(
        self, message_id: str, sink: sabctools.FileWriter | None = None
    ) -> asyncio.Future[sabctools.NNTPResponse]:
        """Pipeline a BODY request; the future resolves with the decoded reply."""
        return self._send(f"BODY <{message_id}>", sink)

    def stat(self, message_id: str) -> asyncio.Future[sabctools.NNTPResponse]:
        """Pipeline a STAT request: 223 when the server has the article, 430 when not."""
        return self._send(f"STAT <{message_id}>", None)

    async def command(self, line: str, *, log_as: str | None = None) -> sabctools.NNTPResponse:
        self.log.debug("> %s", log_as or line)
        try:
            async with asyncio.timeout(self.spec.timeout):
                alone, sent = not self._pending, time.monotonic()
                reply = await self._send(line, None)
                if self.on_rtt is not None and alone:
                    self.on_rtt(time.monotonic() - sent)
                return reply
        except TimeoutError:
            self.close()
            raise ConnectionLost(
                f"{self.spec.name} did not answer {log_as or line.split()[0]} "
                f"within {self.spec.timeout:g} s",
                server=self.spec.name,
            ) from None

    def unsolicited(self, response: sabctools.NNTPResponse) -> None:
        self.log.info("server says: %s", response.message)

    def lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._closed_exc = ConnectionLost(
            f"connection to {self.spec.name} closed{reason}", server=self.spec.name
        )
        self._transport = None
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(self._closed_exc)
                # Consumers may have given up on it (cancellation); don't warn then.
                fut.exception()
        self._pending.clear()
        if self.on_lost is not None:
            self.on_lost()

    def close(self) -> None:
        """Drop the connection at once; pending requests fail with ConnectionLost."""
        transport = self._transport
        if transport is not None:
            if self._protocol is not None:
                self._protocol.decoder.clear_expected()
            transport.abort()
        if self._closed_exc is None:
            self.lost(None)

    async def quit(self) -> None:
        """Polite goodbye when idle; never raises."""
        if self.connected and not self._pending:
            try:
                async with asyncio.timeout(2):
                    await self._send("QUIT", None)
            except (NntpError, TimeoutError):
                pass
        self.close()
