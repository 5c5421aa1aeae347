"""What each browser is given: plan kinds and reasons for the files releases really contain,
audio and subtitle selection, and browser families from real User-Agent strings."""

from __future__ import annotations

from typing import Any

import pytest

from transcode.compat import (
    IMAGE_SUBTITLES,
    TEXT_SUBTITLES,
    BrowserFamily,
    NothingToPlay,
    browser_family,
    choose_audio,
    language_key,
    plan,
)
from transcode.probe import MediaInfo, Stream

H264 = {"codec": "h264", "profile": "High", "pix_fmt": "yuv420p", "bit_depth": 8}
H264_10 = {"codec": "h264", "profile": "High 10", "pix_fmt": "yuv420p10le", "bit_depth": 10}
H264_444 = {"codec": "h264", "profile": "High 4:4:4 Predictive", "pix_fmt": "yuv444p"}
HEVC = {"codec": "hevc", "profile": "Main 10", "pix_fmt": "yuv420p10le", "bit_depth": 10}
HEVC_HVC1 = {**HEVC, "codec_tag": "hvc1"}
HEVC_HEV1 = {**HEVC, "codec_tag": "hev1"}
HEVC_HDR = {**HEVC, "hdr": "hdr10", "color_transfer": "smpte2084"}
AV1 = {"codec": "av1", "pix_fmt": "yuv420p10le", "bit_depth": 10}
VP9 = {"codec": "vp9", "pix_fmt": "yuv420p"}
VP8 = {"codec": "vp8", "pix_fmt": "yuv420p"}
MPEG2 = {"codec": "mpeg2video", "pix_fmt": "yuv420p"}
XVID = {"codec": "mpeg4", "codec_tag": "XVID", "pix_fmt": "yuv420p"}
VC1 = {"codec": "vc1", "pix_fmt": "yuv420p"}


def video(index: int = 0, **fields: Any) -> Stream:
    spec = {**H264, **fields}
    return Stream(index=index, kind="video", width=1920, height=1080, **spec)


def audio(codec: str, index: int = 1, **fields: Any) -> Stream:
    return Stream(index=index, kind="audio", codec=codec, channels=6, **fields)


def subtitle(codec: str, index: int, **fields: Any) -> Stream:
    return Stream(index=index, kind="subtitle", codec=codec, **fields)


def media(container: str, *streams: Stream) -> MediaInfo:
    return MediaInfo(
        container=container,
        format_name=container,
        duration=5400.0,
        bit_rate=8_000_000,
        size=5_400_000_000,
        streams=streams,
    )


def movie(container: str, video_spec: dict[str, Any] | None, audio_codec: str | None) -> MediaInfo:
    streams: list[Stream] = []
    if video_spec is not None:
        streams.append(video(**video_spec))
    if audio_codec is not None:
        streams.append(audio(audio_codec, index=len(streams)))
    return media(container, *streams)


CASES: list[tuple[str, dict[str, Any] | None, str | None, BrowserFamily, str, list[str]]] = [
    # MP4 and MOV that browsers open as they are
    ("mp4", H264, "aac", "chrome", "direct", ["MP4 with H.264 + AAC: plays directly in Chrome"]),
    ("mp4", H264, "mp3", "firefox", "direct", ["plays directly in Firefox"]),
    ("mp4", H264, None, "safari", "direct", ["MP4 with H.264, no audio"]),
    ("mov", H264, "aac", "safari", "direct", ["MOV with H.264 + AAC"]),
    ("mp4", H264, "aac", "generic", "direct", ["plays directly in this browser"]),
    ("mp4", H264, "ac3", "safari", "direct", ["MP4 with H.264 + AC3"]),
    ("mp4", HEVC_HVC1, "aac", "safari", "direct", ["MP4 with HEVC 10-bit + AAC"]),
    ("mp4", AV1, "aac", "chrome", "direct", ["AV1 10-bit"]),
    ("mp4", AV1, "opus", "firefox", "direct", []),
    ("mp4", VP9, "opus", "chrome", "direct", []),
    # WebM
    ("webm", VP9, "opus", "chrome", "direct", ["WebM with VP9 + Opus: plays directly in Chrome"]),
    ("webm", VP8, "vorbis", "firefox", "direct", ["WebM with VP8 + Vorbis"]),
    ("webm", AV1, "opus", "chrome", "direct", []),
    ("webm", VP9, "opus", "safari", "transcode", ["Safari cannot play VP9",
     "converting sound: Opus → AAC"]),
    ("webm", VP9, "opus", "generic", "transcode", ["this browser cannot play VP9"]),
    # Remux: playable streams in a container the browser does not open
    ("matroska", H264, "aac", "chrome", "remux",
     ["MKV with H.264 + AAC: Chrome does not play MKV files directly: video and sound copied"]),
    ("mpegts", H264, "aac", "firefox", "remux", ["MPEG-TS with H.264 + AAC"]),
    ("avi", H264, "mp3", "chrome", "remux", ["AVI with H.264 + MP3"]),
    ("matroska", H264, None, "chrome", "remux",
     ["no audio: Chrome does not play MKV files directly: video copied"]),
    ("matroska", HEVC, "aac", "safari", "remux", ["MKV with HEVC 10-bit + AAC"]),
    ("matroska", HEVC, "eac3", "safari", "remux", ["HEVC 10-bit + E-AC3"]),
    ("mp4", HEVC_HEV1, "aac", "safari", "remux",
     ["Safari cannot play HEVC 10-bit from a MP4 file"]),
    ("matroska", AV1, "aac", "firefox", "remux", []),
    # Remux with the audio made AAC
    ("matroska", H264, "ac3", "firefox", "remux_audio",
     ["MKV with H.264 + AC3: Firefox does not play MKV files directly: video copied",
      "converting sound: AC3 → AAC"]),
    ("matroska", H264, "eac3", "chrome", "remux_audio",
     ["converting sound: E-AC3 → AAC"]),
    ("matroska", H264, "dts", "chrome", "remux_audio",
     ["H.264 + DTS: Chrome does not play MKV", "DTS → AAC"]),
    ("matroska", H264, "truehd", "chrome", "remux_audio", ["TrueHD"]),
    ("matroska", H264, "flac", "chrome", "remux_audio", ["FLAC"]),
    ("matroska", H264, "pcm_s24le", "chrome", "remux_audio", ["H.264 + PCM"]),
    ("mp4", H264, "ac3", "chrome", "remux_audio",
     ["MP4 with H.264 + AC3: Chrome cannot play AC3 sound"]),
    ("mp4", H264, "eac3", "generic", "remux_audio", ["this browser cannot play E-AC3 sound"]),
    ("mpegts", H264, "mp2", "chrome", "remux_audio", ["MP2"]),
    ("matroska", H264, "opus", "chrome", "remux_audio", []),
    # Transcode: the video itself does not play
    ("matroska", HEVC, "aac", "chrome", "transcode",
     ["converting video: HEVC 10-bit → H.264 (Chrome cannot play HEVC)", "sound copied"]),
    ("mp4", HEVC_HVC1, "aac", "firefox", "transcode", ["Firefox cannot play HEVC"]),
    ("matroska", HEVC_HDR, "eac3", "chrome", "transcode",
     ["HEVC 10-bit HDR10 + E-AC3", "HDR is tone-mapped to SDR", "E-AC3 → AAC"]),
    ("mp4", H264_10, "aac", "chrome", "transcode",
     ["MP4 with H.264 10-bit + AAC", "10-bit H.264 does not play in browsers"]),
    ("matroska", H264_10, "aac", "safari", "transcode", ["10-bit H.264"]),
    ("mp4", H264_444, "aac", "chrome", "transcode", ["H.264 4:4:4 does not play in browsers"]),
    ("mpegts", MPEG2, "ac3", "chrome", "transcode",
     ["MPEG-TS with MPEG-2 + AC3", "MPEG-2 does not play in browsers", "AC3 → AAC"]),
    ("mpegts", MPEG2, "ac3", "safari", "transcode", ["sound copied"]),
    ("avi", XVID, "mp3", "firefox", "transcode",
     ["AVI with XviD + MP3", "XviD → H.264", "sound copied"]),
    ("asf", VC1, "wmav2", "chrome", "transcode", ["WMV with VC-1 + WMA"]),
    ("matroska", VP9, "ac3", "chrome", "remux_audio", ["VP9 + AC3", "video copied"]),
    ("mp4", VP9, "aac", "safari", "transcode", ["Safari cannot play VP9"]),
    ("mp4", AV1, "aac", "safari", "transcode", ["Safari cannot play AV1 10-bit"]),
    ("matroska", HEVC, "dts", "generic", "transcode", ["this browser cannot play HEVC"]),
    # Audio only
    ("mp4", None, "aac", "chrome", "direct", ["MP4 with AAC audio only"]),
    ("matroska", None, "flac", "firefox", "remux_audio", ["MKV with FLAC audio only"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "container, video_spec, audio_codec, browser, kind, fragments",
    CASES,
    ids=[f"{c}-{(v or {}).get('codec')}-{a}-{b}" for c, v, a, b, _, _ in CASES],
)
def test_plans(
    container: str,
    video_spec: dict[str, Any] | None,
    audio_codec: str | None,
    browser: BrowserFamily,
    kind: str,
    fragments: list[str],
) -> None:
    result = plan(movie(container, video_spec, audio_codec), browser)
    assert result.kind == kind, result.reason
    for fragment in fragments:
        assert fragment in result.reason
    assert result.browser == {"generic": "this browser"}.get(browser, browser.capitalize())
    assert result.hls == (kind != "direct")
    if kind == "direct":
        assert result.content_type == ("video/webm" if container == "webm" else "video/mp4")
    else:
        assert result.content_type == "application/vnd.apple.mpegurl"
    if video_spec is None:
        assert result.video_action is None
    else:
        assert result.video_action == ("transcode" if kind == "transcode" else "copy")
    if kind == "transcode":
        assert result.video_codec == "h264"
    if kind == "remux_audio":
        assert (result.audio_action, result.audio_codec) == ("transcode", "aac")
    if kind == "remux":
        assert result.audio_action in ("copy", None)


def test_plan_fields_for_a_typical_mkv() -> None:
    info = media("matroska", video(0, **HEVC_HDR), audio("truehd", 1), audio("ac3", 2))
    result = plan(info, "chrome")
    assert result.kind == "transcode"
    assert (result.video_stream, result.audio_stream) == (0, 1)
    assert (result.video_action, result.video_codec, result.tonemap) == ("transcode", "h264", True)
    assert (result.audio_action, result.audio_codec) == ("transcode", "aac")
    assert result.video_tag is None

    safari = plan(info, "safari")
    assert (safari.kind, safari.video_action, safari.video_tag) == ("remux_audio", "copy", "hvc1")
    assert safari.tonemap is False  # Safari shows HDR itself


def test_nothing_to_play() -> None:
    with pytest.raises(NothingToPlay):
        plan(media("matroska", subtitle("subrip", 0)))
    with pytest.raises(NothingToPlay):
        plan(media("mp4"))


def test_cover_art_does_not_count_as_video() -> None:
    cover = Stream(index=0, kind="video", codec="mjpeg", attached_pic=True)
    info = media("mp4", cover, video(1), audio("aac", 2))
    result = plan(info, "chrome")
    assert (result.kind, result.video_stream) == ("direct", 1)


def test_every_combination_has_a_plan_and_a_reason() -> None:
    unknown: dict[str, Any] = {"codec": "", "pix_fmt": None}
    videos: list[dict[str, Any] | None] = [H264, H264_10, H264_444, HEVC, HEVC_HVC1, HEVC_HDR]
    videos += [AV1, VP9, VP8, MPEG2, XVID, VC1, unknown, None]
    audios = ["aac", "mp3", "ac3", "eac3", "dts", "truehd", "flac", "opus", "vorbis", "pcm_s16le",
              "alac", "wmapro", "", None]  # fmt: skip
    containers = ["mp4", "mov", "matroska", "webm", "mpegts", "avi", "asf", "mpeg", "flv", "xyz"]
    browsers: list[BrowserFamily] = ["chrome", "firefox", "safari", "generic"]
    for container in containers:
        for video_spec in videos:
            for audio_codec in audios:
                if video_spec is None and audio_codec is None:
                    continue
                info = movie(container, video_spec, audio_codec)
                for browser in browsers:
                    result = plan(info, browser)
                    assert result.reason.count(":") >= 1 and len(result.reason) > 20
                    if result.kind == "direct":
                        assert container in ("mp4", "mov", "webm")


# -- audio ---------------------------------------------------------------------------------


def test_audio_default_then_first() -> None:
    first, second = audio("ac3", 1), audio("aac", 2, default=True)
    assert choose_audio([first, second]) is second
    assert choose_audio([first, audio("aac", 2)]) is first
    assert choose_audio([]) is None


@pytest.mark.parametrize("wanted", ["de", "ger", "deu", "DE", "de-DE", "de_AT"])
def test_audio_language_in_any_spelling(wanted: str) -> None:
    english = audio("ac3", 1, language="eng", default=True)
    german = audio("ac3", 2, language="ger")
    assert choose_audio([english, german], wanted) is german


def test_audio_language_prefers_the_main_track() -> None:
    tracks = [
        audio("ac3", 1, language="eng", default=True),
        audio("ac3", 2, language="fre", commentary=True, title="Commentaire"),
        audio("eac3", 3, language="fre", visual_impaired=True),
        audio("dts", 4, language="fre"),
        audio("ac3", 5, language="fre", default=True),
    ]
    assert choose_audio(tracks, "fr").index == 5  # type: ignore[union-attr]
    assert choose_audio(tracks[:4], "fr").index == 4  # type: ignore[union-attr]
    assert choose_audio(tracks, "ja").index == 1  # type: ignore[union-attr]  # not there
    only_commentary = [audio("aac", 1, commentary=True), audio("aac", 2, commentary=True)]
    assert choose_audio(only_commentary).index == 1  # type: ignore[union-attr]


def test_choosing_a_second_audio_track_needs_hls() -> None:
    info = media("mp4", video(0), audio("aac", 1, language="eng"), audio("aac", 2, language="ger"))
    assert plan(info, "chrome").kind == "direct"
    german = plan(info, "chrome", language="de")
    assert (german.kind, german.audio_stream) == ("remux", 2)
    assert "to select audio track 2 (ger)" in german.reason
    assert german.reasons == ("to select audio track 2 (ger): video and sound copied into HLS",)


@pytest.mark.parametrize(
    "tag, key",
    [("eng", "en"), ("en", "en"), ("EN-us", "en"), ("fre", "fr"), ("fra", "fr"), ("nob", "no"),
     ("und", None), ("", None), (None, None), ("tlh", "tlh")],
)  # fmt: skip
def test_language_keys(tag: str | None, key: str | None) -> None:
    assert language_key(tag) == key


# -- subtitles -----------------------------------------------------------------------------


def test_subtitles_are_listed_with_what_can_become_webvtt() -> None:
    codecs = ["subrip", "ass", "mov_text", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle"]
    streams = [subtitle(codec, 2 + i, language="eng") for i, codec in enumerate(codecs)]
    result = plan(media("matroska", video(0), audio("aac", 1), *streams))
    assert [(t.index, t.codec, t.convertible) for t in result.subtitles] == [
        (2, "subrip", True),
        (3, "ass", True),
        (4, "mov_text", True),
        (5, "webvtt", True),
        (6, "hdmv_pgs_subtitle", False),
        (7, "dvd_subtitle", False),
    ]
    assert [t.index for t in result.text_subtitles] == [2, 3, 4, 5]
    assert TEXT_SUBTITLES.isdisjoint(IMAGE_SUBTITLES)


def test_no_subtitle_is_shown_by_default_without_a_reason() -> None:
    info = media(
        "matroska",
        video(0),
        audio("aac", 1, language="eng"),
        subtitle("subrip", 2, language="eng"),
        subtitle("subrip", 3, language="fre"),
    )
    assert plan(info).default_subtitle is None


def test_forced_subtitles_in_the_spoken_language_are_shown() -> None:
    info = media(
        "matroska",
        video(0),
        audio("ac3", 1, language="eng"),
        subtitle("subrip", 2, language="ger", forced=True),
        subtitle("subrip", 3, language="eng"),
        subtitle("subrip", 4, language="eng", forced=True),
    )
    assert plan(info).default_subtitle == 4


def test_image_subtitles_are_never_chosen() -> None:
    pgs = subtitle("hdmv_pgs_subtitle", 2, language="eng", forced=True, default=True)
    info = media("matroska", video(0), audio("ac3", 1, language="eng"), pgs)
    result = plan(info)
    assert result.default_subtitle is None
    assert result.subtitles[0].convertible is False


def test_subtitles_in_the_wanted_language_when_the_audio_is_not() -> None:
    info = media(
        "matroska",
        video(0),
        audio("ac3", 1, language="jpn", default=True),
        subtitle("ass", 2, language="ger", forced=True),
        subtitle("ass", 3, language="ger", title="Full"),
        subtitle("subrip", 4, language="eng"),
    )
    assert plan(info, language="de").default_subtitle == 3
    assert plan(info, language="en").default_subtitle == 4
    assert plan(info).default_subtitle is None


def test_the_files_default_subtitle_is_respected() -> None:
    info = media("matroska", video(0), audio("aac", 1),
                 subtitle("subrip", 2), subtitle("subrip", 3, default=True))  # fmt: skip
    assert plan(info).default_subtitle == 3


# -- browsers ------------------------------------------------------------------------------

USER_AGENTS: list[tuple[str, BrowserFamily]] = [
    # Chrome on Windows, macOS and Android; Chromium-based Edge, Opera, Samsung, headless
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "chrome"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "chrome"),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.144 Mobile Safari/537.36", "chrome"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", "chrome"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0", "chrome"),
    ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "chrome"),
    ("Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36", "chrome"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.6099.109 Safari/537.36", "chrome"),
    # Firefox on desktop and Android
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "firefox"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "firefox"),
    ("Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0", "firefox"),
    # Safari on macOS, iPhone, iPad; every iOS browser is WebKit
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.2 Safari/605.1.15", "safari"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", "safari"),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1", "safari"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", "safari"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15", "safari"),
    # TVs, sticks, consoles, old engines and non-browsers: the cautious rules
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "76.0.3809.146/6.0 TV Safari/537.36", "generic"),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/79.0.3945.79 Safari/537.36 WebAppManager", "generic"),
    ("Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/91.0.4472.225 Safari/537.36 CrKey/1.56.500000 DeviceType/Chromecast", "generic"),
    ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.43 Mobile Safari/537.36", "generic"),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/13.0 Safari/605.1.15", "generic"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045", "generic"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.0 Safari/605.1.15", "generic"),  # Epiphany: WebKitGTK, not Apple's
    ("curl/8.5.0", "generic"),
    ("", "generic"),
]  # fmt: skip


@pytest.mark.parametrize("user_agent, family", USER_AGENTS)
def test_browser_family(user_agent: str, family: BrowserFamily) -> None:
    assert browser_family(user_agent) == family


def test_after_is_not_a_fire_tv() -> None:
    # Amazon's model names are matched case-sensitively; ordinary words do not trip them.
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0 aftermath"
    assert browser_family(ua) == "firefox"
