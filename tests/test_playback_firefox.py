"""Debian's Firefox ESR plays the releases Chromium needed converting, while they download:
MKV H.264 + AC3 (Firefox plays neither AC3 nor, before recent versions, MKV) and the HEVC
releases (Firefox says it plays HEVC through the system's decoder: these check that it really
decodes it). Each must reach 3 s with frames decoded and the clip's 440 Hz tone heard by an
AnalyserNode, offer its subtitles as text tracks, and play on within 10 s of a seek to 80 %.
Driven over Marionette (tests/support/firefox.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.support.firefox import Firefox
from tests.support.media import ReleaseClips
from tests.support.playback import LISTEN, StartPlaying, until_player_state

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HEARD = 100  # of 255: the tone's band in the analyser, well above silence (0)


@dataclass(frozen=True)
class Row:
    clip: str
    plan: str
    subtitles: tuple[str, ...]


ROWS = (
    Row("h264-ac3-2srt.mkv", "remux_audio", ("eng", "ger")),
    Row("hevc10-eac3-ass.mkv", "remux_audio", ("eng",)),
    Row("hevc-aac.mp4", "direct", ()),
)


@pytest.mark.parametrize("row", ROWS, ids=[r.clip for r in ROWS])
async def test_release_plays_with_sound_in_firefox(
    start_playing: StartPlaying, firefox: Firefox, playback_clips: ReleaseClips, row: Row
) -> None:
    playing = await start_playing(playback_clips.path(row.clip), playback_clips.seconds)
    await firefox.navigate(f"{playing.base}login")
    await firefox.add_cookie({"name": "matinee_session", "value": playing.cookie, "path": "/"})
    await firefox.navigate(playing.player_url)
    assert await firefox.evaluate(LISTEN)

    played = await until_player_state(
        firefox, lambda s: s["currentTime"] >= 3 and (s["heard"] or 0) >= HEARD, "heard at 3 s", 30
    )
    assert (await playing.job())["status"] == "downloading"
    assert played["frames"] > 0, played
    assert row.plan in ("direct",) or "→" in played["plan"], played["plan"]
    assert [t["language"] for t in played["tracks"]] == list(row.subtitles), played["tracks"]

    target = 0.8 * played["duration"]
    sought = time.monotonic()
    await firefox.evaluate(f"document.querySelector('video#player').currentTime = {target}")
    after = await until_player_state(
        firefox,
        lambda s: not s["seeking"] and s["currentTime"] > target + 0.5,
        "playing after the seek to 80 %",
        10,
    )
    print(
        f"\nFirefox {row.clip}: {played['plan']}; seek played on after "
        f"{time.monotonic() - sought:.1f} s ({after['frames']} frames, tone level "
        f"{played['heard']})"
    )
