"""A mirrored film plays from R2 in Chromium: Matinee's player page gets a presigned link from
``/stream`` (``[r2] serve = "r2"``), the <video> element reads it with Range requests from the
S3 server (moto, through the counting proxy), and frames and sound are decoded. A film with AC3
sound whose local copy is gone plays too, with sound: through Matinee's HLS, made by ffmpeg
reading R2's copy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.config.settings import Settings
from server.http.passwords import hash_password
from server.keys import RETENTION
from tests.support.app import KEY, Client, settings_for, submit, until
from tests.support.browser import assert_no_console_errors, shot
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import ReleaseClips, make_movie
from tests.support.s3 import FaultProxy, Moto, r2_settings
from tests.support.yenc import NzbEntry, build_nzb, iter_articles

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
PLAYBACK = """() => {
  const v = document.querySelector('video#player');
  const q = v.getVideoPlaybackQuality();
  return {t: v.currentTime, src: v.currentSrc, frames: q.totalVideoFrames,
          audio: v.webkitAudioDecodedByteCount, error: v.error && v.error.message};
}"""


async def _login(page: Page, base: str) -> None:
    await page.goto(base + "login")
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("form#login-form button[type=submit]")


async def _play(page: Page, url: str) -> dict[str, Any]:
    """The player's state once it has played 3 s."""
    await page.goto(url)
    async with asyncio.timeout(30):
        while (now := dict(await page.evaluate(PLAYBACK)))["t"] < 3:
            assert now["error"] is None, now
            await asyncio.sleep(0.1)
    return now


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of H.264/AAC, moov at the end: the player must ask for the tail by Range."""
    return make_movie(tmp_path_factory.mktemp("film") / "Film.2021.mp4", seconds=12)


async def test_a_mirrored_film_plays_from_r2_in_chromium(
    film: Path,
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    moto_server: Moto,
    s3_proxy: FaultProxy,
    tmp_path: Path,
    page: Page,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    articles = list(iter_articles(film, part_size=256 * 1024))
    srv = await fake_nntp(articles=articles)
    settings = settings_for(
        tmp_path,
        srv,
        auth={"password_hash": hash_password(PASSWORD), "api_keys": [KEY]},
        r2=r2_settings(s3_proxy.url, bucket, serve="r2"),
    )
    client = await start_app(settings)
    job_id = await submit(client, build_nzb([NzbEntry.from_articles(articles)]))
    await until(client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "mirrored"))
    base = str(client.make_url("/"))

    await _login(page, base)
    before = len(s3_proxy.seen)
    now = await _play(page, base + f"play/{job_id}")
    await shot(page, "mirror-r2-player")
    assert now["src"].startswith(f"{s3_proxy.url}/{bucket}/movies/{job_id}/"), now
    assert now["frames"] > 25 and now["audio"] > 0, now  # frames and sound decoded
    reads = [s for s in s3_proxy.seen[before:] if s.method == "GET" and s.range]
    assert reads, "the player read no byte range from R2"
    assert all(s.status == 206 for s in reads)
    await expect(page.locator("video#player")).to_be_visible()
    assert_no_console_errors(page)


async def test_an_ac3_film_only_r2_has_plays_with_sound_in_chromium(
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    moto_server: Moto,
    s3_proxy: FaultProxy,
    release_clips: ReleaseClips,
    tmp_path: Path,
    page: Page,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    film = release_clips.path("h264-ac3-2srt.mkv")  # Chromium decodes no AC3 from the file
    articles = await asyncio.to_thread(lambda: list(iter_articles(film, part_size=256 * 1024)))
    srv = await fake_nntp(articles=articles)
    settings = settings_for(
        tmp_path,
        srv,
        auth={"password_hash": hash_password(PASSWORD), "api_keys": [KEY]},
        r2=r2_settings(s3_proxy.url, bucket),
        retention={"ready_hours": 24, "local_hours": 1},
    )
    client = await start_app(settings)
    job_id = await submit(client, build_nzb([NzbEntry.from_articles(articles)]))
    await until(client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "mirrored"))
    assert client.app is not None
    await client.app[RETENTION].run_due(time.time() + 3601)  # local_hours: the local copy goes
    await until(client, job_id, lambda j: j["local"] is False)
    assert not (tmp_path / "data" / "downloads" / job_id).exists()
    base = str(client.make_url("/"))

    await _login(page, base)
    before = len(s3_proxy.seen)
    now = await _play(page, base + f"play/{job_id}")
    await shot(page, "mirror-r2-ac3-player")
    assert now["src"].startswith("blob:"), now  # hls.js: Matinee's HLS, not the file
    assert now["frames"] > 25 and now["audio"] > 0, now  # frames and sound decoded
    reads = [
        s
        for s in s3_proxy.seen[before:]
        if s.method == "GET" and s.path.startswith(f"/{bucket}/movies/{job_id}/")
    ]
    assert reads and all(s.status in (200, 206) for s in reads), reads  # read from R2
    assert_no_console_errors(page)
