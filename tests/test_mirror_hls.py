"""A film only R2 still has (``[retention] local_hours`` deleted the local copy) plays as it did
from disk, against moto's S3 server behind the counting proxy: ``/stream`` probes the object
and reads its keyframe index there, a browser that cannot play AC3 gets Matinee's HLS (video
copied, sound to AAC) made by ffmpeg reading a presigned URL, one that can gets the presigned
file itself, and a copy gone from R2 is a clear error that gives away no credential."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from server.config.settings import Settings
from server.http.film import without_urls
from server.keys import PLAYBACK, RETENTION
from tests.support.app import API, HEADERS, Client, job, post_of, settings_for, submit, until
from tests.support.capabilities import CHROMIUM_JSON
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import ReleaseClips, codecs_of
from tests.support.s3 import SECRET_KEY, FaultProxy, Moto, r2_settings

StartApp = Callable[[Settings], Awaitable[Client]]
#: A browser that plays AC3 5.1 in a Matroska file as it is (Chromium's report, plus AC3).
AC3_PLAYER = json.dumps(
    {
        **json.loads(CHROMIUM_JSON),
        "file_codecs": [*json.loads(CHROMIUM_JSON)["file_codecs"], "ac3"],
        "max_channels": 6,
    }
)


async def _stream(client: Client, job_id: str, capabilities: str) -> aiohttp.ClientResponse:
    return await client.get(
        f"{API}/movies/{job_id}/stream", params={"capabilities": capabilities}, headers=HEADERS
    )


@pytest.mark.slow
async def test_a_film_only_r2_has_plays_through_hls(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
    release_clips: ReleaseClips,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    for ours in ("server", "transcode", "nntp"):
        caplog.set_level(logging.DEBUG, logger=ours)
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    film = release_clips.path("h264-ac3-2srt.mkv")  # H.264 + AC3 5.1, two SRT tracks
    nzb, arts = await asyncio.to_thread(post_of, film.read_bytes(), film.name)
    settings = settings_for(
        tmp_path,
        await fake_nntp(articles=arts),
        r2=r2_settings(s3_proxy.url, bucket),  # serve "auto": this test is on the LAN
        retention={"ready_hours": 24, "local_hours": 1},
    )
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "mirrored"))
    assert client.app is not None
    await client.app[RETENTION].run_due(time.time() + 3601)  # local_hours have passed
    dropped = await job(client, job_id)
    assert dropped["local"] is False and dropped["status"] == "ready"
    assert not (tmp_path / "data" / "downloads" / job_id).exists()
    (key,) = await asyncio.to_thread(moto_server.keys, bucket)
    s3 = moto_server.client()

    # The copy in R2 is gone too: a clear error, no link, no secret.
    data = await asyncio.to_thread(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
    resp = await _stream(client, job_id, CHROMIUM_JSON)
    text = await resp.text()
    assert resp.status == 502, text
    assert json.loads(text) == {
        "error": f"R2 does not have the movie ({key}) and its local copy was deleted:"
        " it cannot play any more",
        "code": "STORAGE_ERROR",
    }
    await asyncio.to_thread(
        s3.put_object, Bucket=bucket, Key=key, Body=data, ContentType="video/x-matroska"
    )

    # Chromium plays no AC3: HLS from Matinee, made from R2's copy.
    before = len(s3_proxy.seen)
    resp = await _stream(client, job_id, CHROMIUM_JSON)
    stream = await resp.json()
    assert resp.status == 200, stream
    assert (stream["kind"], stream["plan"]) == ("hls", "remux_audio"), stream
    assert stream["url"].startswith(f"/hls/{job_id}/")
    assert stream["reasons"][0].startswith("read from R2: the local copy was deleted")
    assert stream["reasons"][-1] == "converting sound: AC3 → AAC"
    assert stream["size"] == len(data) and stream["duration"] > 0
    token = urlsplit(stream["url"]).query
    folder = stream["url"].rsplit("/", 1)[0]
    base = str(client.make_url("/")).rstrip("/")
    async with aiohttp.ClientSession() as bare:  # a player: the token is its credential
        async with bare.get(base + stream["url"]) as got:
            assert got.status == 200, await got.text()
            playlist = await got.text()
        assert f"0.m4s?{token}" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
        async with bare.get(f"{base}{folder}/init.mp4?{token}") as got:
            assert got.status == 200
            init = await got.read()
        async with bare.get(f"{base}{folder}/0.m4s?{token}") as got:
            assert got.status == 200
            first = await got.read()
        by_id = {t["id"]: t["url"] for t in stream["subtitles"]}
        async with bare.get(base + by_id["s2"]) as got:
            vtt = await got.text()
    assert await asyncio.to_thread(codecs_of, init + first, tmp_path / "segment.mp4") == [
        "h264",
        "aac",
    ]
    assert vtt.startswith("WEBVTT") and "Hello from the first subtitle" in vtt
    # Every byte came from the S3 server: the index by the mirror's client (ranged GETs),
    # ffprobe's and ffmpeg's reads through presigned URLs.
    reads = [
        s for s in s3_proxy.seen[before:] if s.method == "GET" and s.path == f"/{bucket}/{key}"
    ]
    assert all(s.status in (200, 206) for s in reads), reads
    assert any(s.range and "X-Amz-Signature" not in s.query for s in reads), reads
    signed = [s for s in reads if "X-Amz-Signature" in s.query]
    # ffmpeg's link lives as long as a session may (a day), not a browser's presign_seconds.
    assert signed and all(int(s.query["X-Amz-Expires"]) > 20 * 3600 for s in signed), signed

    # A browser that plays the file as it is gets it from R2, presigned.
    resp = await _stream(client, job_id, AC3_PLAYER)
    direct = await resp.json()
    assert (direct["kind"], direct["plan"]) == ("r2", "direct"), direct
    assert direct["url"].startswith(f"{s3_proxy.url}/{bucket}/{key}?")

    # ffmpeg and ffprobe failing on what R2 answers say so without the link they read.
    await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
    async with (
        aiohttp.ClientSession() as bare,
        bare.get(f"{base}/hls/{job_id}/a1t2/init.mp4?{token}") as got,  # a new ffmpeg
    ):
        failed = await got.text()
        assert got.status == 500, failed
    assert "the movie: Server returned" in failed, failed  # moto: 403 for a missing object
    assert "X-Amz" not in failed and s3_proxy.url not in failed
    await client.app[PLAYBACK].stop_job(job_id)  # forget the film: ffprobe reads it again
    resp = await _stream(client, job_id, CHROMIUM_JSON)
    unreadable = await resp.json()
    assert unreadable["plan"] == "direct" and "Server returned" in unreadable["reasons"][0]
    assert "X-Amz" not in unreadable["reasons"][0] and s3_proxy.url not in unreadable["reasons"][0]

    # Neither the presigned links nor the secret went into the log.
    assert "X-Amz-Signature" not in caplog.text and SECRET_KEY not in caplog.text


@pytest.mark.parametrize(
    "said",
    [
        "http://127.0.0.1:8080/media/job_1_a/The%20Film.mkv?token=1.abc: Server returned 404",
        "http://[::1]:8080/base/media/job_1_a/Film.mkv?token=1.abc&background=1: I/O error",
        "https://acct.r2.cloudflarestorage.com/bucket/movies/job_1_a/Film.mkv?response-content-"
        "disposition=inline%3B%20filename%2A%3DUTF-8%27%27Film.mkv&X-Amz-Algorithm=AWS4-HMAC-"
        "SHA256&X-Amz-Credential=key%2F20261206%2Fauto%2Fs3%2Faws4_request&X-Amz-Date=20261206T"
        "080050Z&X-Amz-Expires=86399&X-Amz-SignedHeaders=host&X-Amz-Signature=4277: Server "
        "returned 403 Forbidden (access denied)",
    ],
)
def test_ffmpeg_words_lose_the_url_they_read(said: str) -> None:
    words = without_urls(f"ffmpeg exited with status 1: {said}")
    assert words.startswith("ffmpeg exited with status 1: the movie: ")
    assert "token" not in words and "X-Amz" not in words and "://" not in words
