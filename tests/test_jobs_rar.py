"""RAR posts through the job API: store-mode sets play while downloading and, once ready, go
on being read in place from their volumes; compressed sets play once downloaded and
extracted."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import tarfile
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, settings_for, submit, until, wait_for
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

SETS = {
    "rar4-new": ["rar3-vols.part1.rar", "rar3-vols.part2.rar", "rar3-vols.part3.rar"],
    "rar4-old": ["rar3-old.rar", "rar3-old.r00", "rar3-old.r01"],
    "rar5": ["rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"],
}


def unar_extract(volume: Path, out: Path) -> Path:
    subprocess.run(
        ["unar", "-q", "-f", "-o", str(out), str(volume)], check=True, capture_output=True
    )
    return out


def rar_nzb(files: dict[str, bytes], *, part: int = 8192) -> tuple[bytes, list[Any]]:
    arts = {name: articles_for_bytes(data, name, part_size=part) for name, data in files.items()}
    nzb = build_nzb([NzbEntry.from_articles(a) for a in arts.values()])
    return nzb, [a for v in arts.values() for a in v]


@pytest.mark.parametrize("obfuscated", [False, True], ids=["named", "obfuscated"])
@pytest.mark.parametrize("which", sorted(SETS))
async def test_store_mode_set_plays_while_downloading_then_in_place(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    shared_fixtures: Path,
    tmp_path: Path,
    which: str,
    obfuscated: bool,
) -> None:
    rar_dir = shared_fixtures / "rar" / "rarfile"
    names = SETS[which]
    expected = (
        unar_extract(rar_dir / names[0], tmp_path / "unar") / "vols" / "bigfile.txt"
    ).read_bytes()
    files = {n: (rar_dir / n).read_bytes() for n in names}
    if obfuscated:  # random names, shuffled order: only the headers can order them
        files = {os.urandom(8).hex(): files[n] for n in reversed(names)}
    nzb, arts = rar_nzb(files)
    total = sum(len(d) for d in files.values())
    srv = await fake_nntp(articles=arts, bytes_per_second=total / 4)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)

    await until(client, job_id, lambda j: j["playable"])
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert stream["size"] == len(expected)
    assert stream["url"].split("?")[0].endswith("/bigfile.txt")
    # Read all of it through ranges while the volumes are still arriving.
    got = b""
    for start in range(0, len(expected), 50_000):
        end = min(len(expected), start + 50_000) - 1
        r = await client.get(stream["url"], headers={"Range": f"bytes={start}-{end}"})
        assert r.status == 206
        got += await r.read()
    assert got == expected

    srv.bytes_per_second = None
    job = await until(client, job_id, lambda j: j["status"] == "ready")
    final = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert final["kind"] == "file" and final["url"].split("?")[0] == stream["url"].split("?")[0]
    assert await (await client.get(final["url"])).read() == expected
    assert job["progress"] == 100
    # Read in place from the volumes, never joined: they are all that is left of the download.
    folder = tmp_path / "data" / "downloads" / job_id
    await wait_for(lambda: sorted(p.name for p in (folder / "files").iterdir()) == sorted(files))
    assert sorted(p.name for p in folder.iterdir()) == ["files", "job.nzb"]


async def test_an_archive_unar_cannot_extract_fails_saying_so_without_server_paths(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Broken.Film.2020.mkv", os.urandom(300_000))
    cut = packed.getvalue()[:200_000]  # a damaged post: the film's data is cut short
    nzb, arts = rar_nzb({"Broken.Film.2020.rar": cut})
    client = await start_app(settings_for(tmp_path, await fake_nntp(articles=arts)))
    job_id = await submit(client, nzb)
    failed = await until(client, job_id, lambda j: j["status"] == "error", may_fail=True)
    message = failed["error_message"]
    assert message.startswith("extracting the archive failed"), message
    assert str(tmp_path) not in message and ".extracted" not in message, message


async def test_compressed_archive_plays_only_after_extraction(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    shared_fixtures: Path,
    tmp_path: Path,
) -> None:
    archive = shared_fixtures / "rar" / "rarfile" / "rar3-solid.rar"
    out = unar_extract(archive, tmp_path / "unar")
    largest = max((p for p in out.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    # The archive is tiny; a slow companion file keeps the job downloading after it is known.
    nzb, arts = rar_nzb(
        {"Solid.Post.rar": archive.read_bytes(), "Solid.Post.nfo": os.urandom(400_000)}, part=4096
    )
    srv = await fake_nntp(articles=arts, bytes_per_second=200_000)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    said: set[str] = set()
    async with asyncio.timeout(20):
        while True:
            j = await (await client.get(f"{API}/jobs/{job_id}", headers=HEADERS)).json()
            if j["status"] == "ready":
                break
            assert not j["playable"], "a compressed archive cannot play before extraction"
            r = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
            if j["status"] == "downloading" and r.status == 400:
                said.add((await r.json())["error"])
            assert j["status"] != "error", j["error_message"]
            await asyncio.sleep(0.05)
    # The job said why it could not play yet.
    assert any("compressed" in m and "extracted" in m for m in said), said
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert stream["kind"] == "file"
    assert await (await client.get(stream["url"])).read() == largest.read_bytes()


async def test_a_ready_set_read_in_place_plays_after_a_restart(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    shared_fixtures: Path,
    tmp_path: Path,
) -> None:
    rar_dir = shared_fixtures / "rar" / "rarfile"
    names = SETS["rar5"]
    expected = (
        unar_extract(rar_dir / names[0], tmp_path / "unar") / "vols" / "bigfile.txt"
    ).read_bytes()
    nzb, arts = rar_nzb({os.urandom(8).hex(): (rar_dir / n).read_bytes() for n in names})
    settings = settings_for(tmp_path, await fake_nntp(articles=arts))
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    before = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    etag = (await client.head(before["url"])).headers["ETag"]
    await client.close()

    # A new process finds the movie in its volumes again (their headers say where).
    again = await start_app(settings)
    after = await (await again.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert after["url"].split("?")[0] == before["url"].split("?")[0]
    resp = await again.get(after["url"])
    assert resp.status == 200 and resp.headers["ETag"] == etag
    assert await resp.read() == expected


def _tar(members: list[tuple[str, bytes | str]]) -> bytes:
    """A tar archive (unar opens it whatever its name says): bytes are a file, a str is a
    symbolic link to that path."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            if isinstance(body, str):
                info.type, info.linkname = tarfile.SYMTYPE, body
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


CASES = ["file-links", "file-links-and-a-movie", "a-folder-link"]


@pytest.mark.parametrize("case", CASES)
async def test_links_in_an_archive_are_never_followed_or_served(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    case: str,
) -> None:
    # Any file on disk (the configuration, another movie), bigger than the movie.
    secret = tmp_path / "secret.toml"
    secret.write_bytes(b"\x1a\x45\xdf\xa3" + b"password = 'hunter2'\n" * 50_000)
    outside = tmp_path / "outside"
    outside.mkdir()
    movie = b"\x1a\x45\xdf\xa3" + os.urandom(20_000)  # an EBML (Matroska) head
    members: list[tuple[str, bytes | str]] = [
        ("Hostile.Movie.2024.mkv", str(secret)),  # the largest "video" if links were followed
        ("Hostile.Movie.2024.up.mkv", "../../../../../secret.toml"),
    ]
    if case == "file-links-and-a-movie":
        members.append(("Real.Movie.2024.mkv", movie))
    if case == "a-folder-link":  # unar refuses to write through it, and so fails
        members += [("extras", str(outside)), ("extras/planted.txt", b"outside the job")]
    nzb, arts = rar_nzb({"Hostile.Movie.2024.rar": _tar(members)})
    client = await start_app(settings_for(tmp_path, await fake_nntp(articles=arts)))
    job_id = await submit(client, nzb)
    job = await until(client, job_id, lambda j: j["status"] in ("ready", "error"), may_fail=True)

    assert list(outside.iterdir()) == []
    if case == "file-links-and-a-movie":
        assert job["status"] == "ready", job["error_message"]
        stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
        assert stream["url"].split("?")[0].endswith("/Real.Movie.2024.mkv")
        assert await (await client.get(stream["url"])).read() == movie
    else:
        assert job["status"] == "error"
        why = "links in it are never followed" if case == "file-links" else "extracting"
        assert why in job["error_message"]
        r = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
        assert r.status == 500 and (await r.json())["code"] == "JOB_ERROR"
    # Nothing in the job's folder points anywhere.
    folder = tmp_path / "data" / "downloads" / job_id
    assert not [p for p in folder.rglob("*") if p.is_symlink()]
