"""The retention timers with second-scale deadlines, against moto's S3 server: the local copy
goes `local_hours` after it was mirrored (and the film plays from R2), everything goes
`ready_hours` after ready or `idle_hours` after the last saved position, each with a job
event that says why, and nothing is left in the bucket or in the data dir. Deadlines are
stored: a restart with other settings keeps them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config.settings import Settings
from server.keys import PLAYBACK, RETENTION
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
from tests.support.capabilities import CHROMIUM_JSON
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import ReleaseClips
from tests.support.processes import children_named
from tests.support.s3 import FaultProxy, Moto, r2_settings

StartApp = Callable[[Settings], Awaitable[Client]]
SECOND = 1 / 3600  # an hour's fraction: the timers take hours


async def _log(client: Client, job_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)
    return list((await resp.json())["events"])


async def _stream(client: Client, job_id: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


@pytest.mark.slow
async def test_local_copy_then_everything_goes_and_nothing_is_left(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    data = os.urandom(300_000)
    nzb, arts = post_of(data, "Short.2020.mkv")
    srv = await fake_nntp(articles=arts)
    settings = settings_for(
        tmp_path,
        srv,
        r2=r2_settings(s3_proxy.url, bucket),  # serve "auto": this test is on the LAN
        retention={"ready_hours": 6 * SECOND, "local_hours": 2 * SECOND},
    )
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    mirrored = await until(
        client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "mirrored")
    )
    assert mirrored["local"] is True and mirrored["local_expires_at"] is not None
    assert (await _stream(client, job_id))["kind"] == "file"  # the LAN plays the local copy
    folder = tmp_path / "data" / "downloads" / job_id

    dropped = await until(client, job_id, lambda j: j["local"] is False, t=20)
    assert dropped["status"] == "ready" and dropped["local_expires_at"] is None
    assert not folder.exists()
    stream = await _stream(client, job_id)  # now everyone plays from R2
    assert stream["kind"] == "r2"
    async with aiohttp.ClientSession() as http, http.get(stream["url"]) as resp:
        assert resp.status == 200 and await resp.read() == data
    kinds = [e["kind"] for e in await _log(client, job_id)]
    assert "local_deleted" in kinds

    gone = await until(client, job_id, lambda j: j["status"] == "deleted", t=20)
    assert gone["mirror"] is not None
    log = await _log(client, job_id)
    assert log[-1]["kind"] == "deleted" and log[-1]["data"] == {"reason": "ready"}
    assert "ready_hours" in log[-1]["message"]
    assert await asyncio.to_thread(moto_server.keys, bucket) == []
    assert await asyncio.to_thread(moto_server.uploads, bucket) == []
    assert list((tmp_path / "data" / "downloads").iterdir()) == []
    metrics = await (await client.get("/metrics", headers=HEADERS)).text()
    assert 'matinee_retention_deletions_total{reason="local"} 1.0' in metrics
    assert 'matinee_retention_deletions_total{reason="ready"} 1.0' in metrics


@pytest.mark.slow
async def test_idle_hours_count_from_the_last_saved_position(
    tmp_path: Path, fake_nntp: FakeNntpFactory, start_app: StartApp
) -> None:
    nzb, arts = post_of(os.urandom(100_000), "Idle.2020.mkv")
    srv = await fake_nntp(articles=arts)
    settings = settings_for(tmp_path, srv, retention={"idle_hours": 2 * SECOND})
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    ready = await until(client, job_id, lambda j: j["status"] == "ready")
    assert ready["expires_at"] is not None  # ready_hours: 24 h
    started = time.time()
    url = f"{API}/jobs/{job_id}/position"
    assert (await client.put(url, json={"position": 30}, headers=HEADERS)).status == 200
    watched = await job(client, job_id)
    assert watched["expires_at"] < ready["expires_at"]  # the idle timer comes first now
    await until(client, job_id, lambda j: j["status"] == "deleted", t=20)
    assert time.time() - started >= 1.9
    log = await _log(client, job_id)
    assert log[-1]["data"] == {"reason": "idle"} and "idle_hours" in log[-1]["message"]


@pytest.mark.slow
async def test_deadlines_survive_a_restart_and_keep_moves_them(
    tmp_path: Path, fake_nntp: FakeNntpFactory, start_app: StartApp
) -> None:
    first, first_arts = post_of(os.urandom(100_000), "Kept.2020.mkv")
    second, second_arts = post_of(os.urandom(100_000), "Gone.2020.mkv")
    srv = await fake_nntp(articles=[*first_arts, *second_arts])
    short = settings_for(tmp_path, srv, retention={"ready_hours": 3 * SECOND})
    client = await start_app(short)
    kept = await submit(client, first, "Kept.2020.nzb")
    gone = await submit(client, second, "Gone.2020.nzb")
    for job_id in (kept, gone):
        await until(client, job_id, lambda j: j["status"] == "ready")
    before = (await job(client, kept))["expires_at"]
    resp = await client.post(f"{API}/jobs/{kept}/keep", headers=HEADERS)
    assert resp.status == 200
    assert (await resp.json())["expires_at"] > before
    await client.close()

    # Started again with a day's retention: the deadlines written before still hold.
    client = await start_app(settings_for(tmp_path, srv))
    await until(client, gone, lambda j: j["status"] == "deleted", t=20)
    assert (await job(client, kept))["status"] == "ready"  # 24 h longer
    log = await _log(client, kept)
    assert any(e["kind"] == "kept" for e in log)


@pytest.mark.slow
async def test_dropping_the_local_copy_stops_its_hls_sessions(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
    release_clips: ReleaseClips,
) -> None:
    """An ffmpeg making HLS from the local copy must not outlive it (it would read a file
    that is gone, and its segments would stay on disk)."""
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    film = release_clips.path("h264-ac3-2srt.mkv")
    nzb, arts = await asyncio.to_thread(post_of, film.read_bytes(), film.name)
    settings = settings_for(
        tmp_path,
        await fake_nntp(articles=arts),
        r2=r2_settings(s3_proxy.url, bucket),
        retention={"ready_hours": 24, "local_hours": 1},
    )
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "mirrored"))
    resp = await client.get(
        f"{API}/movies/{job_id}/stream", params={"capabilities": CHROMIUM_JSON}, headers=HEADERS
    )
    stream = await resp.json()
    assert stream["kind"] == "hls", stream
    assert (await client.get(stream["url"].replace("index.m3u8", "0.m4s"))).status == 200
    playback = client.app[PLAYBACK]
    assert len(playback.sessions) == 1

    await client.app[RETENTION].run_due(time.time() + 3601)  # local_hours have passed
    dropped = await job(client, job_id)
    assert dropped["local"] is False and dropped["status"] == "ready"
    assert len(playback.sessions) == 0
    assert list((tmp_path / "data" / "hls").iterdir()) == []
    await wait_for(lambda: not children_named("ffmpeg"), within=5)
