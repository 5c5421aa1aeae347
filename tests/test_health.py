"""Liveness, readiness and metrics, as a supervisor and a Prometheus see them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from server.config.settings import Settings
from tests.support.app import (
    API,
    HEADERS,
    Client,
    post_of,
    settings_for,
    submit,
    until,
    usenet_of,
    wait_for,
)
from tests.support.capabilities import CHROMIUM_JSON
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import ReleaseClips

Start = Callable[[Settings], Awaitable[Client]]


async def test_ready_names_what_is_not_working_and_tells_no_secrets(
    start_app: Start, fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    srv = await fake_nntp()
    client = await start_app(settings_for(tmp_path, srv))
    assert (await client.get("/api/health")).status == 200  # no credentials needed
    resp = await client.get("/api/ready")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert {c["name"] for c in body["checks"]} == {"database", "disk", "usenet", "tools"}

    # A disk that is too full, and a news server that went away: 503, both named.
    full = await start_app(settings_for(tmp_path / "b", srv, downloads={"min_free_gb": 1e9}))
    resp = await full.get("/api/ready")
    assert resp.status == 503 and (await resp.json())["failing"] == ["disk"]
    await srv.stop()
    gone = await start_app(settings_for(tmp_path / "c", srv))
    resp = await gone.get("/api/ready")
    body = await resp.json()
    assert resp.status == 503 and body["failing"] == ["usenet"]
    text = await resp.text()
    assert str(tmp_path) not in text and srv.host not in text and "fake" not in text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_in_prometheus_text(
    start_app: Start, fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    nzb, arts = post_of(data, "Film.2020.mkv")
    srv = await fake_nntp(articles=arts)
    client = await start_app(settings_for(tmp_path, srv))
    assert (await client.get("/metrics")).status == 401  # a key, by default
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    media = await client.get(stream["url"], headers={"Range": "bytes=0-99"})
    assert media.status == 206

    resp = await client.get("/metrics", headers=HEADERS)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    seen = samples(await resp.text())
    assert seen[("matinee_jobs", (("status", "ready"),))] == 1
    assert seen[("matinee_jobs", (("status", "error"),))] == 0
    assert seen[("matinee_watch_to_playable_seconds_count", ())] == 1
    assert seen[("matinee_media_first_byte_seconds_count", ())] >= 1
    assert seen[("matinee_disk_free_bytes", ())] > 0
    # What the Usenet server gave, as the engine counted it: every byte, every article.
    (server,) = {
        dict(labels)["server"] for (name, labels) in seen if name == "matinee_articles_total"
    }
    assert seen[("matinee_downloaded_bytes_total", (("server", server),))] == len(data)
    ok, missing = (
        (("outcome", "ok"), ("server", server)),
        (("outcome", "missing"), ("server", server)),
    )
    assert seen[("matinee_articles_total", ok)] == len(arts)
    assert seen[("matinee_articles_total", missing)] == 0


async def test_metrics_count_articles_a_server_lacks_corrupts_or_stalls(
    start_app: Start, fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    nzb, arts = post_of(data, "Film.2020.mkv")
    srv = await fake_nntp(articles=arts)
    srv.missing.add(arts[1].message_id)  # no PAR2: the job fails
    srv.corrupt.add(arts[2].message_id)
    srv.stall.add(arts[3].message_id)  # its status line, then silence: until a retry
    client = await start_app(settings_for(tmp_path, srv, usenet=usenet_of(srv, timeout=1)))
    job_id = await submit(client, nzb)
    await asyncio.sleep(0.3)
    srv.stall.clear()
    await until(client, job_id, lambda j: j["status"] == "error", may_fail=True)
    seen = samples(await (await client.get("/metrics", headers=HEADERS)).text())
    by_outcome = {
        dict(labels)["outcome"]: value
        for (name, labels), value in seen.items()
        if name == "matinee_articles_total"
    }
    assert by_outcome["missing"] >= 1 and by_outcome["crc"] >= 1 and by_outcome["timeout"] >= 1
    assert by_outcome["ok"] == len(arts) - 2


async def test_metrics_for_the_household_without_a_key_when_configured(
    start_app: Start, fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    srv = await fake_nntp()
    extra: dict[str, Any] = {"metrics": {"lan_without_key": True}}
    client = await start_app(settings_for(tmp_path, srv, **extra))
    assert (await client.get("/metrics")).status == 200  # 127.0.0.1 is the household's
    off = await start_app(settings_for(tmp_path / "off", srv, metrics={"enabled": False}))
    assert (await off.get("/metrics", headers=HEADERS)).status == 404


async def test_metrics_of_hls_sessions(
    start_app: Start, fake_nntp: FakeNntpFactory, tmp_path: Path, release_clips: ReleaseClips
) -> None:
    film = release_clips.path("h264-ac3-2srt.mkv")
    nzb, arts = await asyncio.to_thread(post_of, film.read_bytes(), film.name)
    client = await start_app(settings_for(tmp_path, await fake_nntp(articles=arts)))
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    resp = await client.get(
        f"{API}/movies/{job_id}/stream", params={"capabilities": CHROMIUM_JSON}, headers=HEADERS
    )
    stream = await resp.json()
    assert stream["kind"] == "hls", stream
    assert (await client.get(stream["url"].replace("index.m3u8", "0.m4s"))).status == 200
    # A segment past the film's end is a 404, not a failure of ffmpeg.
    assert (await client.get(stream["url"].replace("index.m3u8", "9999.m4s"))).status == 404

    seen = samples(await (await client.get("/metrics", headers=HEADERS)).text())
    assert seen[("matinee_hls_sessions", ())] == 1
    assert seen[("matinee_hls_segment_seconds_count", ())] == 1
    assert seen[("matinee_playback_failures_total", ())] == 0

    # ffmpeg's speed, told once for its run (at its first pause or its end): a copy of the
    # video with the sound converted runs far faster than the film plays.
    copy = (("kind", "copy"),)
    count, total = ("matinee_hls_speed_count", copy), ("matinee_hls_speed_sum", copy)

    async def told() -> bool:
        nonlocal seen
        seen = samples(await (await client.get("/metrics", headers=HEADERS)).text())
        return seen.get(count, 0) > 0

    await wait_for(told, within=30)
    assert seen[count] == 1 and seen[total] / seen[count] > 2
