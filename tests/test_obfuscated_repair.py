"""Obfuscated posts with PAR2, on a real INN2 with articles cancelled: every file is posted
under a random name, so only the content says which files are recovery data.

What a user meets: ``matinee download`` and a job both repair the post, give the movie its
real name back, and fetch only the recovery volumes the repair needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from nntp.nzb import Nzb, NzbFile, parse_nzb
from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, settings_for, submit, until
from tests.support.inn2 import Inn2Server
from tests.support.media import make_movie
from tests.support.poster import post_files

pytestmark = pytest.mark.inn2

PART = 100_000  # 50 PAR2 blocks of 2000 bytes: par2 create's default for a 4 MB file
MOVIE = "Real.Movie.2019.1080p.BluRay.x264-GRP.mkv"


@dataclass
class Post:
    nzb: Nzb
    nzb_path: Path
    movie: bytes
    movie_file: NzbFile  # the movie's entry in the NZB, under its random name
    index_size: int  # of the PAR2 index, 0 when there is none
    volumes: dict[int, int]  # size of each PAR2 volume, by its count of recovery blocks


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def make_post(
    inn2: Inn2Server, tmp_path: Path, movie: bytes, par2_args: Sequence[str] | None
) -> Post:
    """``movie`` (and a PAR2 set made by par2cmdline from it) posted under random names."""
    src = tmp_path / "src"
    src.mkdir()
    (src / MOVIE).write_bytes(movie)
    if par2_args is not None:
        await asyncio.to_thread(
            subprocess.run,
            ["par2", "create", "-q", *par2_args, "--", "movie.par2", MOVIE],
            cwd=src,
            check=True,
            capture_output=True,
        )
    paths = sorted(src.iterdir())
    doc = await post_files(inn2, paths, part_size=PART, obfuscate=True)
    assert b"Real.Movie" not in doc and b"par2" not in doc
    nzb = parse_nzb(doc)
    (tmp_path / "post.nzb").write_bytes(doc)
    # The NZB lists the files in the order they were posted.
    movie_file = nzb.files[paths.index(src / MOVIE)]
    index = src / "movie.par2"
    volumes = {
        int(p.name.split("+")[1].split(".")[0]): p.stat().st_size for p in paths if ".vol" in p.name
    }
    index_size = index.stat().st_size if index.exists() else 0
    return Post(nzb, tmp_path / "post.nzb", movie, movie_file, index_size, volumes)


def cancel(inn2: Inn2Server, file: NzbFile, parts: Sequence[int]) -> None:
    for part in parts:
        inn2.cancel(file.segments[part].message_id)  # a real "430 no such article"


def run_cli(inn2: Inn2Server, post: Post, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "server", "download", str(post.nzb_path), "--out", str(out),
            "--server", f"nntp://{inn2.host}:{inn2.port}",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def visible_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if not p.name.startswith(".")}


async def test_cli_repairs_an_obfuscated_post_and_restores_the_real_name(
    inn2: Inn2Server, tmp_path: Path
) -> None:
    movie = os.urandom(4_000_000)
    # 200 recovery blocks in volumes of 16, 32, 64 and 88 blocks.
    post = await make_post(inn2, tmp_path, movie, ["-r10", "-n4"])
    assert sorted(post.volumes) == [16, 32, 64, 88]
    # The first article too: the movie's head (and its name by MD5 of 16 KiB) is gone.
    await asyncio.to_thread(cancel, inn2, post.movie_file, [0, 17, 29])

    out = tmp_path / "out"
    done = await asyncio.to_thread(run_cli, inn2, post, out)

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["missing_segments"] == 3
    assert summary["repaired"] is True
    assert sha256((out / MOVIE).read_bytes()) == sha256(movie)
    assert {"name": MOVIE, "size": len(movie), "complete": True} in summary["files"]
    files = visible_files(out)
    # The damaged copy under the random name is gone; only PAR2 files are beside the movie.
    assert [n for n in files if not n.endswith(".par2")] == [MOVIE]
    # 150 blocks were missing: the volumes of 64 and 88 blocks repair that, and of the other
    # two only the first article was fetched (to learn that they are recovery volumes).
    vols = post.volumes
    fetched = sorted(size for size in files.values() if size > PART)
    assert fetched == sorted([vols[64], vols[88], len(movie)])
    heads = 2 * PART  # the first article of each volume left alone
    assert summary["bytes"] == len(movie) - 3 * PART + post.index_size + vols[64] + vols[88] + heads


async def test_cli_says_an_obfuscated_post_without_par2_cannot_be_repaired(
    inn2: Inn2Server, tmp_path: Path
) -> None:
    post = await make_post(inn2, tmp_path, os.urandom(1_000_000), None)
    await asyncio.to_thread(cancel, inn2, post.movie_file, [3])
    done = await asyncio.to_thread(run_cli, inn2, post, tmp_path / "out")
    assert done.returncode == 1
    assert "1 segments are missing and the post has no PAR2 files" in done.stderr


async def test_cli_says_when_the_recovery_data_is_too_little(
    inn2: Inn2Server, tmp_path: Path
) -> None:
    movie = os.urandom(4_000_000)
    post = await make_post(inn2, tmp_path, movie, ["-r2", "-n2"])  # 40 blocks: 16 + 24
    await asyncio.to_thread(cancel, inn2, post.movie_file, [5, 17, 29])  # 150 blocks
    out = tmp_path / "out"
    done = await asyncio.to_thread(run_cli, inn2, post, out)
    assert done.returncode == 1
    assert "cannot repair: 150 recovery blocks are needed but the volumes hold only 40" in (
        done.stderr
    )
    # Hopeless, so no volume was fetched beyond its first article.
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["bytes"] == len(movie) - 3 * PART + post.index_size + 2 * PART


async def test_a_job_repairs_an_obfuscated_post_and_keeps_the_real_name(
    inn2: Inn2Server,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
) -> None:
    made = await asyncio.to_thread(make_movie, tmp_path / "made.mkv", seconds=10, bitrate="3M")
    movie = made.read_bytes()
    post = await make_post(inn2, tmp_path, movie, ["-r10", "-n4"])
    count = len(post.movie_file.segments)
    await asyncio.to_thread(cancel, inn2, post.movie_file, [count // 3, 2 * count // 3])

    # settings_for reads a server's host and port, which INN2 has as well.
    client = await start_app(settings_for(tmp_path, inn2))  # type: ignore[arg-type]
    job_id = await submit(client, post.nzb_path.read_bytes())
    job = await until(client, job_id, lambda j: j["status"] == "ready", t=60)

    folder = tmp_path / "data" / "downloads" / job_id
    assert sha256((folder / MOVIE).read_bytes()) == sha256(movie)
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert stream["media_url"].split("?")[0].endswith(f"/{MOVIE}")
    assert job["progress"] == 100
