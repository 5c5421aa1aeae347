"""The private INN2 harness: posting, reading back, AUTHINFO, TLS, cancel, clean stops.

Reads with a deliberately plain asyncio NNTP client, independent of nntp/, so the harness
is checked on its own before it is used to check Matinee.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.inn2 import Inn2Error, Inn2Server
from tests.support.poster import post_file, post_files
from tests.support.yenc import Article, articles_for_bytes, iter_articles

pytestmark = pytest.mark.inn2

REPO = Path(__file__).resolve().parents[1]
NZB_NS = "{http://www.newzbin.com/DTD/2003/nzb}"


class Client:
    """Just enough NNTP: one command at a time, multi-line blocks dot-unstuffed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = b""

    @classmethod
    async def open(cls, host: str, port: int, tls: ssl.SSLContext | None = None) -> Client:
        server_hostname = "localhost" if tls is not None else None
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=server_hostname, limit=1 << 20
        )
        client = cls(reader, writer)
        client.greeting = await reader.readline()
        return client

    async def command(self, line: str) -> int:
        self.writer.write(line.encode() + b"\r\n")
        status = await self.reader.readline()
        return int(status[:3])

    async def block(self) -> bytes:
        """A multi-line data block, unstuffed, with CRLF line ends and no terminator."""
        lines = []
        while (line := await self.reader.readline()) != b".\r\n":
            assert line.endswith(b"\r\n"), line
            lines.append(line[1:] if line.startswith(b".") else line)
        return b"".join(lines)[:-2]

    async def body(self, message_id: str) -> bytes | int:
        """The body of an article, or the status code when it is not 222."""
        code = await self.command(f"BODY <{message_id}>")
        return await self.block() if code == 222 else code

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def reader_for(inn2: Inn2Server) -> Client:
    client = await Client.open(inn2.host, inn2.port)
    assert client.greeting.startswith(b"200"), client.greeting
    return client


def processes_using(directory: Path) -> list[str]:
    """Processes whose INNCONF points into `directory` (what a clean stop leaves: none)."""
    found = []
    needle = f"INNCONF={directory}/".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


async def test_post_and_read_back(inn2: Inn2Server) -> None:
    data = os.urandom(250_000)
    articles = articles_for_bytes(data, "harness-small.bin", part_size=100_000)
    assert len(articles) == 3
    await inn2.post(articles)
    client = await reader_for(inn2)
    try:
        for article in articles:
            assert await client.body(article.message_id) == article.body
    finally:
        await client.close()


async def test_dot_stuffing_round_trip(inn2: Inn2Server) -> None:
    # sabctools escapes leading dots itself, so a hand-made body is what exercises stuffing.
    body = b".leading dot\r\n..two dots\r\n.\r\nmiddle\r\n."
    article = Article(
        message_id=f"dots.{os.urandom(6).hex()}@matinee.test",
        number=1,
        begin=0,
        size=len(body),
        body=body,
        subject="dots",
    )
    await inn2.post([article], connections=1)
    client = await reader_for(inn2)
    try:
        assert await client.body(article.message_id) == body
    finally:
        await client.close()


async def test_post_file_returns_nzb_of_readable_segments(inn2: Inn2Server, tmp_path: Path) -> None:
    path = tmp_path / "Movie.2024.1080p.mkv"
    path.write_bytes(os.urandom(1_000_000))
    nzb = await post_file(inn2, path, part_size=200_000, connections=3)
    root = ET.fromstring(nzb)
    (file_el,) = root.iter(f"{NZB_NS}file")
    assert '"Movie.2024.1080p.mkv" yEnc (1/5)' in file_el.get("subject", "")
    segments = sorted(file_el.iter(f"{NZB_NS}segment"), key=lambda s: int(s.get("number", 0)))
    expected = list(iter_articles(path, part_size=200_000))
    assert [s.text for s in segments] == [a.message_id for a in expected]
    client = await reader_for(inn2)
    try:
        for article in expected:
            assert await client.body(article.message_id) == article.body
    finally:
        await client.close()


async def test_post_files_obfuscated(inn2: Inn2Server, tmp_path: Path) -> None:
    video = tmp_path / "Real.Name.mkv"
    par2 = tmp_path / "Real.Name.par2"
    video.write_bytes(os.urandom(300_000))
    par2.write_bytes(b"PAR2\0PKT" + os.urandom(5_000))
    nzb = await post_files(inn2, [video, par2], part_size=100_000, obfuscate=True)
    assert b"Real.Name" not in nzb
    files = list(ET.fromstring(nzb).iter(f"{NZB_NS}file"))
    assert [len(list(f.iter(f"{NZB_NS}segment"))) for f in files] == [3, 1]
    client = await reader_for(inn2)
    try:
        first = files[1].find(f".//{NZB_NS}segment")
        assert first is not None and first.text is not None
        body = await client.body(first.text)
        assert isinstance(body, bytes)
        subject = files[1].get("subject", "")
        assert body.startswith(f"=ybegin line=128 size=5008 name={subject}\r\n".encode())
        assert b"Real.Name" not in body
    finally:
        await client.close()


async def test_duplicate_message_id_is_an_error(inn2: Inn2Server) -> None:
    articles = articles_for_bytes(os.urandom(1000), "harness-dup.bin")
    await inn2.post(articles)
    with pytest.raises(Inn2Error, match="refused"):
        await inn2.post(articles)


async def test_authinfo(inn2: Inn2Server) -> None:
    article = articles_for_bytes(os.urandom(1000), "harness-auth.bin")[0]
    await inn2.post([article])

    client = await Client.open(inn2.host, inn2.auth_port)
    try:
        assert client.greeting[:3] in (b"200", b"201"), client.greeting
        assert await client.body(article.message_id) == 480
        assert await client.command(f"AUTHINFO USER {inn2.username}") == 381
        assert await client.command("AUTHINFO PASS not-the-password") == 481
    finally:
        await client.close()

    client = await Client.open(inn2.host, inn2.auth_port)
    try:
        assert await client.command(f"AUTHINFO USER {inn2.username}") == 381
        assert await client.command(f"AUTHINFO PASS {inn2.password}") == 281
        assert await client.body(article.message_id) == article.body
    finally:
        await client.close()


async def test_tls_port(inn2: Inn2Server) -> None:
    article = articles_for_bytes(os.urandom(5000), "harness-tls.bin")[0]
    await inn2.post([article])
    ctx = ssl.create_default_context(cafile=str(inn2.cafile))
    client = await Client.open(inn2.host, inn2.tls_port, tls=ctx)
    try:
        assert client.greeting.startswith(b"200"), client.greeting
        assert await client.body(article.message_id) == article.body
    finally:
        await client.close()
    # Without the cafile, the certificate is not trusted.
    with pytest.raises(ssl.SSLCertVerificationError):
        await Client.open(inn2.host, inn2.tls_port, tls=ssl.create_default_context())


async def test_cancel_gives_430(inn2: Inn2Server) -> None:
    article = articles_for_bytes(os.urandom(2000), "harness-cancel.bin")[0]
    await inn2.post([article])
    client = await reader_for(inn2)
    try:
        assert await client.body(article.message_id) == article.body
        await asyncio.to_thread(inn2.cancel, article.message_id)
        # On the connection that already read it, and on a new one.
        assert await client.body(article.message_id) == 430
    finally:
        await client.close()
    client = await reader_for(inn2)
    try:
        assert await client.body(article.message_id) == 430
    finally:
        await client.close()


async def test_create_group(inn2: Inn2Server) -> None:
    await asyncio.to_thread(inn2.create_group, "alt.binaries.matinee.extra")
    article = articles_for_bytes(os.urandom(1000), "harness-group.bin")[0]
    await inn2.post([article], group="alt.binaries.matinee.extra")
    client = await reader_for(inn2)
    try:
        assert await client.command("GROUP alt.binaries.matinee.extra") == 211
        assert await client.body(article.message_id) == article.body
    finally:
        await client.close()


@pytest.mark.slow
async def test_stop_kills_connection_children(inn2_dir: Path) -> None:
    server = Inn2Server(inn2_dir)
    await asyncio.to_thread(server.start)
    try:
        # An open reader connection is a forked nnrpd child: stop() must take it too.
        client = await reader_for(server)
        assert processes_using(server.directory)
    finally:
        await asyncio.to_thread(server.stop)
    assert processes_using(server.directory) == []
    await client.close()


@pytest.mark.slow
async def test_command_lines(inn2_dir: Path, tmp_path: Path) -> None:
    """What the benchmarks do: `inn2 serve` in one process, the poster CLI in another."""
    directory = inn2_dir / "served"
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.inn2",
        "serve",
        "--dir",
        str(directory),
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert serve.stdout is not None
        info = json.loads(await asyncio.wait_for(serve.stdout.readline(), 60))
        assert set(info) == {
            "host",
            "port",
            "innd_port",
            "auth_port",
            "tls_port",
            "username",
            "password",
            "cafile",
        }
        data = tmp_path / "clip.bin"
        data.write_bytes(os.urandom(1_500_000))
        out = tmp_path / "clip.nzb"
        poster = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.poster",
            "--host",
            info["host"],
            "--port",
            str(info["innd_port"]),
            "--innd",
            str(data),
            "--out",
            str(out),
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(poster.communicate(), 60)
        assert poster.returncode == 0
        assert json.loads(stdout)["segments"] == 3
        ids = [s.text or "" for s in ET.parse(out).iter(f"{NZB_NS}segment")]
        expected = {a.message_id: a.body for a in iter_articles(data)}
        assert sorted(ids) == sorted(expected)
        client = await Client.open(info["host"], info["port"])
        try:
            for mid in ids:
                assert await client.body(mid) == expected[mid]
        finally:
            await client.close()
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.wait(), 60) == 0
    assert processes_using(directory.resolve()) == []
