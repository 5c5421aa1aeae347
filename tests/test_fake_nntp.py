"""The scriptable NNTP server itself: protocol, pipelining and every fault it injects.

Spoken to by a deliberately small raw client, so these tests check the server's bytes and
not Matinee's client.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import zlib
from types import TracebackType

import pytest
import sabctools

from tests.support.fake_nntp import (
    FakeNntpFactory,
    FakeNntpServer,
    TlsFiles,
    corrupt_body,
    multiline,
)
from tests.support.yenc import Article, articles_for_bytes

TIMEOUT = 5  # no single read in this file should come anywhere near it


class RawClient:
    """Lines in, bytes out: just enough NNTP to look at what the server sends."""

    def __init__(self, srv: FakeNntpServer, tls: ssl.SSLContext | None = None) -> None:
        self.srv = srv
        self.tls = tls
        self.greeting = b""

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(
            self.srv.host,
            self.srv.port,
            ssl=self.tls,
            server_hostname="localhost" if self.tls else None,
        )
        self.greeting = await self.line()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass  # the server dropped us on purpose

    async def send(self, *lines: str) -> None:
        """All lines in one write, as a pipelining client sends them."""
        self.writer.write("".join(f"{line}\r\n" for line in lines).encode())
        await self.writer.drain()

    async def line(self) -> bytes:
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.readline()

    async def command(self, line: str) -> bytes:
        await self.send(line)
        return await self.line()

    async def payload(self) -> bytes:
        """The raw (still dot-stuffed) lines of a multi-line response, terminator excluded."""
        async with asyncio.timeout(TIMEOUT):
            data = await self.reader.readuntil(b"\r\n.\r\n")
        return data[: -len(b".\r\n")]

    async def until_eof(self) -> bytes:
        """Everything until the server closes; a reset is a close too."""
        chunks = []
        try:
            async with asyncio.timeout(TIMEOUT):
                while chunk := await self.reader.read(65536):
                    chunks.append(chunk)
        except (ConnectionResetError, ssl.SSLError):
            pass
        return b"".join(chunks)


def unstuff(payload: bytes) -> bytes:
    lines = payload.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def decode(responses: bytes, count: int) -> list[sabctools.NNTPResponse]:
    """Pipelined BODY responses through sabctools, the decoder Matinee itself uses."""
    decoder = sabctools.Decoder(1 << 16)
    for n in range(count):
        decoder.expect(n)
    view = memoryview(responses)
    while view:
        with memoryview(decoder) as buffer:
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
        decoder.process(size)
        view = view[size:]
    return list(decoder)


@pytest.fixture
def data() -> bytes:
    return os.urandom(10_000)


@pytest.fixture
def articles(data: bytes) -> list[Article]:
    return articles_for_bytes(data, "movie.mkv", part_size=2_000)


async def test_conversation(fake_nntp: FakeNntpFactory, articles: list[Article]) -> None:
    srv = await fake_nntp(articles=articles)
    first = articles[0]
    mid = f"<{first.message_id}>"
    async with RawClient(srv) as client:
        assert client.greeting.startswith(b"200 ")
        assert await client.command("CAPABILITIES") == b"101 Capability list:\r\n"
        assert b"READER\r\n" in await client.payload()
        assert (await client.command("MODE READER")).startswith(b"201 ")
        date = await client.command("DATE")
        assert date.startswith(b"111 ") and len(date.strip()) == len("111 YYYYMMDDhhmmss")
        assert await client.command(f"STAT {mid}") == f"223 0 {mid}\r\n".encode()
        assert await client.command(f"HEAD {mid}") == f"221 0 {mid}\r\n".encode()
        assert f"Message-ID: {mid}\r\n".encode() in await client.payload()
        assert await client.command(f"ARTICLE {mid}") == f"220 0 {mid}\r\n".encode()
        head, _, body = unstuff(await client.payload()).partition(b"\r\n\r\n")
        assert b"Subject: " in head and body == first.body + b"\r\n"
        assert (await client.command("XYZZY")).startswith(b"500 ")
        assert (await client.command("BODY")).startswith(b"420 ")
        assert await client.command("QUIT") == b"205 closing connection\r\n"
        assert await client.until_eof() == b""
    assert srv.commands[:3] == [(1, "CAPABILITIES"), (1, "MODE READER"), (1, "DATE")]
    assert srv.bodies_served == {first.message_id: 1}
    assert srv.errors == []


async def test_pipelined_bodies_are_answered_in_order(
    fake_nntp: FakeNntpFactory, articles: list[Article]
) -> None:
    srv = await fake_nntp(articles=articles)
    ids = [a.message_id for a in articles]
    ids.insert(2, "unknown@matinee.test")
    request = "".join(f"BODY <{mid}>\r\n" for mid in ids).encode()
    async with RawClient(srv) as client:
        # Arbitrary splits, lines broken in the middle included, as TCP may deliver them.
        for start in range(0, len(request), 7):
            client.writer.write(request[start : start + 7])
        await client.writer.drain()
        for mid in ids:
            status = await client.line()
            if mid.startswith("unknown"):
                assert status == b"430 no such article\r\n"
                continue
            assert status == f"222 0 <{mid}>\r\n".encode()
            assert unstuff(await client.payload()) == srv.articles[mid].body + b"\r\n"
    assert srv.bodies_served == {a.message_id: 1 for a in articles}
    assert srv.max_pipelined >= 2  # at least two lines arrived before the first answer


async def test_one_command_at_a_time_is_not_counted_as_pipelined(
    fake_nntp: FakeNntpFactory, articles: list[Article]
) -> None:
    srv = await fake_nntp(articles=articles)
    async with RawClient(srv) as client:
        for article in articles:
            assert (await client.command(f"BODY <{article.message_id}>")).startswith(b"222 ")
            await client.payload()
        await client.send("X" * 5000)
        assert await client.line() == b"501 command line too long\r\n"
        assert await client.until_eof() == b""
    assert srv.max_pipelined == 1


async def test_bodies_are_dot_stuffed(fake_nntp: FakeNntpFactory) -> None:
    body = b".leading\r\n..two\r\n.\r\nmiddle.\r\n."
    dots = Article("dots@matinee.test", 1, 0, 0, body, "dots")
    srv = await fake_nntp(articles=[dots])
    async with RawClient(srv) as client:
        assert (await client.command("BODY <dots@matinee.test>")).startswith(b"222 ")
        raw = await client.payload()
    assert raw == b"..leading\r\n...two\r\n..\r\nmiddle.\r\n..\r\n"
    assert unstuff(raw) == body + b"\r\n"


async def test_missing_articles_answer_430(
    fake_nntp: FakeNntpFactory, articles: list[Article]
) -> None:
    srv = await fake_nntp(articles=articles)
    mid = articles[1].message_id
    srv.missing.add(mid)
    async with RawClient(srv) as client:
        assert await client.command("BODY <nobody@matinee.test>") == b"430 no such article\r\n"
        assert await client.command(f"BODY <{mid}>") == b"430 no such article\r\n"
        assert await client.command(f"STAT <{mid}>") == b"430 no such article\r\n"
        srv.missing.clear()  # changed while the connection is open
        assert (await client.command(f"BODY <{mid}>")).startswith(b"222 ")
        await client.payload()


async def test_corrupt_body_fails_the_crc_check(
    fake_nntp: FakeNntpFactory, articles: list[Article], data: bytes
) -> None:
    srv = await fake_nntp(articles=articles)
    bad, good = articles[0], articles[1]
    srv.corrupt.add(bad.message_id)
    async with RawClient(srv) as client:
        await client.send(f"BODY <{bad.message_id}>", f"BODY <{good.message_id}>", "QUIT")
        responses = await client.until_eof()
    first, second, bye = decode(responses, 3)
    assert bye.status_code == 205

    assert first.status_code == 222 and first.crc is None
    assert first.crc_expected == zlib.crc32(data[bad.begin : bad.begin + bad.size])
    assert first.data is not None and len(first.data) == bad.size
    original = data[bad.begin : bad.begin + bad.size]
    assert sum(x != y for x, y in zip(first.data, original, strict=True)) == 1

    assert second.crc is not None and second.crc == second.crc_expected
    assert second.data is not None
    assert bytes(second.data) == data[good.begin : good.begin + good.size]
    # The framing is untouched: only one byte of the encoded data differs.
    assert len(corrupt_body(bad.body)) == len(bad.body)


@pytest.mark.parametrize(("tls", "times"), [(False, 1), (False, 2), (True, 1)])
async def test_drop_after_cuts_the_body_then_serves_it(
    fake_nntp: FakeNntpFactory,
    articles: list[Article],
    nntp_tls: TlsFiles,
    tls: bool,
    times: int,
) -> None:
    srv = await fake_nntp(articles=articles, tls=nntp_tls.server_context() if tls else None)
    article = articles[0]
    mid = f"<{article.message_id}>"
    srv.drop_after[article.message_id] = 1000
    srv.drop_times[article.message_id] = times
    full = multiline(f"222 0 {mid}\r\n".encode(), article.body)
    client_tls = nntp_tls.client_context() if tls else None
    for _ in range(times):
        async with RawClient(srv, client_tls) as client:
            await client.send(f"BODY {mid}", "DATE")
            assert await client.until_eof() == full[:1000]
    async with RawClient(srv, client_tls) as client:
        assert await client.command(f"BODY {mid}") == f"222 0 {mid}\r\n".encode()
        assert unstuff(await client.payload()) == article.body + b"\r\n"
    assert srv.drops[article.message_id] == times
    assert srv.bodies_served[article.message_id] == 1
    assert srv.errors == []


async def test_stall_sends_the_status_line_only(
    fake_nntp: FakeNntpFactory, articles: list[Article]
) -> None:
    srv = await fake_nntp(articles=articles)
    mid = articles[0].message_id
    srv.stall.add(mid)
    async with RawClient(srv) as client:
        assert await client.command(f"BODY <{mid}>") == f"222 0 <{mid}>\r\n".encode()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.reader.read(1)
    srv.stall.clear()
    async with RawClient(srv) as client:
        assert (await client.command(f"BODY <{mid}>")).startswith(b"222 ")
        await client.payload()
    assert srv.bodies_served[mid] == 1


async def test_authentication(fake_nntp: FakeNntpFactory, articles: list[Article]) -> None:
    srv = await fake_nntp(articles=articles, credentials=("viewer", "s3cret"))
    mid = f"<{articles[0].message_id}>"
    async with RawClient(srv) as client:
        assert (await client.command(f"BODY {mid}")).startswith(b"480 ")
        assert (await client.command("AUTHINFO PASS s3cret")).startswith(b"482 ")
        assert (await client.command("AUTHINFO USER viewer")).startswith(b"381 ")
        assert (await client.command("AUTHINFO PASS wrong")).startswith(b"481 ")
        assert (await client.command(f"BODY {mid}")).startswith(b"480 ")
        assert (await client.command("AUTHINFO USER viewer")).startswith(b"381 ")
        assert (await client.command("AUTHINFO PASS s3cret")).startswith(b"281 ")
        assert (await client.command(f"BODY {mid}")).startswith(b"222 ")
        await client.payload()
        assert (await client.command("AUTHINFO USER viewer")).startswith(b"502 ")
    assert srv.auth_attempts == 2
    assert (1, "AUTHINFO PASS ****") in srv.commands
    assert not any("s3cret" in line for _, line in srv.commands)

    srv.reject_auth_always = True
    async with RawClient(srv) as client:
        await client.send("AUTHINFO USER viewer", "AUTHINFO PASS s3cret")
        assert (await client.line()).startswith(b"381 ")
        assert (await client.line()).startswith(b"481 ")
    assert srv.auth_attempts == 3


async def test_max_connections_refuses_the_extra_one(fake_nntp: FakeNntpFactory) -> None:
    srv = await fake_nntp(max_connections=2)
    async with RawClient(srv) as one, RawClient(srv) as two:
        assert one.greeting.startswith(b"200 ") and two.greeting.startswith(b"200 ")
        async with RawClient(srv) as three:
            assert three.greeting == b"400 too many connections\r\n"
            assert await three.until_eof() == b""
        assert await two.command("QUIT") == b"205 closing connection\r\n"
        assert await two.until_eof() == b""
        async with RawClient(srv) as four:
            assert four.greeting.startswith(b"200 ")
    assert srv.connections_total == 4
    assert srv.connections_refused == 1
    assert srv.max_concurrent_connections == 3


async def test_refusing_greeting(fake_nntp: FakeNntpFactory) -> None:
    srv = await fake_nntp(greeting_code=502, greeting_text="no access")
    async with RawClient(srv) as client:
        assert client.greeting == b"502 no access\r\n"
        assert await client.until_eof() == b""


async def test_throttle_is_shared_by_all_connections(fake_nntp: FakeNntpFactory) -> None:
    rate = 100_000
    articles = articles_for_bytes(os.urandom(50_000), "slow.mkv", part_size=25_000)
    srv = await fake_nntp(articles=articles, bytes_per_second=rate)

    async def fetch(article: Article) -> None:
        async with RawClient(srv) as client:
            assert (await client.command(f"BODY <{article.message_id}>")).startswith(b"222 ")
            await client.payload()

    start = time.monotonic()
    await asyncio.gather(*(fetch(a) for a in articles))
    elapsed = time.monotonic() - start
    expected = sum(len(a.body) for a in articles) / rate  # about 0.5 s
    assert expected * 0.8 <= elapsed < expected * 4


async def test_throttle_can_be_lifted_while_running(fake_nntp: FakeNntpFactory) -> None:
    (article,) = articles_for_bytes(os.urandom(40_000), "slow.mkv", part_size=40_000)
    srv = await fake_nntp(articles=[article], bytes_per_second=2_000)  # 20 s at this rate
    async with RawClient(srv) as client:
        start = time.monotonic()
        assert (await client.command(f"BODY <{article.message_id}>")).startswith(b"222 ")
        await asyncio.sleep(0.2)
        srv.bytes_per_second = None
        assert unstuff(await client.payload()) == article.body + b"\r\n"
        assert time.monotonic() - start < 2


async def test_implicit_tls(
    fake_nntp: FakeNntpFactory, articles: list[Article], nntp_tls: TlsFiles
) -> None:
    srv = await fake_nntp(articles=articles, tls=nntp_tls.server_context())
    strict = nntp_tls.client_context()
    strict.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    async with RawClient(srv, strict) as client:
        assert client.greeting.startswith(b"200 ")
        assert client.writer.get_extra_info("ssl_object") is not None
        mid = articles[0].message_id
        assert (await client.command(f"BODY <{mid}>")).startswith(b"222 ")
        assert unstuff(await client.payload()) == articles[0].body + b"\r\n"
    # Without the CA the certificate is not trusted.
    with pytest.raises(ssl.SSLCertVerificationError):
        async with RawClient(srv, ssl.create_default_context()):
            pass


async def test_stop_cuts_open_connections(articles: list[Article]) -> None:
    slow, stuck = articles[0].message_id, articles[1].message_id
    async with FakeNntpServer(articles, bytes_per_second=5_000) as srv:
        srv.stall.add(stuck)
        async with RawClient(srv) as one, RawClient(srv) as two, RawClient(srv) as idle:
            assert (await one.command(f"BODY <{slow}>")).startswith(b"222 ")
            assert (await two.command(f"BODY <{stuck}>")).startswith(b"222 ")
            start = time.monotonic()
            await srv.stop()
            assert time.monotonic() - start < 1
            for client in (one, two, idle):
                assert len(await client.until_eof()) < len(articles[0].body)
        assert srv.connections_now == 0
        assert srv.errors == []
