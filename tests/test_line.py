"""Seeking on a real line: a read the player is blocked on gets its bytes after about one round
trip plus one article, not after everything the connections had already asked for.

A real INN2 sits behind the line in a box (tests/support/wire.py: 60 ms RTT, a shared rate
cap, fair queueing between connections). The checks count what crossed the line between
the moment a reader asked for a far point and the moment its bytes were on disk, and what
was in flight meanwhile; wall-clock time alone would say little on a shared machine. With
the engine as it was (8 requests pipelined per connection whatever the line), a far read
waited behind ~16 articles; now the line's budget bounds what is in flight, the blocking
article goes out at once on the least loaded connection, and the connections holding
more than PREEMPT_DELAY of the line's bytes are dropped to make way for it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sabctools import FileWriter

from nntp.connection import ServerSpec
from nntp.download import Download
from nntp.line import GAIN, PREEMPT_DELAY, TARGET_DELAY, Lane, Line, Request
from nntp.nzb import Nzb, parse_nzb
from nntp.scheduler import SegmentTask
from tests.support.inn2 import Inn2Server
from tests.support.poster import post_file
from tests.support.wire import Shape, WireProxy, mbit

pytestmark = pytest.mark.inn2

RATE = mbit(100)
LINE = Shape(rtt=0.060, rate=RATE)  # a far provider; fast enough for a quick test
SIZE = 20 << 20  # 29 articles of 700 KiB: more than the old pipelines (2 x 8) held
FAR = 0.85


async def post_random(inn2: Inn2Server, path: Path, size: int) -> Nzb:
    await asyncio.to_thread(path.write_bytes, os.urandom(size))
    return parse_nzb(await post_file(inn2, path))


def through(proxy: WireProxy, **kw: object) -> ServerSpec:
    opts: dict[str, object] = {"tls": False, "connections": 2, "pipelining": 8, "timeout": 10.0}
    opts.update(kw)
    return ServerSpec("far", proxy.host, proxy.port, **opts)  # type: ignore[arg-type]


def wire_size(nzb: Nzb) -> int:
    """An article as it crosses the line (the NZB's size: headers and yEnc included)."""
    return max(s.bytes for f in nzb.files for s in f.segments)


def allowed(article: int) -> float:
    """Its own article; what was on the wire already and what the server sent until a
    dropped connection's reset reached it (a delay's worth each); what the line lets stay
    in flight beside a blocking read (PREEMPT_DELAY); twice that, as margin."""
    return article + 2 * RATE * (2 * LINE.delay + PREEMPT_DELAY)


async def blocking_read(proxy: WireProxy, dl: Download, offset: int) -> int:
    """Read one byte at ``offset`` as a player would; the bytes that crossed the line
    between asking and having it."""
    before = proxy.delivered_bytes
    async with asyncio.timeout(30):
        await dl.wait_range(0, offset, offset + 1)
    return proxy.delivered_bytes - before


async def test_a_far_read_waits_for_one_article_not_for_the_pipelines(
    inn2: Inn2Server, tmp_path: Path
) -> None:
    nzb = await post_random(inn2, tmp_path / "film.mkv", SIZE)
    article = wire_size(nzb)
    async with WireProxy(inn2.host, inn2.port, shape=LINE, record=True) as proxy:
        out = tmp_path / "out"
        async with Download(nzb, out, [through(proxy)]) as dl:
            await proxy.wait_down(3 << 20)  # the download runs at full speed by now
            far = int(SIZE * FAR)
            crossed = await blocking_read(proxy, dl, far)
            # Its article, what was on the wire already (one delay's worth), and what the
            # line allows beside it: not the ~16 articles the connections had asked for.
            assert crossed <= allowed(article), f"{crossed} bytes crossed before the far article"
            result = await dl.wait()
        assert result.complete
        assert (out / "film.mkv").read_bytes() == (tmp_path / "film.mkv").read_bytes()
        # The books balance: nothing is left in flight on the line.
        assert dl.line.expected == 0


async def test_in_flight_stays_within_what_the_line_delivers_in_a_short_time(
    inn2: Inn2Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nzb = await post_random(inn2, tmp_path / "film.mkv", SIZE // 2)
    line = Line()
    sends: list[tuple[int, float]] = []  # (outstanding, budget) as each request went out
    send = Lane.send

    def spy(lane: Lane, task: SegmentTask, sink: FileWriter | None, *, blocking: bool) -> Request:
        if lane.line is line and line.rate() is not None:  # measured: the line's own budget
            sends.append((line.outstanding(), line.budget()))
        return send(lane, task, sink, blocking=blocking)

    monkeypatch.setattr(Lane, "send", spy)
    async with WireProxy(inn2.host, inn2.port, shape=LINE) as proxy:
        servers = [through(proxy, connections=4)]
        async with Download(nzb, tmp_path / "out", servers, line=line) as dl:
            assert (await dl.wait()).complete
        await line.close()
    assert len(sends) > len(nzb.files[0].segments) // 2
    # A request goes out only while what is outstanding is under the budget...
    assert all(outstanding < budget for outstanding, budget in sends)
    # ... and the budget is what the line delivers in a round trip and TARGET_DELAY (with
    # the gain that finds a faster line), not 4 connections x 8 pipelined articles.
    assert max(budget for _, budget in sends) <= 1.2 * GAIN * RATE * (LINE.rtt + TARGET_DELAY)


async def test_a_watched_job_takes_the_line_from_another(inn2: Inn2Server, tmp_path: Path) -> None:
    size = SIZE // 2
    watched_nzb = await post_random(inn2, tmp_path / "watched.mkv", size)
    other_nzb = await post_random(inn2, tmp_path / "other.mkv", size)
    article = wire_size(watched_nzb)
    async with WireProxy(inn2.host, inn2.port, shape=LINE, record=True) as proxy:
        line = Line()
        spec = through(proxy)
        other = Download(other_nzb, tmp_path / "other", [spec], line=line)
        watched = Download(watched_nzb, tmp_path / "watched", [spec], line=line)
        async with other, watched:
            await proxy.wait_down(2 << 20)
            crossed = await blocking_read(proxy, watched, int(size * FAR))
            assert crossed <= allowed(article), f"{crossed} bytes crossed before the far article"
            # While its reader holds priority, the watched job has the line: the other
            # sends nothing new until the watched one has nothing left to ask for.
            release = watched.prioritise(0, size // 2, size // 2 + 1)
            try:
                assert watched.priority() < other.priority()
            finally:
                release()
            await watched.wait()
            # The watched job had the line: the other one got what it could not use.
            assert other.progress.bytes_done < size / 2
            await other.wait()
        assert line.expected == 0
        await line.close()
