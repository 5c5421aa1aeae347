"""A scriptable NNTP server on loopback, for fault-injection tests of Matinee's Usenet client.

It speaks enough of RFC 3977 and RFC 4643 for a downloader (greeting, CAPABILITIES,
MODE READER, AUTHINFO USER/PASS, BODY/ARTICLE/HEAD/STAT, GROUP, DATE, QUIT) and answers
pipelined commands strictly in order, one line at a time, as a real server does. Every
fault is a plain attribute that a test may set before or while the server runs: missing
and corrupt articles, connections dropped mid-body, stalls, refused logins and
connections, and a throttle shared by all connections. Articles come from
`tests/support/yenc.py`, so this server and the INN2 poster serve the same bytes.

    async def test_retry(fake_nntp):
        srv = await fake_nntp(articles=articles_for_bytes(data, "a.mkv"))
        srv.drop_after[articles[0].message_id] = 1000
        ...
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pytest

from tests.support.servers import server_factory
from tests.support.yenc import Article, dot_stuff

TOO_MANY_CONNECTIONS = b"400 too many connections\r\n"
MAX_LINE = 4096  # RFC 3977 allows 512 octets per command line; leave room for sloppy clients
ARTICLE_DATE = "Tue, 14 Nov 2023 22:13:20 +0000"  # the date build_nzb writes by default
# Commands that name an article; with credentials set they need a login first (480).
ARTICLE_COMMANDS = frozenset({"BODY", "ARTICLE", "HEAD", "STAT", "GROUP"})


def corrupt_body(body: bytes) -> bytes:
    """The same yEnc article with one data byte changed, so the decoded CRC no longer matches.

    The framing (`=ybegin`, `=ypart`, `=yend` with its crc32/pcrc32) is kept as it was, so
    a decoder reads the part normally and only the checksum comparison fails.
    """
    end = body.rfind(b"\r\n=yend")
    start = 0
    while body.startswith(b"=y", start):  # skip =ybegin and =ypart
        start = body.index(b"\r\n", start) + 2
    if end < start:
        raise ValueError("not a yEnc body with data")
    # From the middle, find a byte that is neither an escape character nor a line break:
    # changing one of those would alter the framing rather than one decoded byte.
    middle = (start + end) // 2
    for pos in [*range(middle, end), *range(start, middle)]:
        byte = body[pos]
        if byte not in b"=\r\n":
            # Letters never need escaping anywhere in a line, so the result is valid yEnc.
            replacement = ord("a") if byte != ord("a") else ord("b")
            return body[:pos] + bytes([replacement]) + body[pos + 1 :]
    raise ValueError("yEnc body has no data byte that can be changed")


def multiline(status: bytes, payload: bytes) -> bytes:
    """A complete multi-line response: status line, dot-stuffed payload, terminator."""
    if payload and not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return status + dot_stuff(payload) + b".\r\n"


def article_headers(article: Article) -> bytes:
    """The few headers a poster writes; enough for HEAD and ARTICLE."""
    lines = [
        "Path: fake-nntp!not-for-mail",
        "From: matinee <poster@matinee.test>",
        "Newsgroups: alt.binaries.test",
        f"Subject: {article.subject}",
        f"Message-ID: <{article.message_id}>",
        f"Date: {ARTICLE_DATE}",
        f"Bytes: {len(article.body)}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


class _TokenBucket:
    """One byte budget for the whole server, so N connections together get the set rate.

    The rate is read on every call, so a test may change `bytes_per_second` (or clear it)
    while transfers are waiting and they follow within one short sleep.
    """

    MAX_SLEEP = 0.05  # wake often enough to notice a changed rate

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # FIFO, so connections take turns fairly
        self._tokens = 0.0
        self._last: float | None = None

    @staticmethod
    def chunk_size(rate: float | None) -> int:
        """Bytes per write: about 20 ms of output, so pacing is smooth even for small bodies."""
        if rate is None:
            return 1 << 20
        return max(256, min(65536, int(rate / 50)))

    async def take(self, n: int, rate_of: Callable[[], float | None]) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            while True:
                rate = rate_of()
                now = loop.time()
                if rate is None or rate <= 0:
                    self._last = now
                    return
                if self._last is not None:
                    # An idle server saves up at most one chunk: no burst after a pause.
                    cap = max(float(n), float(self.chunk_size(rate)))
                    self._tokens = min(cap, self._tokens + (now - self._last) * rate)
                self._last = now
                if self._tokens >= n:
                    self._tokens -= n
                    return
                await asyncio.sleep(min(self.MAX_SLEEP, (n - self._tokens) / rate))


@dataclass
class _Connection:
    number: int  # 1-based, in the order connections were accepted
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    user: str | None = None  # from AUTHINFO USER, awaiting PASS
    authenticated: bool = False
    abort: bool = False  # close without a goodbye (a dropped connection)
    received: bytearray = field(default_factory=bytearray)  # command bytes not yet handled


class FakeNntpServer:
    """An NNTP server on 127.0.0.1, port chosen by the OS; `async with` starts and stops it.

    Scripting (plain attributes, read on every command, so they may change at any time):

    * `articles` / `add()` — what the server holds, by message-id without angle brackets.
    * `missing` — answer 430 for these even though they are held.
    * `corrupt` — serve a body with one data byte changed (see `corrupt_body`).
    * `drop_after[id] = n` — send only the first n bytes of that article's BODY/ARTICLE
      response (status line included), then close the socket without the terminator and
      without a TLS close_notify. It happens `drop_times.get(id, 1)` times (use a large
      number for always); `drops` counts how often it did, so a retry can then succeed.
    * `stall` — send the status line of BODY/ARTICLE, then nothing more on that connection.
    * `credentials` — (user, password) required before article commands (480 otherwise);
      None means no login is needed and any AUTHINFO is accepted.
      `reject_auth_always` answers 481 to every password.
    * `max_connections` — connections beyond it are greeted with "400 too many connections"
      and closed.
    * `greeting_code` / `greeting_text` — e.g. 502 to refuse everybody; anything other than
      200/201 closes the connection after the greeting.
    * `bytes_per_second` — throttle of all article responses of the whole server together.

    Statistics: `connections_total`, `connections_now` and `max_concurrent_connections`
    (every socket, refused ones included: that is what a client's connection limit is
    about), `connections_refused`, `auth_attempts` (AUTHINFO PASS in sequence), `commands`
    ((connection number, line) with the password masked), `bodies_served` (complete
    BODY/ARTICLE responses per message-id), `drops`, `max_pipelined` (the most commands
    one connection had received and not yet answered when it began answering one), and
    `errors` (unexpected exceptions in the server itself; a test can assert it stays empty).
    """

    def __init__(
        self,
        articles: Iterable[Article] = (),
        *,
        credentials: tuple[str, str] | None = None,
        max_connections: int | None = None,
        bytes_per_second: float | None = None,
        tls: ssl.SSLContext | None = None,
        greeting_code: int = 200,
        greeting_text: str = "Matinee fake NNTP server ready (posting allowed)",
        reject_auth_always: bool = False,
    ) -> None:
        self.articles: dict[str, Article] = {}
        self.add(articles)
        self.missing: set[str] = set()
        self.corrupt: set[str] = set()
        self.drop_after: dict[str, int] = {}
        self.drop_times: dict[str, int] = {}
        self.stall: set[str] = set()
        self.credentials = credentials
        self.reject_auth_always = reject_auth_always
        self.max_connections = max_connections
        self.bytes_per_second = bytes_per_second
        self.greeting_code = greeting_code
        self.greeting_text = greeting_text
        self.tls = tls

        self.connections_total = 0
        self.connections_now = 0
        self.max_concurrent_connections = 0
        self.connections_refused = 0
        self.auth_attempts = 0
        self.commands: list[tuple[int, str]] = []
        self.bodies_served: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.max_pipelined = 0
        self.errors: list[BaseException] = []

        self._served_now = 0  # connections past the greeting; what max_connections limits
        self._bucket = _TokenBucket()
        self._server: asyncio.Server | None = None
        self._stopping = False
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._corrupted: dict[bytes, bytes] = {}
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every open connection (Python 3.11's Server keeps them)."""
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        # Aborting the sockets ends every handler at its next read, drain or close, and
        # the throttle lets them through; cancelling is only the fallback, because
        # Python 3.11's streams log a cancelled connection handler as an error.
        for writer in self._handlers.values():
            writer.transport.abort()
        if self._handlers:
            _, pending = await asyncio.wait(list(self._handlers), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._stopping = False

    async def __aenter__(self) -> FakeNntpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def add(self, articles: Iterable[Article]) -> None:
        for article in articles:
            self.articles[article.message_id] = article

    # -- connections -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        self.connections_total += 1
        self.connections_now += 1
        self.max_concurrent_connections = max(self.max_concurrent_connections, self.connections_now)
        conn = _Connection(self.connections_total, reader, writer)
        try:
            await self._converse(conn)
        except (ConnectionError, ssl.SSLError):
            conn.abort = True  # the client went away; nothing left to say
        except asyncio.CancelledError:
            # Only stop() cancels a handler, and it waits for the task itself; re-raising
            # would just make asyncio log the cancelled task as an error.
            conn.abort = True
            self.errors.append(TimeoutError(f"connection {conn.number} did not end on stop"))
        except Exception as exc:
            conn.abort = True
            self.errors.append(exc)
        finally:
            self.connections_now -= 1
            await self._close(conn)
            self._handlers.pop(task, None)

    async def _converse(self, conn: _Connection) -> None:
        if self.max_connections is not None and self._served_now >= self.max_connections:
            self.connections_refused += 1
            await self._write(conn, TOO_MANY_CONNECTIONS)
            return
        greeting = f"{self.greeting_code} {self.greeting_text}\r\n".encode()
        if self.greeting_code not in (200, 201):
            self.connections_refused += 1
            await self._write(conn, greeting)
            return
        self._served_now += 1
        try:
            await self._write(conn, greeting)
            while (line := await self._next_line(conn)) is not None:
                if not await self._command(conn, line.decode("utf-8", "replace").strip()):
                    return
        finally:
            # Before the socket closes, so a client that saw EOF may connect again at once.
            self._served_now -= 1

    async def _next_line(self, conn: _Connection) -> bytes | None:
        """The next command line, or None at EOF (a partial last line is dropped).

        Lines are split here rather than by StreamReader.readline so that the commands
        waiting behind the current one can be counted for `max_pipelined`.
        """
        while (end := conn.received.find(b"\n")) < 0 and len(conn.received) <= MAX_LINE:
            data = await conn.reader.read(65536)
            if not data:
                return None
            conn.received += data
        if not 0 <= end < MAX_LINE:  # no real client does that: hang up
            await self._write(conn, b"501 command line too long\r\n")
            return None
        line = bytes(conn.received[: end + 1])
        del conn.received[: end + 1]
        waiting = 1 + conn.received.count(b"\n")
        self.max_pipelined = max(self.max_pipelined, waiting)
        return line

    async def _close(self, conn: _Connection) -> None:
        transport = conn.writer.transport
        if conn.abort:
            transport.abort()
            return
        conn.writer.close()
        # A TLS close waits for the peer's close_notify; a client that never answers must
        # not hold up the test.
        try:
            async with asyncio.timeout(1):
                await conn.writer.wait_closed()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            transport.abort()

    async def _write(self, conn: _Connection, data: bytes) -> None:
        conn.writer.write(data)
        await conn.writer.drain()

    def _current_rate(self) -> float | None:
        return None if self._stopping else self.bytes_per_second

    async def _write_throttled(self, conn: _Connection, data: bytes) -> None:
        view = memoryview(data)
        while view:
            size = self._bucket.chunk_size(self.bytes_per_second)
            chunk, view = view[:size], view[size:]
            await self._bucket.take(len(chunk), self._current_rate)
            conn.writer.write(chunk)
            await conn.writer.drain()

    # -- commands ----------------------------------------------------------------------

    async def _command(self, conn: _Connection, line: str) -> bool:
        """Answer one command line; False ends the connection."""
        verb, _, arg = line.partition(" ")
        verb, arg = verb.upper(), arg.strip()
        if verb == "AUTHINFO" and arg.upper().startswith("PASS"):
            self.commands.append((conn.number, "AUTHINFO PASS ****"))
        else:
            self.commands.append((conn.number, line))

        if verb in ARTICLE_COMMANDS and self.credentials is not None and not conn.authenticated:
            await self._write(conn, b"480 authentication required\r\n")
            return True
        if verb in ("BODY", "ARTICLE", "HEAD", "STAT"):
            return await self._article_command(conn, verb, arg)
        if verb == "AUTHINFO":
            await self._write(conn, self._authinfo(conn, arg))
            return True
        if verb == "QUIT":
            await self._write(conn, b"205 closing connection\r\n")
            return False
        reply: bytes
        if verb == "CAPABILITIES":
            caps = ["VERSION 2", "IMPLEMENTATION Matinee fake NNTP", "READER"]
            if not conn.authenticated:
                caps.append("AUTHINFO USER")
            reply = multiline(b"101 Capability list:\r\n", ("\r\n".join(caps)).encode())
        elif verb == "MODE" and arg.upper() == "READER":
            reply = b"201 reader mode, posting prohibited\r\n"
        elif verb == "DATE":
            now = dt.datetime.now(dt.UTC)
            reply = f"111 {now:%Y%m%d%H%M%S}\r\n".encode()
        elif verb == "GROUP" and arg:
            reply = f"211 0 0 0 {arg}\r\n".encode()
        else:
            reply = b"500 unknown command\r\n"
        await self._write(conn, reply)
        return True

    def _authinfo(self, conn: _Connection, arg: str) -> bytes:
        kind, _, value = arg.partition(" ")
        kind = kind.upper()
        if kind not in ("USER", "PASS") or not value:
            return b"501 syntax: AUTHINFO USER name | AUTHINFO PASS password\r\n"
        if conn.authenticated:
            return b"502 already authenticated\r\n"
        if kind == "USER":
            conn.user = value
            return b"381 password required\r\n"
        if conn.user is None:
            return b"482 AUTHINFO PASS without AUTHINFO USER\r\n"
        self.auth_attempts += 1
        user, conn.user = conn.user, None
        if not self.reject_auth_always and self.credentials in (None, (user, value)):
            conn.authenticated = True
            return b"281 authentication accepted\r\n"
        return b"481 authentication failed\r\n"

    async def _article_command(self, conn: _Connection, verb: str, arg: str) -> bool:
        if not arg:
            # Downloaders always name the article; the current-article form is not kept.
            await self._write(conn, b"420 no current article selected\r\n")
            return True
        if not (arg.startswith("<") and arg.endswith(">")):
            await self._write(conn, b"501 only <message-id> arguments are supported\r\n")
            return True
        mid = arg[1:-1]
        article = self.articles.get(mid)
        if article is None or mid in self.missing:
            await self._write(conn, b"430 no such article\r\n")
            return True
        if verb == "STAT":
            await self._write(conn, f"223 0 {arg}\r\n".encode())
            return True
        if verb == "HEAD":
            await self._write(
                conn, multiline(f"221 0 {arg}\r\n".encode(), article_headers(article))
            )
            return True

        body = article.body
        if mid in self.corrupt:
            body = self._corrupted_body(body)
        status = f"222 0 {arg}\r\n" if verb == "BODY" else f"220 0 {arg}\r\n"
        if verb == "ARTICLE":
            body = article_headers(article) + b"\r\n" + body
        response = multiline(status.encode(), body)

        if mid in self.stall:
            await self._write(conn, status.encode())
            # Keep the socket open and unanswered until the client gives up on it.
            while await conn.reader.read(65536):
                pass
            return False
        limit = self.drop_after.get(mid)
        if limit is not None and self.drops[mid] < self.drop_times.get(mid, 1):
            self.drops[mid] += 1
            # Make drain() wait until the kernel has every byte, so the client is sure to
            # receive exactly `limit` bytes before the socket goes.
            conn.writer.transport.set_write_buffer_limits(0)
            await self._write_throttled(conn, response[:limit])
            conn.abort = True
            return False
        await self._write_throttled(conn, response)
        self.bodies_served[mid] += 1
        return True

    def _corrupted_body(self, body: bytes) -> bytes:
        if body not in self._corrupted:
            self._corrupted[body] = corrupt_body(body)
        return self._corrupted[body]


# -- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1, signed by it."""

    cafile: Path  # what a client trusts
    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))


def make_tls_files(directory: Path) -> TlsFiles:
    """Create the CA and server certificate with `openssl` (blocking: call it outside a loop).

    Two certificates rather than one self-signed leaf, because that is what providers
    present and what strict verification (Python 3.13's default) accepts.
    """

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    days = ["-days", "2"]
    ca = ["-subj", "/CN=Matinee test CA", "-keyout", "ca.key", "-out", "ca.pem"]
    usage = ["-addext", "keyUsage = critical, keyCertSign, cRLSign"]
    openssl("req", "-x509", *key, *days, *usage, *ca)
    openssl("req", *key, "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (directory / "server.ext").write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "authorityKeyIdentifier = keyid\n"
        "subjectKeyIdentifier = hash\n"
    )
    sign = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "server.ext"]
    openssl("x509", "-req", *sign, *days, "-in", "server.csr", "-out", "server.pem")
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")


# -- fixtures ----------------------------------------------------------------------------


class FakeNntpFactory(Protocol):
    def __call__(
        self, articles: Iterable[Article] = (), **options: Any
    ) -> Awaitable[FakeNntpServer]: ...


@pytest.fixture
async def fake_nntp() -> AsyncIterator[FakeNntpFactory]:
    """`srv = await fake_nntp(articles=..., **options)`: started now, stopped at teardown."""
    async with server_factory(FakeNntpServer) as start:
        yield start


@pytest.fixture(scope="session")
def nntp_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One CA and server certificate for the session (openssl takes a moment)."""
    return make_tls_files(tmp_path_factory.mktemp("nntp-tls"))
