"""A mirrored film plays from R2 in Chromium: Matinee's player page gets a presigned link from
``/stream`` (``[r2] serve = "r2"``), the <video> element reads it with Range requests from the
S3 server (moto, through the counting proxy), and frames and sound are decoded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.config.settings import Settings
from server.http.passwords import hash_password
from tests.support.app import KEY, Client, settings_for, submit, until
from tests.support.browser import assert_no_console_errors, shot
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.media import make_movie
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

    await page.goto(base + "login")
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("form#login-form button[type=submit]")
    before = len(s3_proxy.seen)
    await page.goto(base + f"play/{job_id}")

    async def state() -> dict[str, Any]:
        return dict(await page.evaluate(PLAYBACK))

    async with asyncio.timeout(30):
        while (now := await state())["t"] < 3:
            assert now["error"] is None, now
            await asyncio.sleep(0.1)
    await shot(page, "mirror-r2-player")
    assert now["src"].startswith(f"{s3_proxy.url}/{bucket}/movies/{job_id}/"), now
    assert now["frames"] > 25 and now["audio"] > 0, now  # frames and sound decoded
    reads = [s for s in s3_proxy.seen[before:] if s.method == "GET" and s.range]
    assert reads, "the player read no byte range from R2"
    assert all(s.status == 206 for s in reads)
    await expect(page.locator("video#player")).to_be_visible()
    assert_no_console_errors(page)
