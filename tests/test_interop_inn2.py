"""The Usenet engine against a real INN2 server: what users' providers run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nntp.connection import ServerSpec
from nntp.download import DownloadError
from nntp.fetch import fetch_nzb
from nntp.nzb import parse_nzb
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.inn2 import Inn2Server
from tests.support.poster import post_file, post_files
from tests.support.yenc import articles_for_bytes

pytestmark = pytest.mark.inn2


def reader(inn2: Inn2Server, **kw: object) -> ServerSpec:
    opts: dict[str, object] = {
        "host": inn2.host,
        "port": inn2.port,
        "tls": False,
        "connections": 4,
        "timeout": 10.0,
    }
    opts.update(kw)
    return ServerSpec(name="inn2", **opts)  # type: ignore[arg-type]


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize(("size", "part"), [(5_000, 716_800), (3_000_000, 250_000)])
async def test_single_and_multipart_posts_download_identical(
    inn2: Inn2Server, tmp_path: Path, size: int, part: int
) -> None:
    data = random_file(tmp_path / f"clip-{size}.mkv", size)
    nzb = await post_file(inn2, tmp_path / f"clip-{size}.mkv", part_size=part)
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path / "out", [reader(inn2)])
    assert outcome.complete, outcome.problem
    assert (tmp_path / "out" / f"clip-{size}.mkv").read_bytes() == data


async def test_login_and_tls_ports(inn2: Inn2Server, tmp_path: Path) -> None:
    data = random_file(tmp_path / "secure.mkv", 1_000_000)
    nzb = parse_nzb(await post_file(inn2, tmp_path / "secure.mkv", part_size=200_000))
    auth = reader(inn2, port=inn2.auth_port, username=inn2.username, password=inn2.password)
    outcome = await fetch_nzb(nzb, tmp_path / "auth", [auth])
    assert (tmp_path / "auth" / "secure.mkv").read_bytes() == data
    tls = reader(inn2, port=inn2.tls_port, tls=True, cafile=str(inn2.cafile), host="localhost")
    outcome = await fetch_nzb(nzb, tmp_path / "tls", [tls])
    assert outcome.complete
    assert (tmp_path / "tls" / "secure.mkv").read_bytes() == data
    wrong = reader(inn2, port=inn2.auth_port, username=inn2.username, password="not-it")
    with pytest.raises(DownloadError, match="refused the login"):
        await fetch_nzb(nzb, tmp_path / "wrong", [wrong])


async def test_cancelled_articles_come_from_the_backup(
    inn2: Inn2Server, fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = random_file(tmp_path / "gap.mkv", 1_000_000)
    nzb_doc = await post_file(inn2, tmp_path / "gap.mkv", part_size=100_000)
    nzb = parse_nzb(nzb_doc)
    ids = [s.message_id for s in nzb.files[0].segments]
    for mid in ids[2:4]:
        inn2.cancel(mid)  # a real "430 no such article"
    # The backup holds the same articles (same ids, same bytes).
    arts = articles_for_bytes(data, "gap.mkv", part_size=100_000)
    backup = await fake_nntp(
        articles=[dataclasses.replace(a, message_id=m) for a, m in zip(arts, ids, strict=True)]
    )
    outcome = await fetch_nzb(
        nzb,
        tmp_path / "out",
        [reader(inn2), ServerSpec("backup", backup.host, backup.port, tls=False, priority=1)],
    )
    assert outcome.complete, outcome.problem
    assert (tmp_path / "out" / "gap.mkv").read_bytes() == data
    assert set(backup.bodies_served) == set(ids[2:4])


async def test_par2_repair_after_cancelled_articles(inn2: Inn2Server, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = random_file(src / "film.mkv", 800_000)
    await asyncio.to_thread(
        subprocess.run,
        ["par2", "create", "-q", "-s100000", "-c6", "-n3", "-u", "film.par2", "film.mkv"],
        cwd=src,
        check=True,
        capture_output=True,
    )
    paths = sorted(src.iterdir())
    nzb = parse_nzb(await post_files(inn2, paths, part_size=100_000))
    film = next(f for f in nzb.files if f.name == "film.mkv")
    for seg in film.segments[1:3]:
        inn2.cancel(seg.message_id)
    outcome = await fetch_nzb(nzb, tmp_path / "out", [reader(inn2)])
    assert outcome.complete, outcome.problem
    assert outcome.repaired
    assert outcome.result.missing_segments == 2
    assert (tmp_path / "out" / "film.mkv").read_bytes() == data


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=120
    )


async def test_cli_incomplete_download_exits_non_zero(inn2: Inn2Server, tmp_path: Path) -> None:
    random_file(tmp_path / "holes.mkv", 500_000)
    nzb_doc = await post_file(inn2, tmp_path / "holes.mkv", part_size=100_000)
    nzb_path = tmp_path / "holes.nzb"
    nzb_path.write_bytes(nzb_doc)
    inn2.cancel(parse_nzb(nzb_doc).files[0].segments[1].message_id)
    res = await asyncio.to_thread(
        run_cli,
        "download", str(nzb_path), "--out", str(tmp_path / "out"),
        "--server", f"nntp://{inn2.host}:{inn2.port}",
    )  # fmt: skip
    assert res.returncode == 1
    assert json.loads(res.stdout.strip().splitlines()[-1])["missing_segments"] == 1
    assert "no PAR2" in res.stderr


def test_cli_rejects_a_file_that_is_not_an_nzb(tmp_path: Path) -> None:
    bad = tmp_path / "x.nzb"
    bad.write_text("<html><body>Login required</body></html>")
    res = run_cli("download", str(bad), "--out", str(tmp_path), "--server", "nntp://127.0.0.1:9")
    assert res.returncode == 2
    assert "not a usable NZB" in res.stderr
    assert "Traceback" not in res.stderr
