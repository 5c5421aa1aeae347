"""PAR2 files under random names, told by their content: the engine looks at the first
segment of every file whose name says nothing, fetches a recovery volume only when a
repair needs it, and counts on the wire what it fetched.

The scriptable NNTP server counts the articles served; tests/test_obfuscated_repair.py
runs the same on a real INN2 with cancelled articles.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from nntp.connection import ServerSpec
from nntp.download import Download
from nntp.fetch import fetch_nzb
from nntp.nzb import Nzb, parse_nzb
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb

PART = 8192  # one PAR2 block per article: slices are 8192 bytes below
MOVIE = "Some.Movie.2020.mkv"


@dataclass
class Post:
    nzb: Nzb
    real: list[str]  # the real name of each file, in NZB order
    articles: list[list[Article]]
    movie: bytes

    def index(self, real: str) -> int:
        return self.real.index(real)

    def served(self, srv: FakeNntpServer, real: str) -> list[int]:
        """How often each article of a file was served."""
        return [srv.bodies_served[a.message_id] for a in self.articles[self.index(real)]]


def hexname(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


@pytest.fixture
def post(tmp_path: Path) -> Post:
    """A 400 kB movie with 49 blocks, 10 recovery blocks in volumes of 2, 4 and 4."""
    src = tmp_path / "src"
    src.mkdir()
    movie = random.Random(8).randbytes(400_000)
    (src / MOVIE).write_bytes(movie)
    subprocess.run(
        ["par2", "create", "-q", "-q", "-s8192", "-r20", "-n3", "--", "m.par2", MOVIE],
        cwd=src,
        check=True,
        capture_output=True,
    )
    real = [p.name for p in sorted(src.iterdir())]
    # As obfuscating posters do: a random name in the subject and the yEnc header.
    articles = [
        articles_for_bytes((src / name).read_bytes(), hexname(name), part_size=PART)
        for name in real
    ]
    entries = [
        NzbEntry.from_articles(a, subject=hexname(n)) for n, a in zip(real, articles, strict=True)
    ]
    return Post(parse_nzb(build_nzb(entries)), real, articles, movie)


def spec(srv: FakeNntpServer) -> ServerSpec:
    return ServerSpec("fake", srv.host, srv.port, tls=False, connections=3, timeout=5.0)


def assert_volumes_fetched(post: Post, srv: FakeNntpServer, whole: list[str]) -> None:
    """Those volumes were fetched whole, the others only by their first article."""
    for volume in ("m.vol00+2.par2", "m.vol02+4.par2", "m.vol06+4.par2"):
        served = post.served(srv, volume)
        wanted = [1] * len(served) if volume in whole else [1] + [0] * (len(served) - 1)
        assert served == wanted, volume


def leave_out(post: Post, gone: dict[str, list[int]]) -> list[Article]:
    """The post's articles but the given parts of the given files (by real name)."""
    ids = {
        post.articles[post.index(real)][i].message_id for real, parts in gone.items() for i in parts
    }
    return [a for arts in post.articles for a in arts if a.message_id not in ids]


async def test_volumes_are_left_after_their_first_article_when_nothing_is_missing(
    fake_nntp: FakeNntpFactory, tmp_path: Path, post: Post
) -> None:
    assert not any("par2" in f.name or "Movie" in f.name for f in post.nzb.files)
    srv = await fake_nntp(articles=leave_out(post, {}))
    progress: list[tuple[int, int]] = []
    out = tmp_path / "out"

    outcome = await fetch_nzb(
        post.nzb, out, [spec(srv)], on_progress=lambda d, t, _s, _c: progress.append((d, t))
    )

    assert outcome.complete and not outcome.repaired
    assert (out / MOVIE).read_bytes() == post.movie  # its name, from the PAR2 index
    assert post.served(srv, MOVIE) == [1] * 49
    assert post.served(srv, "m.par2") == [1]
    assert_volumes_fetched(post, srv, [])
    # The index keeps its random name, now ending in .par2; no remnant of a volume is left.
    index = f"{post.nzb.files[post.index('m.par2')].name}.par2"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [MOVIE, index]
    )
    assert [f.name for f in outcome.files] == [MOVIE, index]  # in NZB order
    done, total = progress[-1]
    assert done == total  # the volumes' first articles count on both sides


@pytest.mark.parametrize(
    ("gone", "needed"),
    [
        # Three blocks: the volume of 4 that sorts first does.
        ({MOVIE: [3, 30, 31]}, "m.vol02+4.par2"),
        # The index too: the smallest volume stands in for it and holds the 2 blocks needed.
        ({MOVIE: [0, 10], "m.par2": [0]}, "m.vol00+2.par2"),
    ],
    ids=["three-blocks", "index-lost"],
)
async def test_only_the_volumes_a_repair_needs_are_fetched(
    fake_nntp: FakeNntpFactory, tmp_path: Path, post: Post, gone: dict[str, list[int]], needed: str
) -> None:
    srv = await fake_nntp(articles=leave_out(post, gone))
    out = tmp_path / "out"

    outcome = await fetch_nzb(post.nzb, out, [spec(srv)])

    assert outcome.complete and outcome.repaired, outcome.problem
    assert (out / MOVIE).read_bytes() == post.movie
    assert_volumes_fetched(post, srv, [needed])
    left = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    assert [n for n in left if not n.endswith(".par2")] == [MOVIE]


async def test_a_resumed_download_decides_from_the_first_articles_on_disk(
    fake_nntp: FakeNntpFactory, tmp_path: Path, post: Post
) -> None:
    srv = await fake_nntp(articles=leave_out(post, {}))
    async with Download(post.nzb, tmp_path, [spec(srv)]) as dl:
        await dl.wait()
    served = sum(srv.bodies_served.values())
    assert served == 49 + 1 + 3

    again = Download(post.nzb, tmp_path, [spec(srv)])
    async with again:
        result = await asyncio.wait_for(again.wait(), 10)
    assert sum(srv.bodies_served.values()) == served  # nothing fetched twice
    assert result.complete
    kinds = {post.real[f.index]: f.par2 for f in again.files}
    assert kinds == {
        MOVIE: None,
        "m.par2": "index",
        "m.vol00+2.par2": "volume",
        "m.vol02+4.par2": "volume",
        "m.vol06+4.par2": "volume",
    }
    assert sorted(post.real[f.index] for f in again.files if f.selected) == [MOVIE, "m.par2"]
