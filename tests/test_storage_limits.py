"""Room for a download before it starts: a download that does not fit is refused with how
much is missing (nothing deleted for nothing), and finished movies make room, least
recently watched first, as far as retention allows. On a small tmpfs, so "fits" is real."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from server.config.settings import Settings
from server.mirror import space
from tests.support.app import (
    API,
    HEADERS,
    Client,
    job,
    post_of,
    settings_for,
    submit,
    until,
    wait_for,
)
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.fake_tmdb import THE_MATRIX
from tests.support.world import StartWorld
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

StartApp = Callable[[Settings], Awaitable[Client]]


async def _log(client: Client, job_id: str) -> list[dict[str, object]]:
    resp = await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)
    return list((await resp.json())["events"])


async def test_a_download_that_does_not_fit_is_refused_saying_how_much_is_needed(
    small_disk: Path, fake_nntp: FakeNntpFactory, start_app: StartApp, tmp_path: Path
) -> None:
    nzb, arts = post_of(os.urandom(20_000_000), "Big.2020.mkv")  # the disk has 12 MB
    srv = await fake_nntp(articles=arts)
    downloads = small_disk / "downloads"
    settings = settings_for(tmp_path, srv, downloads={"dir": str(downloads), "min_free_gb": 0.001})
    client = await start_app(settings)
    form = aiohttp.FormData()
    form.add_field("nzb", nzb, filename="Big.2020.nzb", content_type="application/x-nzb")
    resp = await client.post(f"{API}/jobs", data=form, headers=HEADERS)
    assert resp.status == 502
    body = await resp.json()
    assert body["code"] == "STORAGE_ERROR"
    assert "needs 21 MB" in body["error"] and "more must be freed" in body["error"]
    assert (await (await client.get(f"{API}/jobs", headers=HEADERS)).json())["jobs"] == []
    assert srv.connections_total == 0  # nothing was fetched


async def test_finished_movies_make_room_least_recently_watched_first(
    small_disk: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, first_arts = post_of(os.urandom(4_000_000), "First.2020.mkv")
    second, second_arts = post_of(os.urandom(4_000_000), "Second.2020.mkv")
    third, third_arts = post_of(os.urandom(6_000_000), "Third.2020.mkv")
    srv = await fake_nntp(articles=[*first_arts, *second_arts, *third_arts])
    downloads = small_disk / "downloads"
    settings = settings_for(tmp_path, srv, downloads={"dir": str(downloads), "min_free_gb": 0.001})
    client = await start_app(settings)
    one = await submit(client, first, "First.2020.nzb")
    await until(client, one, lambda j: j["status"] == "ready")
    two = await submit(client, second, "Second.2020.nzb")
    await until(client, two, lambda j: j["status"] == "ready")
    # The first was watched last: the second goes when the third needs room.
    put = await client.put(f"{API}/jobs/{one}/position", json={"position": 12}, headers=HEADERS)
    assert put.status == 200
    monkeypatch.setattr(space, "WATCHING", 0.0)  # a position saved now protects nothing here
    three = await submit(client, third, "Third.2020.nzb")
    await until(client, three, lambda j: j["status"] == "ready")
    assert (await job(client, two))["status"] == "deleted"
    assert (await job(client, one))["status"] == "ready"
    assert not (downloads / two).exists() and (downloads / one).exists()
    deleted = [e for e in await _log(client, two) if e["kind"] == "deleted"]
    assert deleted and deleted[0]["data"] == {"reason": "space"}
    assert "make room" in str(deleted[0]["message"])


async def test_an_archive_that_would_not_fit_extracted_fails_before_it_is_unpacked(
    small_disk: Path, fake_nntp: FakeNntpFactory, start_app: StartApp, tmp_path: Path
) -> None:
    # A zip that calls itself RAR (unar reads it by content): 20 MB of film in 20 KB.
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Big.Film.2020.mkv", bytes(20_000_000))
    arts = articles_for_bytes(packed.getvalue(), "Big.Film.2020.rar", part_size=8192)
    srv = await fake_nntp(articles=arts)
    downloads = small_disk / "downloads"  # 12 MB: the download fits, the film would not
    settings = settings_for(tmp_path, srv, downloads={"dir": str(downloads), "min_free_gb": 0.001})
    client = await start_app(settings)
    job_id = await submit(client, build_nzb([NzbEntry.from_articles(arts)]), "Big.Film.2020.nzb")
    failed = await until(client, job_id, lambda j: j["status"] == "error", may_fail=True)
    message = failed["error_message"]
    assert "the archive cannot be extracted" in message and "needs 20 MB" in message, message
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    assert (await resp.json())["code"] == "STORAGE_ERROR"
    # Refused before unar wrote anything: no half-extracted film fills the disk.
    assert not (downloads / job_id / "files" / ".extracted").exists()


async def test_a_watch_without_room_fails_with_storage_error(start_world: StartWorld) -> None:
    world = await start_world(downloads={"max_disk_gb": 0.0001})  # 100 kB for all downloads
    world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE", size=300_000)
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202, body

    async def failed() -> bool:
        j = await job(world.client, body["job_id"])
        return bool(j["status"] == "error")

    await wait_for(failed, within=20, every=0.05)
    j = await job(world.client, body["job_id"])
    assert j["error_code"] == "STORAGE_ERROR"
    assert "at most 0.0001 GB for downloads" in j["error_message"]
    # Nothing was asked of the Usenet server (it may have been logged in to early).
    assert not [c for _, c in world.nntp.commands if c.split()[0] in ("BODY", "ARTICLE", "STAT")]
