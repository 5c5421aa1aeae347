"""Jobs through the HTTP API: submit an NZB, play while it downloads, resume, delete."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config.settings import Settings
from server.keys import JOBS, RETENTION, STORE
from tests.support.app import (
    API,
    HEADERS,
    Client,
    job,
    post_of,
    settings_for,
    submit,
    until,
)
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import make_movie
from transcode.probe import probe


@pytest.fixture(scope="module")
def movie_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # moov at the end: the player must get the tail before it can start
    path = make_movie(tmp_path_factory.mktemp("m") / "movie.mp4", seconds=20, bitrate="4M")
    return path.read_bytes()


@pytest.fixture(scope="module")
def movie_mkv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = make_movie(tmp_path_factory.mktemp("m") / "movie.mkv", seconds=20, bitrate="4M")
    return path.read_bytes()


async def test_plays_while_downloading_and_ends_ready(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    movie_mp4: bytes,
) -> None:
    data = movie_mp4
    nzb, arts = post_of(data, "The.Movie.2019.1080p.mp4")
    # Slow enough that every read below happens before the download is done.
    srv = await fake_nntp(articles=arts, bytes_per_second=len(data) / 8)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)

    j = await until(client, job_id, lambda j: j["playable"])
    assert j["status"] == "downloading"
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    assert resp.status == 200
    stream = await resp.json()
    assert stream["kind"] == "progressive"
    assert stream["content_type"] == "video/mp4"
    assert stream["size"] == len(data)
    url = stream["url"]

    # The first MiB, with the token in the URL and no API key: what a <video> element does.
    r = await client.get(url, headers={"Range": "bytes=0-1048575"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 0-1048575/{len(data)}"
    assert await r.read() == data[:1048576]
    # A range at 90 %, long before the sequential download gets there.
    at = int(len(data) * 0.9)
    r = await client.get(url, headers={"Range": f"bytes={at}-{at + 65535}"})
    assert await r.read() == data[at : at + 65536]
    assert (await job(client, job_id))["status"] == "downloading"

    # ffprobe reads the half-downloaded MP4 (moov at the end) over HTTP.
    info = await probe(str(client.make_url(url)), timeout=30)
    assert info.container in ("mp4", "mov")
    assert info.duration is not None and 19 < info.duration < 21
    assert (await job(client, job_id))["progress"] < 100

    srv.bytes_per_second = None
    j = await until(client, job_id, lambda j: j["status"] == "ready")
    assert j["progress"] == 100
    assert j["ready_at"] is not None and j["expires_at"] is not None
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    final = await resp.json()
    assert final["kind"] == "file"
    body = await (await client.get(final["url"])).read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_ffprobe_reads_a_half_downloaded_mkv(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    movie_mkv: bytes,
) -> None:
    nzb, arts = post_of(movie_mkv, "Film.2020.mkv")
    srv = await fake_nntp(articles=arts, bytes_per_second=len(movie_mkv) / 8)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["playable"])
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    # The file itself, for players that take anything (the browser's url is HLS here).
    info = await probe(str(client.make_url(stream["media_url"])), timeout=30)
    assert info.container == "matroska"
    assert [s.codec for s in info.streams] == ["h264", "aac"]
    assert (await job(client, job_id))["status"] == "downloading"


async def test_stream_before_playable_is_invalid_input(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    data = os.urandom(500_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts)
    srv.stall.update(a.message_id for a in arts)  # nothing ever arrives
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    assert resp.status == 400
    assert (await resp.json())["code"] == "INVALID_INPUT"


async def test_events_stream_job_snapshots(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    movie_mkv: bytes,
) -> None:
    nzb, arts = post_of(movie_mkv, "Film.2020.mkv")
    srv = await fake_nntp(articles=arts, bytes_per_second=len(movie_mkv) / 3)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    resp = await client.get(f"{API}/jobs/{job_id}/events", headers=HEADERS)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for line in resp.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
    statuses = [s["status"] for s in seen]
    assert statuses[-1] == "ready"  # the stream ends at a final state
    assert "downloading" in statuses
    assert any(s["playable"] and s["status"] == "downloading" for s in seen)
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)


async def test_delete_cancels_and_removes_files(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    data = os.urandom(2_000_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts, bytes_per_second=200_000)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["bytes_done"] > 0)
    resp = await client.delete(f"{API}/jobs/{job_id}", headers=HEADERS)
    assert resp.status == 200
    assert (await resp.json())["status"] == "deleted"
    assert not (tmp_path / "data" / "downloads" / job_id).exists()
    listed = await (await client.get(f"{API}/jobs?status=deleted", headers=HEADERS)).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job_id]


async def test_restart_resumes_unfinished_jobs(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    data = os.urandom(3_000_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts, bytes_per_second=600_000)
    settings = settings_for(tmp_path, srv)
    first = await start_app(settings)
    job_id = await submit(first, nzb)
    await until(first, job_id, lambda j: j["bytes_done"] > 500_000)
    await first.close()  # the server stops mid-download
    served_before = sum(srv.bodies_served.values())
    srv.bytes_per_second = None
    second = await start_app(settings)
    j = await until(second, job_id, lambda j: j["status"] == "ready")
    assert j["bytes_done"] >= len(data)
    refetched = sum(srv.bodies_served.values()) - served_before
    assert refetched < len(arts)  # it resumed; it did not start over
    url = (await (await second.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json())["url"]
    assert await (await second.get(url)).read() == data


async def test_missing_articles_end_in_a_clear_error(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    data = os.urandom(400_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts)
    srv.missing.add(arts[2].message_id)
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, nzb)
    async with asyncio.timeout(20):
        while (j := await job(client, job_id))["status"] != "error":
            await asyncio.sleep(0.05)
    assert "missing" in j["error_message"]
    assert "PAR2" in j["error_message"]


async def test_auth_and_media_tokens(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts)
    client = await start_app(settings_for(tmp_path, srv))
    assert (await client.get(f"{API}/jobs")).status == 401
    assert (await client.get(f"{API}/jobs", headers={"X-Api-Key": "wrong"})).status == 401
    assert (await client.get("/api/health")).status == 200
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    url = (await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json())["url"]
    assert (await client.get(url)).status == 200
    path, token = url.split("?token=")
    assert (await client.get(path)).status == 401
    assert (await client.get(f"{path}?token={token[:-2]}xx")).status == 401
    other = await submit(client, post_of(os.urandom(1000), "other.mkv")[0], "other.nzb")
    other_path = path.replace(job_id, other)
    assert (await client.get(f"{other_path}?token={token}")).status == 401


async def test_bad_submissions_are_invalid_input(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    srv = await fake_nntp()
    client = await start_app(settings_for(tmp_path, srv))
    form = aiohttp.FormData()
    form.add_field("nzb", b"<html>login</html>", filename="x.nzb")
    resp = await client.post(f"{API}/jobs", data=form, headers=HEADERS)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "INVALID_INPUT" and "NZB" in body["error"]
    resp = await client.post(
        f"{API}/jobs", json={"nzb_url": "http://169.254.169.254/latest"}, headers=HEADERS
    )
    assert resp.status == 400
    assert "configured indexer" in (await resp.json())["error"]
    resp = await client.post(f"{API}/jobs", json={"nope": 1}, headers=HEADERS)
    assert resp.status == 400
    resp = await client.get(f"{API}/jobs/job_1_0123abcd", headers=HEADERS)
    assert resp.status == 404
    assert (await resp.json())["code"] == "NOT_FOUND"
    # not even shaped like a job id: the caller's mistake, not a missing job
    resp = await client.get(f"{API}/jobs/job_1_nothere", headers=HEADERS)
    assert resp.status == 400
    assert (await resp.json())["code"] == "INVALID_INPUT"


async def test_nzb_url_from_a_configured_indexer(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    aiohttp_server: Any,
) -> None:
    data = os.urandom(200_000)
    nzb, arts = post_of(data, "clip.mkv")
    srv = await fake_nntp(articles=arts)
    indexer = aiohttp.web.Application()

    async def get_nzb(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(
            body=nzb, headers={"Content-Disposition": 'attachment; filename="Clip.2021.nzb"'}
        )

    indexer.router.add_get("/api", get_nzb)
    isrv = await aiohttp_server(indexer)
    settings = settings_for(
        tmp_path,
        srv,
        indexers=[{"name": "local", "url": f"http://127.0.0.1:{isrv.port}", "api_key": "k"}],
    )
    client = await start_app(settings)
    resp = await client.post(
        f"{API}/jobs",
        json={"nzb_url": f"http://127.0.0.1:{isrv.port}/api?t=get&id=1"},
        headers=HEADERS,
    )
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["job_id"]
    j = await until(client, job_id, lambda j: j["status"] == "ready")
    assert j["release_title"] == "Clip.2021"


async def test_watch_position(
    fake_nntp: FakeNntpFactory, start_app: Callable[[Settings], Awaitable[Client]], tmp_path: Path
) -> None:
    srv = await fake_nntp(articles=post_of(os.urandom(1000), "a.mkv")[1])
    client = await start_app(settings_for(tmp_path, srv))
    job_id = await submit(client, post_of(os.urandom(1000), "a.mkv")[0])
    url = f"{API}/jobs/{job_id}/position"
    assert (await (await client.get(url, headers=HEADERS)).json())["position"] == 0
    assert (await client.put(url, json={"position": 83.5}, headers=HEADERS)).status == 200
    assert (await (await client.get(url, headers=HEADERS)).json())["position"] == 83.5
    for bad in [-1, "x", None, float("inf")]:
        resp = await client.put(
            url,
            data=json.dumps({"position": bad}),
            headers={**HEADERS, "Content-Type": "application/json"},
        )
        assert resp.status == 400


async def test_ready_jobs_are_deleted_when_their_time_is_up(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
) -> None:
    data = os.urandom(200_000)
    nzb, arts = post_of(data, "short.mkv")
    srv = await fake_nntp(articles=arts)
    client = await start_app(settings_for(tmp_path, srv, retention={"ready_hours": 1}))
    job_id = await submit(client, nzb)
    ready = await until(client, job_id, lambda j: j["status"] == "ready")
    assert ready["expires_at"] is not None
    assert client.app is not None
    retention = client.app[RETENTION]
    folder = tmp_path / "data" / "downloads" / job_id
    assert folder.exists()
    await retention.run_due(time.time())  # not yet
    assert (await job(client, job_id))["status"] == "ready"
    await retention.run_due(time.time() + 3601)  # an hour and a second later
    assert (await job(client, job_id))["status"] == "deleted"
    assert not folder.exists()
    log = (await (await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)).json())["events"]
    assert log[-1]["kind"] == "deleted" and log[-1]["data"] == {"reason": "ready"}
    assert "ready_hours" in log[-1]["message"]


async def test_failed_jobs_lose_their_files_after_failed_hours(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
) -> None:
    data = os.urandom(300_000)
    nzb, arts = post_of(data, "broken.mkv")
    srv = await fake_nntp(articles=arts)
    srv.missing.add(arts[1].message_id)
    client = await start_app(settings_for(tmp_path, srv, retention={"failed_hours": 2}))
    job_id = await submit(client, nzb)
    async with asyncio.timeout(20):
        while (j := await job(client, job_id))["status"] != "error":
            await asyncio.sleep(0.05)
    assert j["expires_at"] is not None  # the page can say when the partial files go
    folder = tmp_path / "data" / "downloads" / job_id
    assert any(folder.rglob("broken.mkv"))  # what it got is there to look at, for now
    assert client.app is not None
    manager = client.app[JOBS]
    store = client.app[STORE]
    await store.cache.put("tmdb:old", b"stale", 60)
    await manager.housekeeping()
    await client.app[RETENTION].run_due(time.time())
    assert folder.exists()
    manager.clock = lambda: time.time() + 2 * 3600 + 1
    await manager.housekeeping()
    await client.app[RETENTION].run_due(time.time() + 2 * 3600 + 1)
    assert not folder.exists()
    assert (await job(client, job_id))["status"] == "deleted"
    assert await store.cache.get("tmdb:old", now=0) is None  # expired entries purged too
    # Thirty days on, the deleted job's row and history go as well.
    manager.clock = lambda: time.time() + 31 * 86400
    await manager.housekeeping()
    resp = await client.get(f"{API}/jobs/{job_id}", headers=HEADERS)
    assert resp.status == 404
