"""Plans from measured browser capabilities: the reports Debian's Chromium 156 and Firefox ESR
153 really sent (headless, tests/data/capabilities/) against ffprobe's real view of the
release-shaped clips (tests/data/ffprobe/, made by tests/support/media.py); the parser of the
player's report as hostile input; the cheap estimate from a release title's codecs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transcode.capabilities import (
    MAX_JSON_BYTES,
    Capabilities,
    CapabilitiesError,
    for_family,
    parse_capabilities,
)
from transcode.compat import estimate, plan
from transcode.probe import MediaInfo, parse_probe

DATA = Path(__file__).parent / "data"


def caps(name: str) -> Capabilities:
    return parse_capabilities((DATA / "capabilities" / f"{name}.json").read_text())


def clip(name: str) -> MediaInfo:
    return parse_probe((DATA / "ffprobe" / f"{name}.json").read_text())


CHROMIUM = "chromium-156-headless"
FIREFOX = "firefox-esr-153-headless"

# (clip, browser, plan kind, fragments of the reasons)
TABLE: list[tuple[str, str, str, list[str]]] = [
    ("h264-aac.mkv", CHROMIUM, "direct", ["plays directly"]),
    ("h264-aac.mkv", FIREFOX, "direct", []),
    ("h264-aac.mp4", CHROMIUM, "direct", []),
    ("h264-ac3-2srt.mkv", CHROMIUM, "remux_audio",
     ["cannot play AC3 sound from a MKV file: video copied into HLS",
      "converting sound: AC3 → AAC"]),
    ("h264-ac3-2srt.mkv", FIREFOX, "remux_audio", ["converting sound: AC3 → AAC"]),
    ("h264-dts.mkv", CHROMIUM, "remux_audio", ["converting sound: DTS → AAC"]),
    ("h264-dts.mkv", FIREFOX, "remux_audio", ["converting sound: DTS → AAC"]),
    ("hevc10-eac3-ass.mkv", CHROMIUM, "transcode",
     ["converting video: HEVC 10-bit → H.264 (this browser cannot play HEVC)",
      "converting sound: E-AC3 → AAC"]),
    # Firefox 153 on Linux says it decodes HEVC (through the system's libavcodec).
    ("hevc10-eac3-ass.mkv", FIREFOX, "remux_audio", ["converting sound: E-AC3 → AAC"]),
    ("xvid-mp3.avi", CHROMIUM, "transcode", ["converting video: XviD → H.264", "MP3 → AAC"]),
    ("xvid-mp3.avi", FIREFOX, "transcode", ["XviD does not play in browsers"]),
    ("hevc-aac.mp4", CHROMIUM, "transcode", ["HEVC → H.264", "sound copied"]),
    ("hevc-aac.mp4", FIREFOX, "direct", []),
    ("h264-2audio.mkv", CHROMIUM, "remux_audio", ["converting sound: AC3 → AAC"]),
]  # fmt: skip


@pytest.mark.parametrize("name, browser, kind, fragments", TABLE)
def test_plan_for_real_files_and_real_browsers(
    name: str, browser: str, kind: str, fragments: list[str]
) -> None:
    result = plan(clip(name), caps(browser))
    assert result.kind == kind, result.reason
    for fragment in fragments:
        assert any(fragment in reason for reason in result.reasons), result.reasons
    assert result.browser == "this browser"
    if kind == "transcode":
        assert (result.video_action, result.video_codec) == ("transcode", "h264")


def test_the_measured_reports_say_what_the_issue_found() -> None:
    chromium, firefox = caps(CHROMIUM), caps(FIREFOX)
    assert chromium.mse and firefox.mse
    for report in (chromium, firefox):
        assert {"h264_high", "aac", "opus", "flac"} <= report.mse_codecs
        assert not {"ac3", "eac3"} & (report.mse_codecs | report.file_codecs)
        assert "mkv" in report.containers
    assert not {k for k in chromium.mse_codecs if k.startswith("hevc")}
    assert "hevc_main10_hvc1" in firefox.mse_codecs
    assert chromium.native_hls and not firefox.native_hls


def test_subtitles_and_tags_of_real_files() -> None:
    ac3 = plan(clip("h264-ac3-2srt.mkv"), caps(CHROMIUM))
    assert [(t.codec, t.language, t.title) for t in ac3.text_subtitles] == [
        ("subrip", "eng", None),
        ("subrip", "ger", "Deutsch"),
    ]
    assert ac3.image_subtitles == ()
    hevc = plan(clip("hevc10-eac3-ass.mkv"), caps(FIREFOX))
    assert hevc.video_tag == "hvc1"  # what Safari needs, and Firefox takes too
    assert [t.codec for t in hevc.text_subtitles] == ["ass"]


def test_surround_is_kept_only_where_the_browser_has_the_speakers() -> None:
    info = clip("h264-ac3-2srt.mkv")
    assert plan(info, caps(CHROMIUM)).audio_channels == 2
    six = Capabilities(mse=True, mse_codecs=frozenset({"h264_high", "aac"}), max_channels=6)
    result = plan(info, six)
    assert result.audio_channels == 6
    assert "converting sound: AC3 → AAC 5.1" in result.reasons
    assert plan(clip("h264-aac.mkv"), six).audio_channels is None  # copied


def test_hevc_is_retagged_for_what_the_browser_takes() -> None:
    info = clip("hevc10-eac3-ass.mkv")
    hev1_only = Capabilities(mse=True, mse_codecs=frozenset({"hevc_main10_hev1", "aac"}))
    assert plan(info, hev1_only).video_tag == "hev1"
    nothing = Capabilities(mse=True, mse_codecs=frozenset({"aac"}))
    assert plan(info, nothing).kind == "transcode"


def test_a_browser_without_hls_is_told() -> None:
    bare = Capabilities(file_codecs=frozenset({"h264_high", "aac"}), containers=frozenset({"mp4"}))
    assert plan(clip("h264-aac.mp4"), bare).kind == "direct"
    result = plan(clip("h264-aac.mkv"), bare)
    assert any("no HLS support" in reason for reason in result.reasons)


def test_families_without_a_measurement_keep_the_old_rules() -> None:
    info = clip("h264-ac3-2srt.mkv")
    assert plan(info, "firefox").kind == plan(info, for_family("firefox")).kind == "remux_audio"
    assert plan(clip("hevc10-eac3-ass.mkv"), "safari").kind == "remux"  # E-AC3 copied
    assert for_family("safari").measured is False


# -- the report as hostile input -----------------------------------------------------------


def test_the_report_round_trips() -> None:
    raw = json.loads((DATA / "capabilities" / f"{CHROMIUM}.json").read_text())
    parsed = parse_capabilities(raw)
    assert parsed == parse_capabilities(json.dumps(raw))
    assert parsed.mse_codecs == frozenset(raw["mse_codecs"])
    assert parsed.max_channels == 2 and parsed.measured


@pytest.mark.parametrize(
    "text",
    ["", "[]", "null", "1", '"mse"', "{", b"\xff\xfe", "x" * (MAX_JSON_BYTES + 1)],
)
def test_what_is_not_a_report_is_refused(text: str | bytes) -> None:
    with pytest.raises(CapabilitiesError):
        parse_capabilities(text)


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"mse": "yes", "native_hls": 1, "mse_codecs": "h264_high", "containers": {"mp4": True}},
        {"mse_codecs": [1, None, {"a": 1}, ["aac"]], "max_channels": True},
        {"max_channels": 10**9, "file_codecs": ["__proto__", "constructor", "h264_high; drop"]},
        {"unknown": [1, 2, 3], "version": 99},
    ],
)
def test_odd_reports_claim_nothing(report: dict[str, object]) -> None:
    assert parse_capabilities(report) == Capabilities()


def test_lists_are_bounded_and_unknown_codecs_ignored() -> None:
    report = {"mse": True, "mse_codecs": ["junk"] * 10_000 + ["aac"], "max_channels": 8}
    with pytest.raises(CapabilitiesError, match="larger than"):
        parse_capabilities(json.dumps(report))
    small = parse_capabilities({"mse": True, "mse_codecs": ["junk"] * 100 + ["aac"]})
    assert small.mse_codecs == frozenset()  # "aac" came after the first 64 entries
    assert parse_capabilities({"mse_codecs": ["aac", "dts", "h264_high"]}).mse_codecs == {
        "aac",
        "h264_high",
    }


# -- the estimate from a release title -----------------------------------------------------

ESTIMATES: list[tuple[str | None, str | None, str | None, int | None, str, str]] = [
    ("x264", "AAC", "mkv", None, CHROMIUM, "direct"),
    ("H.264", "DDP5.1", None, None, CHROMIUM, "remux_audio"),
    ("x264", "DTS-HD MA", "mkv", None, FIREFOX, "remux_audio"),
    ("HEVC", "DDP5.1", None, 10, CHROMIUM, "transcode"),
    ("x265", "AAC", "mkv", 10, FIREFOX, "direct"),
    ("XviD", "MP3", "avi", None, FIREFOX, "transcode"),
    ("AV1", "Opus", "mkv", 10, CHROMIUM, "direct"),
    ("VC-1", "AC3", None, None, CHROMIUM, "transcode"),
    (None, None, None, None, CHROMIUM, "direct"),  # nothing stated: an ordinary H.264 MKV
    ("weird", "AAC", "mkv", None, CHROMIUM, "transcode"),
]


@pytest.mark.parametrize("video, audio, container, depth, browser, kind", ESTIMATES)
def test_estimate_from_title_codecs(
    video: str | None,
    audio: str | None,
    container: str | None,
    depth: int | None,
    browser: str,
    kind: str,
) -> None:
    result = estimate(video, audio, container, caps(browser), bit_depth=depth)
    assert result.kind == kind, result.reason


def test_the_estimate_agrees_with_the_real_file() -> None:
    for name, video, audio, container, depth in [
        ("h264-ac3-2srt.mkv", "x264", "AC3", "mkv", None),
        ("hevc10-eac3-ass.mkv", "x265", "EAC3", "mkv", 10),
        ("xvid-mp3.avi", "XviD", "MP3", "avi", None),
        ("h264-dts.mkv", "H.264", "DTS", "mkv", None),
    ]:
        for browser in (CHROMIUM, FIREFOX):
            guessed = estimate(video, audio, container, caps(browser), bit_depth=depth)
            assert guessed.kind == plan(clip(name), caps(browser)).kind, (name, browser)
