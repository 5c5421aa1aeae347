"""The playback routes with real ffmpeg over a real download: ``/stream`` answers, HLS under
``/hls/`` with the job's token (what hls.js and Safari fetch without headers), subtitles as
WebVTT from the film and from an .srt file of the release (also once the job is ready), the
household's preferences, ffmpeg stopped with its job and bounded by ``max_sessions``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from server.config.settings import Settings
from server.keys import PLAYBACK
from tests.support.app import API, HEADERS, Client, settings_for, submit, until, wait_for
from tests.support.capabilities import CHROMIUM_JSON
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import SRT_GERMAN, ReleaseClips, codecs_of
from tests.support.processes import children_named
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

DATA = Path(__file__).parent / "data" / "capabilities"
Start = Callable[[Settings], Awaitable[Client]]


def _post(film: Path, extra: dict[str, bytes]) -> tuple[bytes, list[Any]]:
    articles = articles_for_bytes(film.read_bytes(), film.name, part_size=64 * 1024)
    entries = [NzbEntry.from_articles(articles)]
    for extra_name, data in extra.items():
        more = articles_for_bytes(data, extra_name, part_size=64 * 1024)
        articles += more
        entries.append(NzbEntry.from_articles(more))
    return build_nzb(entries), articles


async def _ready_job(
    fake_nntp: FakeNntpFactory,
    start_app: Start,
    tmp_path: Path,
    film: Path,
    extra: dict[str, bytes] | None = None,
    **settings: Any,
) -> tuple[Client, str]:
    nzb, articles = await asyncio.to_thread(_post, film, extra or {})
    srv = await fake_nntp(articles=articles)
    client = await start_app(settings_for(tmp_path, srv, **settings))
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    return client, job_id


async def _stream(client: Client, job_id: str, **query: str) -> dict[str, Any]:
    resp = await client.get(
        f"{API}/movies/{job_id}/stream",
        params={"capabilities": CHROMIUM_JSON, **query},
        headers=HEADERS,
    )
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


async def test_hls_with_the_token_alone_and_subtitles(
    fake_nntp: FakeNntpFactory, start_app: Start, tmp_path: Path, release_clips: ReleaseClips
) -> None:
    film = release_clips.path("h264-ac3-2srt.mkv")
    client, job_id = await _ready_job(
        fake_nntp, start_app, tmp_path, film, {"Film.2019.ger.srt": SRT_GERMAN.encode("cp1252")}
    )
    stream = await _stream(client, job_id)
    assert (stream["kind"], stream["plan"]) == ("hls", "remux_audio")
    assert stream["reasons"][-1] == "converting sound: AC3 → AAC"
    assert [(t["id"], t["language"]) for t in stream["subtitles"]] == [
        ("s2", "eng"), ("s3", "ger"), ("x0", "ger"),
    ]  # fmt: skip
    url = stream["url"]
    token = urlsplit(url).query

    # A player without headers or cookies: the token is its credential.
    async with aiohttp.ClientSession() as bare:
        base = str(client.make_url("/")).rstrip("/")
        async with bare.get(base + url) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/vnd.apple.mpegurl"
            playlist = await resp.text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
        assert f'#EXT-X-MAP:URI="init.mp4?{token}"' in playlist
        assert f"0.m4s?{token}" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
        folder = url.rsplit("/", 1)[0]
        async with bare.get(f"{base}{folder}/init.mp4?{token}") as resp:
            init = await resp.read()
        async with bare.get(f"{base}{folder}/0.m4s?{token}") as resp:
            assert resp.status == 200
            first = await resp.read()
        assert await asyncio.to_thread(codecs_of, init + first, tmp_path / "segment.mp4") == [
            "h264",
            "aac",
        ]
        async with bare.get(f"{base}{folder}/0.m4s") as resp:
            assert resp.status == 401  # no token, no key, no session
        async with bare.get(f"{base}{folder}/0.m4s?token=1.x") as resp:
            assert resp.status == 401
        async with bare.get(f"{base}{folder}/999.m4s?{token}") as resp:
            assert resp.status == 404
        async with bare.get(f"{base}/hls/{job_id}/v0c.a0c/index.m3u8?{token}") as resp:
            assert resp.status == 404  # stream 0 is not audio
            assert "no audio stream 0" in (await resp.json())["error"]

        # Subtitles: WebVTT from the film's track and from the release's file (kept at ready).
        by_id = {t["id"]: t["url"] for t in stream["subtitles"]}
        async with bare.get(base + by_id["s2"]) as resp:
            assert resp.content_type == "text/vtt"
            vtt = await resp.text()
        assert vtt.startswith("WEBVTT") and "Hello from the first subtitle" in vtt
        async with bare.get(base + by_id["x0"]) as resp:
            vtt = await resp.text()
        assert "00:00:06.000 --> 00:00:08.000\nGröße &amp; Übermut" in vtt


async def test_sessions_end_with_their_job_and_are_bounded(
    fake_nntp: FakeNntpFactory, start_app: Start, tmp_path: Path, release_clips: ReleaseClips
) -> None:
    film = release_clips.path("h264-2audio.mkv")
    client, job_id = await _ready_job(
        fake_nntp, start_app, tmp_path, film, transcode={"max_sessions": 1}
    )
    playback = client.app[PLAYBACK]
    english = await _stream(client, job_id)
    german = await _stream(client, job_id, audio="2")
    assert english["url"] != german["url"]
    for stream in (english, german):
        resp = await client.get(stream["url"].replace("index.m3u8", "0.m4s"))
        assert resp.status == 200
    assert len(playback.sessions) == 1  # the second pushed the first out
    # Its segments are on disk (its ffmpeg may already have made the whole short film).
    assert list((tmp_path / "data" / "hls").iterdir())
    resp = await client.delete(f"{API}/jobs/{job_id}", headers=HEADERS)
    assert resp.status == 200
    assert len(playback.sessions) == 0
    await wait_for(lambda: not children_named("ffmpeg"), within=5)
    assert not list((tmp_path / "data" / "hls").iterdir())


async def test_the_household_language_picks_the_track(
    fake_nntp: FakeNntpFactory, start_app: Start, tmp_path: Path, release_clips: ReleaseClips
) -> None:
    film = release_clips.path("h264-2audio.mkv")  # AC3 eng (default), AAC ger
    client, job_id = await _ready_job(
        fake_nntp, start_app, tmp_path, film, playback={"audio_languages": ["en"]}
    )

    def selected(stream: dict[str, Any]) -> str:
        (track,) = [t for t in stream["audio_tracks"] if t["selected"]]
        return str(track["language"])

    assert selected(await _stream(client, job_id)) == "eng"
    resp = await client.put(
        f"{API}/preferences", json={"audio_language": "de", "subtitle_language": "off"},
        headers=HEADERS,
    )  # fmt: skip
    assert await resp.json() == {"audio_language": "de", "subtitle_language": "off"}
    stream = await _stream(client, job_id)
    assert selected(stream) == "ger"  # the household's choice before the configured order
    assert stream["preferences"] == {"audio_language": "de", "subtitle_language": "off"}
    assert (stream["plan"], stream["url"].split("/")[-2]) == ("remux", "v0c.a2c")
