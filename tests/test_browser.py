"""The web UI in a real browser: Debian's headless Chromium driven by Playwright.

Against the whole app on a loopback port, with the stand-in TMDB, a newznab indexer and a
Usenet server throttled below the film's bit rate, so the download stays behind playback and
everything a person does happens while it is still running:

* the flow: log in, search as you type, open the movie, press Watch, watch the progress move,
  press Play as soon as it lights up (without a reload), play past 3 s, seek to 80 % and play
  on from there, and after a reload resume at the position the player saved;
* every page renders without console errors (and with the demo banner when asked);
* the same flow's key steps under ``[server] base_path = "/movies/"``, where no request may
  leave the base path.

Screenshots of every page go to test-output/screenshots/browser-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Dialog, Page, Request, Response, expect

from server.app import create_app
from server.config.load import parse_config
from server.http.passwords import hash_password
from tests.support.app import usenet_of
from tests.support.browser import assert_no_console_errors, shot
from tests.support.fake_newznab import FakeNewznab, FakeNewznabFactory, FakeRelease
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.fake_tmdb import (
    FIGHT_CLUB,
    NOSFERATU,
    THE_MATRIX,
    TOKEN,
    UNRELEASED,
    FakeTmdb,
    FakeTmdbFactory,
    movie_by_id,
)
from tests.support.media import make_movie
from tests.support.world import DATE, GB, MATRIX_RELEASES
from tests.support.yenc import NzbEntry, build_nzb, iter_articles

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
API_KEY = "browser-test-api-key-0123456789"
API_PREFIX = "api/movies-on-demand"
BEST = MATRIX_RELEASES[0].title  # what Watch (auto) picks for The Matrix
FIGHT_CLUB_RELEASE = FakeRelease(
    "Fight.Club.1999.1080p.BluRay.x264-GROUP", 8 * GB, (2000, 2040), DATE, "0137523", 50
)
PART = 128 * 1024
#: The Usenet server sends at this fraction of the film's bit rate: slower than playback.
SLOWER_THAN_PLAYBACK = 0.8
#: The player saves its position every 5 s.
SAVE_EVERY = 5.0


@dataclass(frozen=True)
class Film:
    path: Path
    seconds: float

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def byte_rate(self) -> float:
        return self.size / self.seconds


@pytest.fixture(scope="module")
def film_moov_at_end(tmp_path_factory: pytest.TempPathFactory) -> Film:
    """90 s, 640x360, H.264/AAC at about 1.5 Mbit/s, moov at the end as most releases.

    90 s rather than 60: after the seek to 80 % and the wait for a save, the position must
    stay clear of the player's "close to the end: start again" margin (5 s)."""
    folder = tmp_path_factory.mktemp("film")
    path = make_movie(folder / f"{BEST}.mp4", seconds=90, size="640x360", bitrate="1500k")
    return Film(path, 90.0)


@pytest.fixture(scope="module")
def film_faststart(tmp_path_factory: pytest.TempPathFactory) -> Film:
    """30 s, moov first (faststart)."""
    folder = tmp_path_factory.mktemp("film")
    path = make_movie(
        folder / f"{BEST}.mp4", seconds=30, size="640x360", bitrate="1500k", faststart=True
    )
    return Film(path, 30.0)


# --------------------------------------------------------------------------- the site


@dataclass
class Site:
    """Matinee on a loopback port with its stand-ins; ``base`` is the UI's root URL."""

    base: str
    base_path: str
    http: aiohttp.ClientSession  # the JSON API with the API key
    tmdb: FakeTmdb
    indexer: FakeNewznab
    nntp: FakeNntpServer
    film: Film

    def url(self, path: str = "") -> str:
        return f"{self.base}{path}"

    def href(self, path: str = "") -> str:
        """What a page's link holds: the base path plus ``path``."""
        return f"{self.base_path}{path}"

    async def api(self, path: str) -> Any:
        async with self.http.get(f"{self.base}{API_PREFIX}{path}") as resp:
            assert resp.status == 200, f"{path}: {resp.status} {await resp.text()}"
            return await resp.json()

    async def job(self, job_id: str) -> dict[str, Any]:
        return dict(await self.api(f"/jobs/{job_id}"))


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def sites(
    fake_tmdb: FakeTmdbFactory,
    fake_newznab: FakeNewznabFactory,
    fake_nntp: FakeNntpFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[SiteFactory]:
    """``await sites(film, base_path=..., rate=..., demo=...)``: a running Matinee.

    Ask for this fixture before ``page`` in a test's arguments: the browser then closes
    before the app, so no stream of the page holds the app's shutdown up.
    """
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        film: Film,
        *,
        base_path: str = "/",
        rate: float | None = None,
        demo: bool = False,
        tmdb_page_size: int = 20,
    ) -> Site:
        tmdb = await fake_tmdb(token=TOKEN, page_size=tmdb_page_size)
        indexer = await fake_newznab(
            name="geek", apikey="g" * 32, releases=[*MATRIX_RELEASES, FIGHT_CLUB_RELEASE]
        )
        articles = list(iter_articles(film.path, part_size=PART))
        indexer.add_nzb(BEST, build_nzb([NzbEntry.from_articles(articles)]))
        # Fight Club's only release is gone from the server: its job ends in an error.
        gone = list(iter_articles(film.path, name="Fight.Club.mp4", part_size=PART))
        indexer.add_nzb(FIGHT_CLUB_RELEASE.title, build_nzb([NzbEntry.from_articles(gone)]))
        nntp = await fake_nntp(articles=articles, bytes_per_second=rate)
        data_dir = tmp_path / f"site{len(servers)}"
        raw: dict[str, Any] = {
            "server": {"base_path": base_path, "data_dir": str(data_dir)},
            "auth": {"password_hash": hash_password(PASSWORD), "api_keys": [API_KEY]},
            "tmdb": {"token": TOKEN, "base_url": tmdb.url, "image_base_url": tmdb.image_url},
            "indexers": [{"name": "geek", "url": indexer.url, "api_key": "g" * 32}],
            "usenet": usenet_of(nntp, timeout=10),
        }
        settings = parse_config(raw, base_dir=data_dir, env={})
        if demo:
            monkeypatch.setenv("MATINEE_DEMO", "1")
        else:
            monkeypatch.delenv("MATINEE_DEMO", raising=False)
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        http = aiohttp.ClientSession(headers={"X-Api-Key": API_KEY})
        sessions.append(http)
        base = str(server.make_url(settings.server.base_path))
        return Site(base, settings.server.base_path, http, tmdb, indexer, nntp, film)

    yield start
    for http in sessions:
        await http.close()
    for server in reversed(servers):
        await server.close()


# --------------------------------------------------------------------------- helpers

VIDEO_STATE = """() => {
  const v = document.querySelector('video#player');
  if (!v) return null;
  const buffered = [];
  for (let i = 0; i < v.buffered.length; i++) {
    buffered.push([v.buffered.start(i), v.buffered.end(i)]);
  }
  return {currentTime: v.currentTime, duration: v.duration, paused: v.paused, ended: v.ended,
          readyState: v.readyState, networkState: v.networkState, seeking: v.seeking,
          error: v.error && (v.error.code + ' ' + v.error.message), src: v.currentSrc, buffered};
}"""


async def video(page: Page) -> dict[str, Any]:
    state = await page.evaluate(VIDEO_STATE)
    assert state is not None, "no video#player on the page"
    assert state["error"] is None, f"the video failed: {state}"
    return dict(state)


async def until_video(
    page: Page, cond: Callable[[dict[str, Any]], bool], what: str, t: float = 30
) -> dict[str, Any]:
    """Polls the player until ``cond`` holds; on timeout says what the player was doing."""
    deadline = time.monotonic() + t
    while True:
        state = await video(page)
        if cond(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"after {t} s, still not {what}: {json.dumps(state)}")
        await asyncio.sleep(0.1)


async def accept(dialog: Dialog) -> None:
    """Says yes to "Cancel this download?" and the like."""
    await dialog.accept()


async def log_in(page: Page, site: Site, name: str) -> None:
    await page.goto(site.url())
    await expect(page.locator("form#login-form")).to_be_visible()
    assert urlsplit(page.url).path == site.href("login")
    await shot(page, f"{name}-login")
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("form#login-form button[type=submit]")
    assert urlsplit(page.url).path == site.href(), page.url


async def search_and_open(page: Page, site: Site, name: str, query: str, movie_id: int) -> None:
    """Types into #search-input (no Enter), waits for the result, opens the movie."""
    await page.goto(site.url("search"))
    box = page.locator("input#search-input")
    await expect(box).to_be_visible()
    await page.evaluate("() => { window.__sameDocument = true; }")
    await box.press_sequentially(query, delay=60)
    result = page.locator(f'ul#results li a[href="{site.href(f"movie/{movie_id}")}"]')
    await expect(result).to_be_visible()
    assert await page.evaluate("() => window.__sameDocument === true"), "search reloaded"
    await shot(page, f"{name}-search")
    async with page.expect_navigation():
        await result.first.click()
    assert urlsplit(page.url).path == site.href(f"movie/{movie_id}")
    title = movie_by_id(movie_id).title
    await expect(page.locator("h1#title")).to_have_text(re.compile(re.escape(title)))


async def watch(page: Page, site: Site, name: str) -> str:
    """Presses Watch on the movie page; returns the job id of the job page it lands on."""
    await expect(page.locator("table#releases tr.release[data-release-id]").first).to_be_visible()
    await shot(page, f"{name}-movie")
    await page.click("button#watch")
    await page.wait_for_url(re.compile(re.escape(site.url("job/")) + r"job_[^/?#]+$"))
    return urlsplit(page.url).path.rsplit("/", 1)[1]


async def progress_moves_then_play_lights_up(
    page: Page, site: Site, name: str, job_id: str
) -> list[float]:
    """On the job page: #progress rises while Play now is disabled, then Play now lights up
    without a reload while the job is still downloading. Returns the progress values seen."""
    play = page.locator("a#play-now")
    await expect(page.locator("#stage")).to_be_visible()
    await expect(play).to_have_attribute("aria-disabled", "true")
    await expect(play).to_have_class(re.compile(r"\bdisabled\b"))
    await page.evaluate("() => { window.__sameDocument = true; }")
    await shot(page, f"{name}-job-downloading")
    seen: list[float] = []
    async with asyncio.timeout(45):
        while await play.get_attribute("aria-disabled") == "true":
            value = float(await page.locator("progress#progress").evaluate("p => p.value"))
            if not seen or value != seen[-1]:
                seen.append(value)
            await asyncio.sleep(0.1)
    job = await site.job(job_id)
    assert job["playable"] and job["status"] == "downloading", job
    assert await page.evaluate("() => window.__sameDocument === true"), "the job page reloaded"
    await expect(play).not_to_have_class(re.compile(r"\bdisabled\b"))
    assert await play.get_attribute("href") == site.href(f"play/{job_id}")
    value = float(await page.locator("progress#progress").evaluate("p => p.value"))
    seen.append(value)
    assert len(set(seen)) >= 2 and seen == sorted(seen), f"#progress did not move: {seen}"
    assert value < 100
    await shot(page, f"{name}-job-playable")
    return seen


# --------------------------------------------------------------------------- tests


async def test_watch_while_it_downloads(
    sites: SiteFactory, page: Page, film_moov_at_end: Film
) -> None:
    """The whole flow against a download slower than playback (moov at the end of the MP4)."""
    film = film_moov_at_end
    site = await sites(film, rate=film.byte_rate * SLOWER_THAN_PLAYBACK)
    page.on("dialog", accept)
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    await log_in(page, site, "browser")
    await expect(page.locator("#demo-banner, .demo-banner")).to_have_count(0)
    await search_and_open(page, site, "browser", "matrix", THE_MATRIX)
    job_id = await watch(page, site, "browser")
    timings["job page"] = time.monotonic() - t0
    seen = await progress_moves_then_play_lights_up(page, site, "browser", job_id)
    timings["play now lit"] = time.monotonic() - t0

    async with page.expect_navigation():
        await page.click("a#play-now")
    assert urlsplit(page.url).path == site.href(f"play/{job_id}")
    state = await until_video(page, lambda s: s["currentTime"] > 3, "past 3 s")
    timings["played 3 s"] = time.monotonic() - t0
    assert (await site.job(job_id))["status"] == "downloading"
    assert abs(state["duration"] - film.seconds) < 1, state
    await shot(page, "browser-player")

    # Seek to 80 %: far beyond what has been downloaded; playback goes on from there.
    target = 0.8 * state["duration"]
    seek_started = time.monotonic()
    await page.evaluate(
        f"() => {{ document.querySelector('video#player').currentTime = {target}; }}"
    )
    # What is not on disk yet shows the buffering sign while the seek waits for it.
    await expect(page.locator("#buffering")).to_be_visible()
    await shot(page, "browser-player-buffering")
    await until_video(page, lambda s: not s["seeking"] and s["currentTime"] > target, "seeked")
    timings["seek took"] = time.monotonic() - seek_started
    state = await until_video(
        page, lambda s: s["currentTime"] > target + 1 and not s["seeking"], "playing after the seek"
    )
    assert state["currentTime"] < target + 6, f"it did not play on from the seek: {state}"
    timings["played after seek"] = time.monotonic() - t0
    await shot(page, "browser-player-seeked")

    # The player saves its position every 5 s; then a reload resumes there.
    await asyncio.sleep(SAVE_EVERY + 1.5)
    saved = (await site.api(f"/jobs/{job_id}/position"))["position"]
    assert saved >= target, f"saved {saved}, seeked to {target}"
    await page.reload()
    state = await until_video(page, lambda s: s["currentTime"] > 0, "resumed", t=20)
    assert saved - 1 <= state["currentTime"] <= saved + SAVE_EVERY + 2, (saved, state)
    start = state["currentTime"]
    await until_video(page, lambda s: s["currentTime"] > start + 1, "playing after the reload")
    timings["resumed"] = time.monotonic() - t0
    await shot(page, "browser-player-resumed")

    # Home: the film is in "Continue watching", and its download's progress moves live.
    await page.goto(site.url())
    await expect(
        page.locator(f'section#continue a[href="{site.href(f"play/{job_id}")}"]')
    ).to_be_visible()
    bar = page.locator(f'section#downloads .job[data-job-id="{job_id}"] progress')
    before = float(await bar.evaluate("p => p.value"))
    await expect(bar).not_to_have_js_property("value", before, timeout=10_000)
    await shot(page, "browser-home")

    # Downloads: the job is still running; Cancel stops it and deletes its files.
    job = await site.job(job_id)
    await page.goto(site.url("downloads"))
    row = page.locator(f'table#jobs tr.job[data-job-id="{job_id}"]')
    await expect(row).to_be_visible()
    await shot(page, "browser-downloads")
    await row.locator("button.cancel").click()
    async with asyncio.timeout(10):
        while (await site.job(job_id))["status"] != "deleted":
            await asyncio.sleep(0.1)
    print(
        f"\nflow timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
        f"progress seen on the job page: {seen}; saved position {saved:.1f} of "
        f"{film.seconds:.0f} s; job at the end: {job['status']} {job['progress']} %"
    )
    assert_no_console_errors(page)


async def test_every_page_renders_without_console_errors(
    sites: SiteFactory, page: Page, film_faststart: Film
) -> None:
    """Each page of the contract, after a finished job and a failed one; demo banner on."""
    site = await sites(film_faststart, demo=True, tmdb_page_size=2)
    page.on("dialog", accept)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    await log_in(page, site, "pages")
    await expect(page.locator(".demo-banner").first).to_be_visible()

    # Two jobs through the API: The Matrix downloads at full speed, Fight Club fails.
    async with site.http.post(f"{site.url(API_PREFIX)}/movies/{THE_MATRIX}/fetch", json={}) as r:
        matrix_job = (await r.json())["job_id"]
    async with site.http.post(f"{site.url(API_PREFIX)}/movies/{FIGHT_CLUB}/fetch", json={}) as r:
        fight_job = (await r.json())["job_id"]
    async with asyncio.timeout(30):
        while (await site.job(matrix_job))["status"] != "ready":
            await asyncio.sleep(0.1)
        while (await site.job(fight_job))["status"] != "error":
            await asyncio.sleep(0.1)

    # Home: popular and top rated posters (through Matinee's image proxy), downloads, continue.
    await page.goto(site.url())
    for row in ("popular", "top"):
        posters = page.locator(f"section#{row} a.poster")
        await expect(posters.first).to_be_visible()
        for i in range(await posters.count()):
            href = await posters.nth(i).get_attribute("href") or ""
            assert re.fullmatch(re.escape(site.href("movie/")) + r"\d+", href), href
            movie = movie_by_id(int(href.rsplit("/", 1)[1]))
            img = posters.nth(i).locator("img")
            if await img.count():
                assert await img.get_attribute("alt") == movie.title
                src = await img.get_attribute("src") or ""
                assert src.startswith(site.href("img/")), src
    await expect(page.locator("section#continue")).to_have_count(1)
    await expect(page.locator("section#downloads")).to_have_count(1)
    await shot(page, "pages-home")

    # Search: results from the address, then paging (two results a page).
    await page.goto(site.url("search?q=the"))
    await expect(page.locator("ul#results li a").first).to_be_visible()
    await shot(page, "pages-search")
    async with page.expect_navigation():
        await page.click("a#next-page")
    await expect(page.locator("ul#results li a").first).to_be_visible()
    await expect(page.locator("a#prev-page")).to_be_visible()
    await shot(page, "pages-search-page-2")

    # Movie pages: full details, no poster at all, and a film TMDB knows little about.
    for movie_id in (THE_MATRIX, NOSFERATU, UNRELEASED):
        await page.goto(site.url(f"movie/{movie_id}"))
        await expect(page.locator("h1#title")).to_have_text(
            re.compile(re.escape(movie_by_id(movie_id).title))
        )
        await expect(page.locator("button#watch")).to_be_visible()
        await expect(page.locator("section#similar")).to_have_count(1)
        await shot(page, f"pages-movie-{movie_id}")
    await page.goto(site.url(f"movie/{THE_MATRIX}"))
    await expect(page.locator("ul#cast li").first).to_be_visible()
    await expect(page.locator("div#job-status")).to_be_visible()
    await expect(page.locator("table#releases tr.release button.pick").first).to_be_visible()

    # Job pages: a ready job with Play now lit, and a failed one offering the next release.
    await page.goto(site.url(f"job/{matrix_job}"))
    await expect(page.locator("a#play-now")).not_to_have_attribute("aria-disabled", "true")
    await shot(page, "pages-job-ready")
    await page.goto(site.url(f"job/{fight_job}"))
    await expect(page.locator("div#error")).to_be_visible()
    await expect(page.locator("button#next-release")).to_be_visible()
    await shot(page, "pages-job-error")

    # The player on a finished file.
    # The player on a finished file, and its keyboard: → skips 10 s, space pauses and plays.
    await page.goto(site.url(f"play/{matrix_job}"))
    state = await until_video(page, lambda s: s["currentTime"] > 1, "playing")
    await shot(page, "pages-player")
    await page.keyboard.press("ArrowRight")
    state = await until_video(page, lambda s: s["currentTime"] > state["currentTime"] + 9, "+10 s")
    await page.keyboard.press("ArrowLeft")
    await until_video(page, lambda s: s["currentTime"] < state["currentTime"] - 5, "-10 s")
    await page.keyboard.press(" ")
    await until_video(page, lambda s: s["paused"], "paused by space")
    await page.keyboard.press(" ")
    await until_video(page, lambda s: not s["paused"], "playing again after space")
    await page.keyboard.press("f")
    assert await page.evaluate("() => document.fullscreenElement?.id") == "player-box"

    # Downloads (cancel the failed job) and Status.
    await page.goto(site.url("downloads"))
    rows = page.locator("table#jobs tr.job[data-job-id]")
    await expect(rows).to_have_count(2)
    await shot(page, "pages-downloads")
    # Finished and failed jobs offer Delete (active ones Cancel: see the flow test).
    await page.locator(f'tr.job[data-job-id="{fight_job}"] button.delete').click()
    async with asyncio.timeout(10):
        while (await site.job(fight_job))["status"] != "deleted":
            await asyncio.sleep(0.1)
    await page.goto(site.url("status"))
    await expect(page.locator("main")).to_contain_text("TMDB")
    await expect(page.locator("main")).to_contain_text("geek")
    await shot(page, "pages-status", full_page=True)

    # The favicon Chromium asks for, and a poster through the proxy.
    for path in ("favicon.ico", "img/w342" + (movie_by_id(THE_MATRIX).poster_path or "")):
        resp = await page.request.get(site.url(path))
        assert resp.ok, f"{path}: {resp.status}"
        assert resp.headers["content-type"].startswith("image/"), resp.headers

    assert not failed, f"failed responses: {failed}"
    assert_no_console_errors(page)


async def test_under_a_base_path(sites: SiteFactory, page: Page, film_faststart: Film) -> None:
    """Log in, search, Watch, Play while downloading and play 3 s under /movies/; no request
    leaves the base path (faststart MP4 this time)."""
    film = film_faststart
    # Faster than playback here (the flow test shows slower); still downloading when it plays.
    site = await sites(film, base_path="/movies/", rate=film.byte_rate * 1.5)
    assert site.base.endswith("/movies/")
    outside: list[str] = []
    failed: list[str] = []

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and not parts.path.startswith("/movies/"):
            outside.append(request.url)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("request", on_request)
    page.on("response", on_response)

    await log_in(page, site, "base-path")
    await search_and_open(page, site, "base-path", "matrix", THE_MATRIX)
    job_id = await watch(page, site, "base-path")
    await progress_moves_then_play_lights_up(page, site, "base-path", job_id)
    async with page.expect_navigation():
        await page.click("a#play-now")
    await until_video(page, lambda s: s["currentTime"] > 3, "past 3 s")
    assert urlsplit((await video(page))["src"]).path.startswith("/movies/")
    await shot(page, "base-path-player")

    assert not outside, f"requests outside /movies/: {outside}"
    assert not failed, f"failed responses: {failed}"
    assert_no_console_errors(page)
