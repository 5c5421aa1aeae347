"""Every row of issue 9's table plays in Debian's headless Chromium while it downloads: each
release-shaped film is posted to a news server that sends it at a few times its bit rate, the
player page opens as soon as the job is playable, and for each film

* the player reaches 3 s, having decoded frames (``getVideoPlaybackQuality``) and sound
  (``webkitAudioDecodedByteCount``) — the sound is what AC3, DTS and E-AC3 lacked;
* the subtitle tracks of the film (and an .srt file of the release) are offered as text
  tracks with their languages, and a shown track's cues arrive while the film downloads;
* the plan the server chose is the expected one and the player shows why;
* a seek to 80 % plays on within 10 s.

Also: a choice of sound track is remembered for the household, and a film whose bytes are
damaged gives the player an error in words instead of an endless spinner.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from playwright.async_api import BrowserContext, Page

from tests.support.app import wait_for
from tests.support.browser import shot
from tests.support.media import SRT_ENGLISH, ReleaseClips
from tests.support.playback import (
    PLAYER_STATE,
    Playing,
    StartPlaying,
    cookie_for,
    until_player_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEEK_WITHIN = 10.0


@dataclass(frozen=True)
class Row:
    clip: str
    plan: str  # what /stream must answer for Chromium
    why: str  # a words of the reason the player shows
    subtitles: tuple[str, ...]  # languages of the text tracks offered
    extra_srt: bool = False  # the release also carries Movie.fre.srt
    cue: tuple[float, str] | None = None  # a film time and the first track's text there


ROWS = (
    Row("h264-aac.mkv", "direct", "plays directly", ()),
    Row(
        "h264-ac3-2srt.mkv",
        "remux_audio",
        "AC3 → AAC",
        ("eng", "ger", "fre"),
        extra_srt=True,
        cue=(3.5, "A second line, <i>in italics</i>"),
    ),
    Row("h264-dts.mkv", "remux_audio", "DTS → AAC", ()),
    Row("hevc10-eac3-ass.mkv", "transcode", "HEVC 10-bit → H.264", ("eng",), cue=(4.5, "Second")),
    Row("xvid-mp3.avi", "transcode", "→ H.264", ()),
    Row("hevc-aac.mp4", "transcode", "HEVC → H.264", ()),
)


ACTIVE_CUES = """async (t) => {
  const v = document.querySelector('video#player');
  v.pause();
  v.currentTime = t;
  await new Promise((done) => v.addEventListener('seeked', done, {once: true}));
  await new Promise((done) => setTimeout(done, 300));  // cues update on the next time step
  return Array.from(v.textTracks[0].activeCues || []).map((c) => c.text);
}"""


async def cues_at(page: Page, seconds: float) -> list[str]:
    return list(await page.evaluate(ACTIVE_CUES, seconds))


async def open_player(context: BrowserContext, playing: Playing) -> Page:
    await context.add_cookies([cookie_for(playing)])  # type: ignore[list-item]
    page = await context.new_page()
    await page.goto(playing.player_url)
    return page


@pytest.mark.parametrize("row", ROWS, ids=[r.clip for r in ROWS])
async def test_release_plays_while_it_downloads(
    start_playing: StartPlaying,
    browser_context: BrowserContext,
    playback_clips: ReleaseClips,
    row: Row,
) -> None:
    film = playback_clips.path(row.clip)
    extra = {f"{film.stem}.fre.srt": SRT_ENGLISH.encode()} if row.extra_srt else None
    playing = await start_playing(film, playback_clips.seconds, extra_files=extra)
    page = await open_player(browser_context, playing)
    t0 = time.monotonic()

    played = await until_player_state(page, lambda s: s["currentTime"] >= 3, "past 3 s", 30)
    took = time.monotonic() - t0
    job = await playing.job()
    assert job["status"] == "downloading", (
        f"the download ended before 3 s played ({took:.1f} s): {job}"
    )
    assert played["frames"] > 0, played
    assert played["audioBytes"] > 0, f"no sound was decoded: {played}"
    assert abs(played["duration"] - playback_clips.seconds) < 1.5, played
    assert row.why in (played["plan"] or ""), played["plan"]
    await shot(page, f"playback-chromium-{row.clip}")

    # The text tracks, with their languages; a shown one gets its cues while downloading.
    assert [t["language"] for t in played["tracks"]] == list(row.subtitles), played["tracks"]
    assert all(t["kind"] == "subtitles" for t in played["tracks"])
    if row.subtitles:
        await page.evaluate(
            "(() => { const t = document.querySelector('video#player').textTracks[0];"
            " t.mode = 'showing'; })()"
        )
        await until_player_state(page, lambda s: (s["tracks"][0]["cues"] or 0) > 0, "with cues", 10)
    if row.cue is not None:
        # The cues are on the film's clock: none between the first two, the second at its time.
        assert await cues_at(page, 2.5) == []
        at, text = row.cue
        (shown,) = await cues_at(page, at)
        assert shown.startswith(text), shown
        await page.evaluate("document.querySelector('video#player').play()")

    # Seek to 80 %: beyond what is downloaded or made; it plays on within 10 s.
    target = 0.8 * played["duration"]
    sought = time.monotonic()
    await page.evaluate(f"document.querySelector('video#player').currentTime = {target}")
    after = await until_player_state(
        page,
        lambda s: not s["seeking"] and s["currentTime"] > target + 0.5,
        "playing after the seek to 80 %",
        SEEK_WITHIN,
    )
    print(
        f"\n{row.clip}: plan {row.plan}, 3 s played after {took:.1f} s, seek to "
        f"{target:.1f} s played on after {time.monotonic() - sought:.1f} s "
        f"({after['frames']} frames, {after['audioBytes']} audio bytes decoded)"
    )


async def test_a_missing_stretch_is_an_error_in_words(
    start_playing: StartPlaying, browser_context: BrowserContext, playback_clips: ReleaseClips
) -> None:
    """Articles of 70-95 % of the film are gone from every server: a seek there ends with
    the player saying why, not with an endless spinner."""
    film = playback_clips.path("h264-dts.mkv")
    playing = await start_playing(film, playback_clips.seconds)
    # Message-ids are "part{n}of{total}...": the film's parts in file order.
    parts = sorted(playing.nntp.articles, key=lambda i: int(i[4:].split("of", 1)[0]))
    gone = parts[int(len(parts) * 0.7) : int(len(parts) * 0.95)]
    playing.nntp.missing.update(gone)
    page = await open_player(browser_context, playing)
    await until_player_state(page, lambda s: s["currentTime"] >= 1, "playing", 30)
    await page.evaluate("document.querySelector('video#player').currentTime = 24")
    deadline = time.monotonic() + 60
    while True:
        said = await page.evaluate(PLAYER_STATE)
        if said["playerError"]:
            break
        assert time.monotonic() < deadline, f"no error shown after 60 s: {said}"
        await asyncio.sleep(0.2)
    await shot(page, "playback-chromium-missing-stretch")
    # The response for the missing bytes waits for a repair; there is no PAR2, so the job
    # fails and the player says why in the job's words.
    assert "segments are missing and the post has no PAR2 files" in said["playerError"], said
    assert "token=" not in said["playerError"], "the loopback URL leaked into the message"
    assert await page.locator("#buffering").is_hidden()


async def test_the_chosen_languages_are_remembered(
    start_playing: StartPlaying, browser_context: BrowserContext, playback_clips: ReleaseClips
) -> None:
    """Subtitles and sound chosen in the player are the household's: the next film (here the
    same page again) starts with them."""
    playing = await start_playing(playback_clips.path("h264-ac3-2srt.mkv"), 30.0)
    page = await open_player(browser_context, playing)
    await until_player_state(page, lambda s: s["currentTime"] > 0.5, "playing", 30)
    showing = await until_player_state(page, lambda s: len(s["tracks"]) == 2, "with its tracks", 5)
    assert [t["mode"] for t in showing["tracks"]] == ["showing", "disabled"]  # the default
    await page.select_option("#subtitle-track", "s3")
    await until_saved(playing, "ger")
    await page.reload()
    again = await until_player_state(page, lambda s: len(s["tracks"]) == 2, "with its tracks", 30)
    assert [t["mode"] for t in again["tracks"]] == ["disabled", "showing"]
    await until_player_state(page, lambda s: (s["tracks"][1]["cues"] or 0) > 0, "German cues", 10)
    await page.select_option("#subtitle-track", "off")
    await until_saved(playing, "off")


async def until_saved(playing: Playing, language: str) -> None:
    """Until the player's PUT of the subtitle preference has reached the server."""

    async def saved() -> bool:
        async with playing.http.get(f"{playing.base}api/movies-on-demand/preferences") as resp:
            return bool((await resp.json())["subtitle_language"] == language)

    await wait_for(saved, within=5, every=0.05)
