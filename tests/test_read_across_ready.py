"""A movie read through /media across the moment its job becomes ready, as a player does.

The player starts at the first playable moment and is still in the middle of the movie when
the download ends, the PAR2 index gives obfuscated volumes their real names and the job
prepares the finished movie. Its response must go on to the last byte, the same bytes, and
its validator (ETag) must stay the same so that ``If-Range`` still gets a 206.

The posts are RAR4 and RAR5 store-mode sets built here (unar checks each one) and plain
files, served by the fake NNTP server throttled so that the download runs while they are
read; PAR2 sets are made by par2cmdline.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, job, settings_for, submit, until, wait_for
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.programs import needs
from tests.support.rar4 import write_store_set as rar4_store_set
from tests.support.rar5 import write_store_set as rar5_store_set
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb

MOVIE = "Real.Movie.2019.1080p.BluRay.x264-GRP.mkv"
STEM = "real.movie.2019.1080p.bluray.x264-grp"
MIB = 1024 * 1024
SET_SIZE = 16 * MIB
VOLUME = 2 * MIB  # 8 volumes, as in a real release (of smaller volumes)
PART = 256 * 1024
RATE = 10 * MIB  # bytes per second from the server: a set downloads in about 2 s
# The reader stops here until the job is ready. The bytes the server can push meanwhile
# (socket buffers, a few MiB) end well before the movie does, so the rest of the response
# is read after the ready moment, from volumes it has not opened yet.
PAUSE_AT = 2 * MIB


@dataclass
class Post:
    nzb: bytes
    articles: list[Article]
    movie: bytes
    posted: dict[str, str]  # posted name -> real name
    by_name: dict[str, list[Article]]  # by real name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_post(folder: Path, movie: bytes, *, obfuscate: bool, par2: bool) -> Post:
    """The files in ``folder`` posted as yEnc articles (blocking: call it in a thread).
    With ``par2`` a PAR2 set made by par2cmdline goes along; ``obfuscate`` posts every file
    under a random name, in reverse order, so that only headers and PAR2 packets tell what
    they are."""
    if par2:
        files = sorted(p.name for p in folder.iterdir())
        subprocess.run(
            ["par2", "create", "-q", "-r5", "-n1", "--", f"{STEM}.par2", *files],
            cwd=folder,
            check=True,
            capture_output=True,
        )
    real = sorted(p.name for p in folder.iterdir())
    if obfuscate:
        posted = {os.urandom(8).hex(): name for name in reversed(real)}
    else:
        posted = {name: name for name in real}
    articles = {
        name: articles_for_bytes((folder / r).read_bytes(), name, part_size=PART)
        for name, r in posted.items()
    }
    nzb = build_nzb([NzbEntry.from_articles(a) for a in articles.values()])
    by_name = {posted[name]: each for name, each in articles.items()}
    return Post(nzb, [a for each in articles.values() for a in each], movie, posted, by_name)


def unar_movie(first: Path, out: Path) -> bytes:
    subprocess.run(
        ["unar", "-q", "-f", "-o", str(out), str(first)], check=True, capture_output=True
    )
    return (out / MOVIE).read_bytes()


def rar_post(folder: Path, fmt: str, *, obfuscate: bool, par2: bool) -> Post:
    """A random movie of ``SET_SIZE`` bytes as a store-mode set of ``VOLUME``-byte parts."""
    movie = os.urandom(SET_SIZE)
    src = folder / "src" / MOVIE
    src.parent.mkdir()
    src.write_bytes(movie)
    (folder / "post").mkdir()
    write = rar4_store_set if fmt == "rar4" else rar5_store_set
    volumes = write(src, folder / "post", STEM, VOLUME)
    # The set is a real one: unar reads the movie out of it.
    assert unar_movie(volumes[0], folder / "unar") == movie
    return make_post(folder / "post", movie, obfuscate=obfuscate, par2=par2)


async def stream_of(client: Client, job_id: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def read_to_end(resp: aiohttp.ClientResponse, digest: Any) -> int:
    got = 0
    while chunk := await resp.content.read(256 * 1024):
        digest.update(chunk)
        got += len(chunk)
    return got


class Playing(NamedTuple):
    """A job of ``post`` on a throttled server, at its first playable moment."""

    client: Client
    server: FakeNntpServer
    job_id: str


Play = Callable[..., Awaitable[Playing]]


@pytest.fixture
def play(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
) -> Play:
    async def start(post: Post, *, missing: tuple[str, ...] = ()) -> Playing:
        srv = await fake_nntp(articles=post.articles, bytes_per_second=RATE)
        srv.missing.update(missing)
        client = await start_app(settings_for(tmp_path, srv))
        job_id = await submit(client, post.nzb)
        await until(client, job_id, lambda j: j["playable"])
        return Playing(client, srv, job_id)

    return start


SHAPES = {
    "named": {"obfuscate": False, "par2": False},
    "obfuscated": {"obfuscate": True, "par2": False},
    "obfuscated-par2": {"obfuscate": True, "par2": True},  # PAR2 restores the real names
}


@needs("unar", "par2")
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("fmt", ["rar4", "rar5"])
async def test_a_rar_set_read_whole_from_playable_to_the_end_across_ready(
    play: Play,
    tmp_path: Path,
    fmt: str,
    shape: str,
) -> None:
    post = await asyncio.to_thread(rar_post, tmp_path, fmt, **SHAPES[shape])
    client, _, job_id = await play(post)
    stream = await stream_of(client, job_id)
    assert stream["size"] == SET_SIZE
    resp = await client.get(stream["url"])
    assert resp.status == 200
    digest = hashlib.sha256()
    got = 0
    while got < PAUSE_AT:  # in small reads, so that the client buffers little beyond
        chunk = await resp.content.read(min(64 * 1024, PAUSE_AT - got))
        digest.update(chunk)
        got += len(chunk)
    assert (await job(client, job_id))["status"] == "downloading"
    # The player stops reading (its buffer is full) while the job becomes ready.
    await until(client, job_id, lambda j: j["status"] == "ready")
    # Its response still reads the volumes under the names they were downloaded as.
    files = tmp_path / "data" / "downloads" / job_id / "files"
    downloaded = [posted for posted, real in post.posted.items() if real.endswith(".rar")]
    assert all((files / name).is_file() for name in downloaded)
    got += await read_to_end(resp, digest)

    assert got == SET_SIZE
    assert digest.hexdigest() == sha256(post.movie)
    # Once no response reads the download's names, only what the finished movie is read
    # from is left: the set's volumes, in place (no joined copy beside them).
    volumes = sorted(
        (real if shape == "obfuscated-par2" else posted)
        for posted, real in post.posted.items()
        if real.endswith(".rar")
    )
    await wait_for(lambda: sorted(p.name for p in files.iterdir()) == volumes)
    assert sorted(p.name for p in files.parent.iterdir()) == ["files", "job.nzb"]
    final = await stream_of(client, job_id)
    assert final["url"].split("?")[0] == stream["url"].split("?")[0]
    assert sha256(await (await client.get(final["url"])).read()) == sha256(post.movie)


@needs("unar", "par2")
async def test_a_read_waits_through_a_par2_repair_of_an_obfuscated_set(
    play: Play,
    tmp_path: Path,
) -> None:
    post = await asyncio.to_thread(rar_post, tmp_path, "rar5", obfuscate=True, par2=True)
    # An article in the middle of the movie is missing on the server: only the repair
    # after the download brings its bytes.
    lost = post.by_name[f"{STEM}.part06.rar"][3].message_id
    client, srv, job_id = await play(post, missing=(lost,))
    resp = await client.get((await stream_of(client, job_id))["url"])
    digest = hashlib.sha256()
    got = await read_to_end(resp, digest)

    assert got == SET_SIZE
    assert digest.hexdigest() == sha256(post.movie)
    # The bytes came from the repair: the recovery volume was fetched beyond its first
    # article (which only told what it is).
    (volume,) = [name for name in post.by_name if ".vol" in name]
    assert all(srv.bodies_served[a.message_id] for a in post.by_name[volume])


PLAIN = "Plain.Movie.2019.1080p.WEB-DL.x264-GRP.mp4"
PLAIN_SIZE = 12 * MIB
RANGE = 64 * 1024
READERS = 8


def plain_post(folder: Path) -> Post:
    movie = os.urandom(PLAIN_SIZE)
    (folder / "post").mkdir()
    (folder / "post" / PLAIN).write_bytes(movie)
    return make_post(folder / "post", movie, obfuscate=False, par2=False)


async def read_ranges(
    client: Client, url: str, movie: bytes, start: int, ready: asyncio.Event
) -> tuple[int, int]:
    """Ranges one after the other from ``start`` on, round the movie, until a while after
    ``ready``; each must be a 206 with exactly the movie's bytes. Returns how many were read
    before and after the ready moment."""
    before = after = 0
    at = start
    while after < 40:
        end = min(len(movie), at + RANGE)
        resp = await client.get(url, headers={"Range": f"bytes={at}-{end - 1}"})
        body = await resp.read()
        assert resp.status == 206, (resp.status, at)
        assert len(body) == end - at and body == movie[at:end], f"bytes {at}-{end - 1}"
        if ready.is_set():
            after += 1
        else:
            before += 1
        at = end % len(movie)
    return before, after


async def test_ranges_of_a_plain_file_read_across_the_ready_moment(
    play: Play,
    tmp_path: Path,
) -> None:
    post = await asyncio.to_thread(plain_post, tmp_path)
    client, _, job_id = await play(post)
    url = (await stream_of(client, job_id))["url"]

    ready = asyncio.Event()

    async def watch() -> None:
        await until(client, job_id, lambda j: j["status"] == "ready")
        ready.set()

    # Readers as a player, a second player and an HLS remuxer may be, each at another
    # place; a failure in one ends them all.
    async with asyncio.TaskGroup() as group:
        group.create_task(watch())
        readers = [
            group.create_task(read_ranges(client, url, post.movie, start, ready))
            for start in range(0, PLAIN_SIZE, PLAIN_SIZE // READERS)
        ]
    counts = [r.result() for r in readers]
    assert all(before > 0 for before, _ in counts), counts  # the reads began while downloading


@pytest.mark.parametrize("kind", ["plain", "rar5-obfuscated-par2"])
async def test_if_range_gets_206_with_the_same_etag_before_and_after_ready(
    play: Play,
    tmp_path: Path,
    kind: str,
) -> None:
    if kind == "plain":
        post = await asyncio.to_thread(plain_post, tmp_path)
    else:
        post = await asyncio.to_thread(rar_post, tmp_path, "rar5", obfuscate=True, par2=True)
    client, _, job_id = await play(post)
    url = (await stream_of(client, job_id))["url"]

    head = await client.head(url)
    assert head.status == 200
    etag = head.headers["ETag"]
    mid = len(post.movie) // 2
    ranged = {"Range": f"bytes={mid}-{mid + 999}", "If-Range": etag}
    early = await client.get(url, headers=ranged)
    assert early.status == 206 and await early.read() == post.movie[mid : mid + 1000]
    assert (await job(client, job_id))["status"] == "downloading"

    await until(client, job_id, lambda j: j["status"] == "ready")
    after = await client.head(url)
    assert after.headers["ETag"] == etag
    late = await client.get(url, headers=ranged)
    assert late.status == 206, "a player resuming with If-Range must not get the whole file"
    assert late.headers["ETag"] == etag
    assert await late.read() == post.movie[mid : mid + 1000]
