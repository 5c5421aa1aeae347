"""What a browser can play: from ``MediaInfo`` to a ``PlaybackPlan`` (pure, no I/O).

In order of preference: ``direct`` (the file as it is, over byte ranges), ``remux``
(both streams copied into HLS), ``remux_audio`` (video copied, audio re-encoded to AAC)
and ``transcode`` (video re-encoded to 8-bit H.264: the last resort, it costs a CPU).
The rules are deliberately conservative: a plan that plays beats a plan that might.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transcode.probe import MediaInfo, Stream

BrowserFamily = Literal["chrome", "firefox", "safari", "generic"]
PlanKind = Literal["direct", "remux", "remux_audio", "transcode"]
StreamAction = Literal["copy", "transcode"]

HLS_CONTENT_TYPE = "application/vnd.apple.mpegurl"
TARGET_VIDEO = "h264"  # what a transcode produces: 8-bit 4:2:0 H.264
TARGET_AUDIO = "aac"

# Audio a browser plays inside MP4/MOV.
_MP4_AUDIO: dict[BrowserFamily, frozenset[str]] = {
    "chrome": frozenset({"aac", "mp3", "opus", "flac"}),
    "firefox": frozenset({"aac", "mp3", "opus", "flac"}),
    "safari": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac"}),
    "generic": frozenset({"aac", "mp3"}),
}
# Audio that can be copied into HLS segments (hls.js on MSE, or Safari's own player).
_HLS_AUDIO: dict[BrowserFamily, frozenset[str]] = {
    "chrome": frozenset({"aac", "mp3"}),
    "firefox": frozenset({"aac", "mp3"}),
    "safari": frozenset({"aac", "mp3", "ac3", "eac3"}),
    "generic": frozenset({"aac", "mp3"}),
}
_WEBM_VIDEO = frozenset({"vp8", "vp9", "av1"})
_WEBM_AUDIO = frozenset({"opus", "vorbis"})
_WEBM_BROWSERS: frozenset[BrowserFamily] = frozenset({"chrome", "firefox"})

TEXT_SUBTITLES = frozenset(
    {
        "subrip",
        "srt",
        "ass",
        "ssa",
        "mov_text",
        "webvtt",
        "text",
        "subviewer",
        "subviewer1",
        "microdvd",
        "mpl2",
        "sami",
        "realtext",
        "vplayer",
        "pjs",
        "jacosub",
        "stl",
    }
)
IMAGE_SUBTITLES = frozenset(
    {"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub", "dvb_teletext"}
)

_BROWSER_NAMES: dict[BrowserFamily, str] = {
    "chrome": "Chrome",
    "firefox": "Firefox",
    "safari": "Safari",
    "generic": "this browser",
}
_CONTAINER_NAMES = {
    "matroska": "MKV",
    "webm": "WebM",
    "mp4": "MP4",
    "mov": "MOV",
    "mpegts": "MPEG-TS",
    "avi": "AVI",
    "asf": "WMV",
    "mpeg": "MPEG-PS",
    "flv": "FLV",
    "ogg": "Ogg",
}
_CODEC_NAMES = {
    "h264": "H.264",
    "hevc": "HEVC",
    "av1": "AV1",
    "vp8": "VP8",
    "vp9": "VP9",
    "mpeg1video": "MPEG-1",
    "mpeg2video": "MPEG-2",
    "mpeg4": "MPEG-4 Part 2",
    "msmpeg4v3": "DivX 3",
    "vc1": "VC-1",
    "wmv3": "WMV9",
    "theora": "Theora",
    "aac": "AAC",
    "mp3": "MP3",
    "mp2": "MP2",
    "ac3": "AC3",
    "eac3": "E-AC3",
    "dts": "DTS",
    "truehd": "TrueHD",
    "flac": "FLAC",
    "alac": "ALAC",
    "opus": "Opus",
    "vorbis": "Vorbis",
    "wmav2": "WMA",
    "wmapro": "WMA Pro",
}
_XVID_TAGS = {"xvid": "XviD", "divx": "DivX", "dx50": "DivX", "div3": "DivX 3", "fmp4": "FFmpeg"}


class NothingToPlay(ValueError):
    """The media has neither video nor audio."""


@dataclass(frozen=True, slots=True)
class SubtitleTrack:
    """A subtitle stream and whether it can be served as WebVTT."""

    index: int  # ffprobe stream index
    codec: str
    language: str | None
    title: str | None
    default: bool
    forced: bool
    hearing_impaired: bool
    convertible: bool  # a text format that becomes WebVTT; image subtitles (PGS, VobSub) do not


@dataclass(frozen=True, slots=True)
class PlaybackPlan:
    """How one browser gets to play one file, and why."""

    kind: PlanKind
    reason: str  # for people: "MKV with H.264 + AC3: video is copied, audio becomes AAC"
    browser: BrowserFamily
    container: str
    content_type: str  # of what the browser is given: the file itself or an HLS playlist
    video_stream: int | None  # ffprobe stream indexes of the chosen streams
    audio_stream: int | None
    video_action: StreamAction | None  # None when there is no such stream
    audio_action: StreamAction | None
    video_codec: str | None  # what the browser receives
    audio_codec: str | None
    video_tag: str | None = None  # a codec tag the output must carry ("hvc1" for Safari)
    tonemap: bool = False  # HDR video being transcoded: map it to SDR
    subtitles: tuple[SubtitleTrack, ...] = ()
    default_subtitle: int | None = None  # stream index of a track to show from the start

    @property
    def hls(self) -> bool:
        return self.kind != "direct"

    @property
    def text_subtitles(self) -> tuple[SubtitleTrack, ...]:
        return tuple(t for t in self.subtitles if t.convertible)


# -- the decision --------------------------------------------------------------------------


def plan(
    info: MediaInfo, browser: BrowserFamily = "chrome", *, language: str | None = None
) -> PlaybackPlan:
    """Decide how ``browser`` plays ``info``; ``language`` (ISO 639-1 or -2) picks audio."""
    video = info.video
    audio = choose_audio(info.audio_streams, language)
    if video is None and audio is None:
        raise NothingToPlay(f"{_container_name(info.container)} file has no video or audio")
    subtitles = subtitle_tracks(info)
    described = _describe(info, video, audio)
    browser_name = _BROWSER_NAMES[browser]
    video_action: StreamAction | None = "copy" if video is not None else None
    audio_action: StreamAction | None = "copy" if audio is not None else None
    video_codec = video.codec if video is not None else None
    audio_codec = audio.codec if audio is not None else None
    video_tag: str | None = None
    tonemap = False
    content_type = HLS_CONTENT_TYPE

    blocker = _direct_blocker(info, video, audio, browser)
    video_problem = _hls_video_problem(video, browser)
    audio_copy = audio is None or audio.codec in _HLS_AUDIO[browser]
    audio_phrase = _audio_phrase(audio, audio_copy, browser_name)
    if not audio_copy:
        audio_action, audio_codec = "transcode", TARGET_AUDIO
    kind: PlanKind
    if blocker is None:
        kind = "direct"
        reason = f"{described}: plays directly in {browser_name}"
        content_type = "video/webm" if info.container == "webm" else "video/mp4"
        audio_action = "copy" if audio is not None else None
        audio_codec = audio.codec if audio is not None else None
    elif video_problem is None:
        if video is not None and video.codec == "hevc":
            video_tag = "hvc1"  # Safari's player insists on it
        if audio_copy:
            kind = "remux"
            copied = {
                (True, True): "video and audio are",
                (True, False): "video is",
                (False, True): "audio is",
            }[(video is not None, audio is not None)]
            reason = f"{described}: {copied} copied into HLS ({blocker})"
        else:
            kind = "remux_audio"
            head = "video is copied, " if video is not None else ""
            reason = f"{described}: {head}{audio_phrase}"
    else:
        assert video is not None  # only a video stream can have a video problem
        kind = "transcode"
        video_action, video_codec = "transcode", TARGET_VIDEO
        tonemap = video.hdr is not None
        reason = f"{described}: video is transcoded to H.264 ({video_problem})"
        if tonemap:
            reason += ", HDR is tone-mapped to SDR"
        if audio is not None:
            reason += f"; {audio_phrase}"
    return PlaybackPlan(
        kind=kind,
        reason=reason,
        browser=browser,
        container=info.container,
        content_type=content_type,
        video_stream=video.index if video is not None else None,
        audio_stream=audio.index if audio is not None else None,
        video_action=video_action,
        audio_action=audio_action,
        video_codec=video_codec,
        audio_codec=audio_codec,
        video_tag=video_tag,
        tonemap=tonemap,
        subtitles=subtitles,
        default_subtitle=choose_subtitle(subtitles, audio, language),
    )


def _direct_blocker(
    info: MediaInfo, video: Stream | None, audio: Stream | None, browser: BrowserFamily
) -> str | None:
    """Why the file cannot be handed to the browser as it is; None when it can."""
    name = _BROWSER_NAMES[browser]
    container = info.container
    if container in ("mp4", "mov"):
        if video is not None:
            problem = _mp4_video_problem(video, browser)
            if problem is not None:
                return problem
        if audio is not None and audio.codec not in _MP4_AUDIO[browser]:
            return f"{name} cannot play {_codec_name(audio)} audio"
    elif container == "webm" and browser in _WEBM_BROWSERS:
        if video is not None and video.codec not in _WEBM_VIDEO:
            return f"{_codec_name(video)} is not a WebM codec"
        if audio is not None and audio.codec not in _WEBM_AUDIO:
            return f"{_codec_name(audio)} is not a WebM codec"
    else:
        return f"{name} does not play {_container_name(container)} files directly"
    # A browser plays the first track of each kind; anything else needs HLS to select it.
    videos, audios = info.video_streams, info.audio_streams
    if video is not None and video.index != videos[0].index:
        return f"to select video stream {video.index}"
    if audio is not None and audio.index != audios[0].index:
        lang = f" ({audio.language})" if audio.language else ""
        return f"to select audio track {audio.index}{lang}"
    return None


def _mp4_video_problem(video: Stream, browser: BrowserFamily) -> str | None:
    if video.codec == "vp9":
        return None if browser in _WEBM_BROWSERS else f"{_BROWSER_NAMES[browser]} cannot play VP9"
    problem = _hls_video_problem(video, browser)
    if problem is not None:
        return problem
    if video.codec == "hevc" and (video.codec_tag or "").lower() != "hvc1":
        # Safari only plays HEVC in MP4 tagged hvc1; a remux retags it.
        return "Safari needs HEVC tagged hvc1"
    return None


def _hls_video_problem(video: Stream | None, browser: BrowserFamily) -> str | None:
    """Why ``video`` cannot be copied as it is for ``browser``; None when it can.

    MP4 direct play accepts the same codecs plus VP9 (checked by the caller)."""
    if video is None:
        return None
    name = _BROWSER_NAMES[browser]
    codec = video.codec
    if codec == "h264":
        return _h264_problem(video)
    if codec == "hevc":
        if browser != "safari":
            return f"{name} cannot play HEVC"
        chroma = video.chroma
        if chroma not in (None, "4:2:0"):
            return f"{chroma} HEVC does not play in browsers"
        return None
    if codec == "av1":
        return None if browser in ("chrome", "firefox") else f"{name} cannot play AV1"
    if codec == "vp9" and browser in _WEBM_BROWSERS:
        return "VP9 is only played from MP4 or WebM files"
    return f"{name} cannot play {_codec_name(video)}"


_H264_HIGH_PROFILES = re.compile(r"10|4:2:2|4:4:4", re.IGNORECASE)


def _h264_problem(video: Stream) -> str | None:
    depth = video.bit_depth
    if depth is not None and depth > 8:
        return f"{depth}-bit H.264 does not play in browsers"
    chroma = video.chroma
    if chroma not in (None, "4:2:0"):
        return f"{chroma} H.264 does not play in browsers"
    if video.profile and _H264_HIGH_PROFILES.search(video.profile):
        return f"H.264 {video.profile} does not play in browsers"
    return None


def _audio_phrase(audio: Stream | None, copy: bool, browser_name: str) -> str:
    if audio is None:
        return "there is no audio"
    if copy:
        return "audio is copied"
    return f"audio becomes AAC ({browser_name} cannot play {_codec_name(audio)})"


# -- choosing tracks -----------------------------------------------------------------------


def choose_audio(streams: Sequence[Stream], language: str | None = None) -> Stream | None:
    """The audio track to play: in ``language`` if there is one, the default before the
    rest, and commentary or audio description only when there is nothing else."""
    if not streams:
        return None
    candidates = list(streams)
    wanted = language_key(language)
    if wanted is not None:
        matching = [s for s in candidates if language_key(s.language) == wanted]
        candidates = matching or candidates
    main = [s for s in candidates if not (s.commentary or s.visual_impaired)]
    candidates = main or candidates
    for stream in candidates:
        if stream.default:
            return stream
    return candidates[0]


def subtitle_tracks(info: MediaInfo) -> tuple[SubtitleTrack, ...]:
    """Every subtitle stream, in file order, marked with whether it can become WebVTT."""
    return tuple(
        SubtitleTrack(
            index=s.index,
            codec=s.codec,
            language=s.language,
            title=s.title,
            default=s.default,
            forced=s.forced,
            hearing_impaired=s.hearing_impaired,
            convertible=s.codec in TEXT_SUBTITLES,
        )
        for s in info.subtitle_streams
    )


def choose_subtitle(
    tracks: Sequence[SubtitleTrack], audio: Stream | None, language: str | None = None
) -> int | None:
    """The text track to show from the start, if any.

    Full subtitles in ``language`` when the audio is in another language; otherwise
    forced subtitles (foreign-language parts) in the audio's language; otherwise what the
    file marks as default."""
    usable = [t for t in tracks if t.convertible]
    if not usable:
        return None
    wanted = language_key(language)
    spoken = language_key(audio.language) if audio is not None else None
    if wanted is not None and spoken is not None and wanted != spoken:
        in_language = [t for t in usable if language_key(t.language) == wanted]
        full = [t for t in in_language if not t.forced] or in_language
        if full:
            return full[0].index
    for track in usable:
        key = language_key(track.language)
        if track.forced and (spoken is None or key is None or key == spoken):
            return track.index
    for track in usable:
        if track.default:
            return track.index
    return None


# ISO 639-1 codes and their 639-2 bibliographic and terminology forms, for the languages
# releases are usually tagged with. Unknown tags still compare equal to themselves.
_LANGUAGES = {
    "en": ("eng",),
    "de": ("ger", "deu"),
    "fr": ("fre", "fra"),
    "es": ("spa",),
    "it": ("ita",),
    "nl": ("dut", "nld"),
    "pt": ("por",),
    "ru": ("rus",),
    "ja": ("jpn",),
    "zh": ("chi", "zho"),
    "ko": ("kor",),
    "sv": ("swe",),
    "da": ("dan",),
    "no": ("nor", "nob", "nno", "nb", "nn"),
    "fi": ("fin",),
    "is": ("ice", "isl"),
    "pl": ("pol",),
    "cs": ("cze", "ces"),
    "sk": ("slo", "slk"),
    "sl": ("slv",),
    "hu": ("hun",),
    "ro": ("rum", "ron"),
    "bg": ("bul",),
    "hr": ("hrv",),
    "sr": ("srp",),
    "uk": ("ukr",),
    "el": ("gre", "ell"),
    "tr": ("tur",),
    "he": ("heb",),
    "ar": ("ara",),
    "fa": ("per", "fas"),
    "hi": ("hin",),
    "th": ("tha",),
    "vi": ("vie",),
    "id": ("ind",),
    "ms": ("may", "msa"),
    "et": ("est",),
    "lv": ("lav",),
    "lt": ("lit",),
    "ca": ("cat",),
}
_LANGUAGE_KEYS = {alias: short for short, aliases in _LANGUAGES.items() for alias in aliases}


def language_key(tag: str | None) -> str | None:
    """A comparable form of a language tag: "eng", "en", "en-US" → "en"."""
    if not tag:
        return None
    base = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    if not base or base in ("und", "unk", "mis", "zxx"):
        return None
    return _LANGUAGE_KEYS.get(base, base)


# -- browsers ------------------------------------------------------------------------------

_TV_MARKERS = re.compile(
    r"smart-?tv|smarttv|web0s|webos|tizen|hbbtv|netcast|bravia|viera|aquos|philipstv"
    r"|\bcrkey\b|roku|playstation|xbox|nintendo|googletv|android tv|vidaa",
    re.IGNORECASE,
)
_FIRE_TV = re.compile(r"\bAFT[A-Z0-9]{1,5}\b")  # Amazon's device models: AFTB, AFTMM, ...


def browser_family(user_agent: str) -> BrowserFamily:
    """The engine behind a User-Agent, as far as media support goes.

    Every browser on iOS and iPadOS is WebKit, whatever its name; Edge, Opera, Samsung
    Internet and Android WebView are Chromium. TVs, consoles and anything unknown get the
    cautious ``generic`` rules.
    """
    ua = user_agent or ""
    if _TV_MARKERS.search(ua) or _FIRE_TV.search(ua):
        return "generic"
    if re.search(r"iPhone|iPad|iPod", ua):
        return "safari"
    if re.search(r"\bEdge/\d", ua):
        return "generic"  # the old EdgeHTML engine, not Chromium
    if re.search(r"\b(?:Chrome|Chromium|CriOS|HeadlessChrome)/\d", ua):
        return "chrome"
    if re.search(r"\b(?:Firefox|FxiOS)/\d", ua) and "Seamonkey" not in ua:
        return "firefox"
    if re.search(r"\bVersion/\d[\d.]* (?:Mobile/\S+ )?Safari/\d", ua) and "Macintosh" in ua:
        return "safari"
    return "generic"


# -- descriptions --------------------------------------------------------------------------


def _container_name(container: str) -> str:
    return _CONTAINER_NAMES.get(container, container.upper() or "unknown")


def _codec_name(stream: Stream) -> str:
    codec = stream.codec
    if codec == "mpeg4" and stream.codec_tag:
        tagged = _XVID_TAGS.get(stream.codec_tag.lower())
        if tagged:
            return tagged
    if codec == "dts" and stream.profile and stream.profile.upper().startswith("DTS-HD"):
        return stream.profile
    if codec.startswith("pcm_"):
        return "PCM"
    return _CODEC_NAMES.get(codec, codec.upper() or "an unknown codec")


def _video_label(video: Stream) -> str:
    label = _codec_name(video)
    if video.bit_depth is not None and video.bit_depth > 8:
        label += f" {video.bit_depth}-bit"
    if video.chroma in ("4:2:2", "4:4:4"):
        label += f" {video.chroma}"
    hdr = {"hdr10": "HDR10", "hlg": "HLG", "dolby_vision": "Dolby Vision"}
    if video.hdr is not None:
        label += f" {hdr[video.hdr]}"
    return label


def _describe(info: MediaInfo, video: Stream | None, audio: Stream | None) -> str:
    container = _container_name(info.container)
    if video is not None and audio is not None:
        return f"{container} with {_video_label(video)} + {_codec_name(audio)}"
    if video is not None:
        return f"{container} with {_video_label(video)}, no audio"
    assert audio is not None
    return f"{container} with {_codec_name(audio)} audio only"
