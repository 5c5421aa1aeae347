"""Playing release-shaped films in a real browser while they download: the app with a Usenet
server throttled to a few times the film's bit rate, a job per film, a logged-in player page,
and the checks that say a film *plays*: time moves, frames are decoded, sound is decoded.

Used by the Chromium (Playwright) and Firefox (Marionette) playback tests; the JavaScript
below is plain DOM, the same in both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config.load import parse_config
from server.http.sessions import SESSION_COOKIE
from server.keys import SESSIONS
from tests.support.app import API, HEADERS, usenet_of, wait_for
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.media import ReleaseClips
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb, iter_articles

#: Once the job is playable (the first and last MiB are in), the news server sends this many
#: times the film's bit rate: the job is still downloading while the player starts, plays
#: and seeks. Before, it sends fast (``FAST_LINE``): a test waits for the ends, not a user.
LINE_TIMES_FILM = 1.5
FAST_LINE = 4_000_000
PART = 64 * 1024
CLIP_SECONDS = 30.0


@pytest.fixture(scope="session")
def playback_clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseClips]:
    """The release-shaped clips at 640x360, 30 s and about 2 Mbit/s (6-10 MB): large enough
    that most of each is still to come when its ends make it playable. Made once per run,
    two at a time, outside the event loop."""
    clips = ReleaseClips(
        tmp_path_factory.mktemp("playback-clips"),
        seconds=CLIP_SECONDS,
        size="640x360",
        video_bitrate="2M",
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(clips.make, PLAYED))
    yield clips


#: The rows of issue 9's table, and the MP4 with HEVC.
PLAYED = (
    "h264-aac.mkv",
    "h264-ac3-2srt.mkv",
    "h264-dts.mkv",
    "hevc10-eac3-ass.mkv",
    "xvid-mp3.avi",
    "hevc-aac.mp4",
)


@dataclass
class Playing:
    """One film's job on a running Matinee, and what a browser needs to open its player."""

    base: str  # http://127.0.0.1:PORT/
    job_id: str
    cookie: str  # the login session
    film: Path
    seconds: float
    http: aiohttp.ClientSession
    nntp: FakeNntpServer
    server: TestServer

    @property
    def player_url(self) -> str:
        return f"{self.base}play/{self.job_id}"

    async def job(self) -> dict[str, Any]:
        async with self.http.get(f"{self.base}{API[1:]}/jobs/{self.job_id}") as resp:
            return dict(await resp.json())


StartPlaying = Callable[..., Awaitable[Playing]]


@pytest.fixture
async def start_playing(fake_nntp: FakeNntpFactory, tmp_path: Path) -> AsyncIterator[StartPlaying]:
    """``await start_playing(film, seconds, extra_files=...)``: Matinee with a throttled news
    server holding the film (and any extra files of the release, e.g. an .srt), the job
    submitted and playable (still downloading), a login session for the browser."""
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        film: Path,
        seconds: float,
        *,
        extra_files: dict[str, bytes] | None = None,
        times: float = LINE_TIMES_FILM,
        settings: dict[str, Any] | None = None,
    ) -> Playing:
        articles, entries, size = await asyncio.to_thread(_post, film, extra_files or {})
        rate = size / seconds * times
        nntp = await fake_nntp(articles=articles, bytes_per_second=FAST_LINE)
        data_dir = tmp_path / f"playing{len(servers)}"
        raw: dict[str, Any] = {
            "server": {"data_dir": str(data_dir)},
            "auth": {"api_keys": [HEADERS["X-Api-Key"]]},
            "usenet": usenet_of(nntp, timeout=10),
            **(settings or {}),
        }
        app = create_app(parse_config(raw, base_dir=data_dir, env={}))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        http = aiohttp.ClientSession(headers=HEADERS)
        sessions.append(http)
        base = str(server.make_url("/"))
        job_id = await _submit(http, base, build_nzb(entries), f"{film.stem}.nzb")
        session = await app[SESSIONS].create()
        playing = Playing(base, job_id, session.cookie, film, seconds, http, nntp, server)
        await _until_playable(playing)
        nntp.bytes_per_second = rate
        return playing

    yield start
    for http in sessions:
        await http.close()
    for server in reversed(servers):
        await server.close()


def _post(film: Path, extra_files: dict[str, bytes]) -> tuple[list[Article], list[NzbEntry], int]:
    """The film's articles (and those of the release's other files) and their NZB entries."""
    articles = list(iter_articles(film, part_size=PART))
    entries = [NzbEntry.from_articles(articles)]
    for name, data in extra_files.items():
        extra = articles_for_bytes(data, name, part_size=PART)
        articles += extra
        entries.append(NzbEntry.from_articles(extra))
    return articles, entries, film.stat().st_size


async def _submit(http: aiohttp.ClientSession, base: str, nzb: bytes, name: str) -> str:
    form = aiohttp.FormData()
    form.add_field("nzb", nzb, filename=name, content_type="application/x-nzb")
    async with http.post(f"{base}{API[1:]}/jobs", data=form) as resp:
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["job_id"])


async def _until_playable(playing: Playing) -> None:
    async def playable() -> bool:
        job = await playing.job()
        assert job["status"] != "error", job["error_message"]
        return bool(job["playable"])

    await wait_for(playable, within=30, every=0.05)


def cookie_for(playing: Playing) -> dict[str, Any]:
    return {"name": SESSION_COOKIE, "value": playing.cookie, "url": playing.base}


# What a test asks the page: the player's state and what it decoded. Works in any browser;
# Chromium-only counters are null elsewhere.
PLAYER_STATE = """(() => {
  const v = document.querySelector('video#player');
  if (!v) return null;
  const quality = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  const tracks = [];
  for (let i = 0; i < v.textTracks.length; i++) {
    const t = v.textTracks[i];
    tracks.push({kind: t.kind, label: t.label, language: t.language, mode: t.mode,
                 cues: t.cues ? t.cues.length : null});
  }
  const box = document.getElementById('player-error');
  return {currentTime: v.currentTime, duration: v.duration, paused: v.paused,
          seeking: v.seeking, readyState: v.readyState,
          error: v.error && (v.error.code + ' ' + v.error.message),
          frames: quality ? quality.totalVideoFrames : null,
          audioBytes: v.webkitAudioDecodedByteCount === undefined ? null
                      : v.webkitAudioDecodedByteCount,
          heard: window.__heard === undefined ? null : window.__heard,
          playerError: box && !box.hidden ? box.textContent : null,
          plan: (document.getElementById('plan') || {}).textContent || null,
          tracks};
})()"""


class Evaluates(Protocol):
    """A page of a browser a test drives (Playwright's Page, tests.support.firefox)."""

    async def evaluate(self, expression: str) -> Any: ...


async def player_state(page: Evaluates) -> dict[str, Any]:
    """PLAYER_STATE, failing at once on an error of the video or the player."""
    found = await page.evaluate(PLAYER_STATE)
    assert found is not None, "no video#player on the page"
    assert found["error"] is None, f"the video failed: {found}"
    assert found["playerError"] is None, f"the player says: {found['playerError']}"
    return dict(found)


async def until_player_state(
    page: Evaluates, cond: Callable[[dict[str, Any]], bool], what: str, within: float
) -> dict[str, Any]:
    """The player's state once ``cond`` holds for it; says ``what`` it is not after ``within``."""
    deadline = time.monotonic() + within
    while True:
        found = await player_state(page)
        if cond(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within} s, still not {what}: {json.dumps(found)}")
        await asyncio.sleep(0.1)


# An AnalyserNode on the video's sound: window.__heard becomes the loudest level seen in the
# band of the clips' test tone (440 Hz), 0..255. Hearing it proves sound was decoded in any
# browser (the media element's output goes through the graph, so it still reaches the
# speakers).
LISTEN = """(() => {
  const v = document.querySelector('video#player');
  const Context = window.AudioContext || window.webkitAudioContext;
  const context = new Context();
  const source = context.createMediaElementSource(v);
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  analyser.connect(context.destination);
  const bins = new Uint8Array(analyser.frequencyBinCount);
  const bin = Math.round(440 / (context.sampleRate / analyser.fftSize));
  window.__heard = 0;
  setInterval(() => {
    if (context.state === 'suspended') context.resume();
    analyser.getByteFrequencyData(bins);
    const level = Math.max(bins[bin - 1], bins[bin], bins[bin + 1]);
    if (level > window.__heard) window.__heard = level;
  }, 50);
  return true;
})()"""
