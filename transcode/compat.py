"""What a browser can play: from ``MediaInfo`` and the browser's measured ``Capabilities`` to
a ``PlaybackPlan`` (pure, no I/O).

In order of preference: ``direct`` (the file as it is, over byte ranges), ``remux``
(both streams copied into HLS), ``remux_audio`` (video copied, audio re-encoded to AAC)
and ``transcode`` (video re-encoded to 8-bit H.264: the last resort, it costs a CPU).
The decision follows what the player measured (``transcode.capabilities``); callers without
a measurement pass a User-Agent family, whose assumed capabilities keep the older rules.
``estimate`` answers the same question from a release title's codec names, for the ranking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transcode.capabilities import BrowserFamily, Capabilities, for_family
from transcode.probe import WEBM_AUDIO, WEBM_VIDEO, MediaInfo, Stream

__all__ = ["BrowserFamily", "Capabilities"]

PlanKind = Literal["direct", "remux", "remux_audio", "transcode"]
StreamAction = Literal["copy", "transcode"]

HLS_CONTENT_TYPE = "application/vnd.apple.mpegurl"
TARGET_VIDEO = "h264"  # what a transcode produces: 8-bit 4:2:0 H.264 High
TARGET_AUDIO = "aac"
# Audio copied into fMP4 segments when the browser takes it there. Opus and FLAC in MP4 are
# still experimental in ffmpeg 5.1's muxer, so they become AAC like the rest.
SEGMENT_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3"})
_FILE_CONTAINERS = {"mp4": "mp4", "mov": "mp4", "webm": "webm", "matroska": "mkv"}

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
    reasons: tuple[str, ...]  # for people: ("converting sound: AC3 → AAC",)
    description: str  # the file, for people: "MKV with H.264 + AC3"
    browser: str  # the browser's name in the reasons ("this browser" when measured)
    container: str
    content_type: str  # of what the browser is given: the file itself or an HLS playlist
    video_stream: int | None  # ffprobe stream indexes of the chosen streams
    audio_stream: int | None
    video_action: StreamAction | None  # None when there is no such stream
    audio_action: StreamAction | None
    video_codec: str | None  # what the browser receives
    audio_codec: str | None
    video_tag: str | None = None  # the codec tag the output must carry ("hvc1", "hev1")
    audio_channels: int | None = None  # of re-encoded audio: 2, or 6 where 5.1 is kept
    tonemap: bool = False  # HDR video being transcoded: map it to SDR
    subtitles: tuple[SubtitleTrack, ...] = ()
    default_subtitle: int | None = None  # stream index of a track to show from the start

    @property
    def hls(self) -> bool:
        return self.kind != "direct"

    @property
    def reason(self) -> str:
        """One sentence: the file, then what happens to it."""
        return f"{self.description}: {'; '.join(self.reasons)}"

    @property
    def text_subtitles(self) -> tuple[SubtitleTrack, ...]:
        return tuple(t for t in self.subtitles if t.convertible)

    @property
    def image_subtitles(self) -> tuple[SubtitleTrack, ...]:
        """PGS, VobSub...: shown only by burning them into a transcode, on request."""
        return tuple(t for t in self.subtitles if not t.convertible)


# -- the decision --------------------------------------------------------------------------


def plan(
    info: MediaInfo,
    browser: Capabilities | BrowserFamily = "chrome",
    *,
    language: str | None = None,
) -> PlaybackPlan:
    """Decide how a browser plays ``info``: ``browser`` is its measured ``Capabilities`` (or a
    User-Agent family for callers without them); ``language`` (ISO 639-1 or -2) picks audio."""
    caps = browser if isinstance(browser, Capabilities) else for_family(browser)
    video = info.video
    audio = choose_audio(info.audio_streams, language)
    if video is None and audio is None:
        raise NothingToPlay(f"{_container_name(info.container)} file has no video or audio")
    subtitles = subtitle_tracks(info)
    vkey = video_key(video) if video is not None else None
    video_action: StreamAction | None = "copy" if video is not None else None
    audio_action: StreamAction | None = "copy" if audio is not None else None
    video_codec = video.codec if video is not None else None
    audio_codec = audio.codec if audio is not None else None
    video_tag: str | None = None
    audio_channels: int | None = None
    tonemap = False
    content_type = HLS_CONTENT_TYPE
    reasons: list[str] = []

    blocker = _direct_blocker(info, video, audio, caps)
    video_problem, segment_tag = _segment_video(video, vkey, caps)
    audio_copy = audio is None or (audio.codec in SEGMENT_AUDIO and caps.segment_codec(audio.codec))
    kind: PlanKind
    if blocker is None:
        kind = "direct"
        reasons.append(f"plays directly in {caps.name}")
        content_type = "video/webm" if info.container == "webm" else "video/mp4"
    else:
        if not audio_copy:
            assert audio is not None
            audio_action, audio_codec = "transcode", TARGET_AUDIO
            audio_channels = 6 if caps.surround and (audio.channels or 2) >= 6 else 2
        if video_problem is None:
            video_tag = segment_tag
            kind = "remux" if audio_copy else "remux_audio"
            copied = [
                n for n, s in (("video", video), ("sound", audio if audio_copy else None)) if s
            ]
            reasons.append(
                f"{blocker}: {' and '.join(copied)} copied into HLS" if copied else blocker
            )
        else:
            assert video is not None  # only a video stream can have a video problem
            kind = "transcode"
            video_action, video_codec = "transcode", TARGET_VIDEO
            tonemap = video.hdr is not None
            reasons.append(f"converting video: {_video_label(video)} → H.264 ({video_problem})")
            if tonemap:
                reasons.append("HDR is tone-mapped to SDR")
            if audio is not None and audio_copy:
                reasons.append("sound copied")
        if not audio_copy:
            assert audio is not None
            layout = " 5.1" if audio_channels == 6 else ""
            reasons.append(f"converting sound: {_codec_name(audio)} → AAC{layout}")
        if not caps.hls:
            reasons.append(f"{caps.name} reported no HLS support: this may not play")
    return PlaybackPlan(
        kind=kind,
        reasons=tuple(reasons),
        description=_describe(info, video, audio),
        browser=caps.name,
        container=info.container,
        content_type=content_type,
        video_stream=video.index if video is not None else None,
        audio_stream=audio.index if audio is not None else None,
        video_action=video_action,
        audio_action=audio_action,
        video_codec=video_codec,
        audio_codec=audio_codec,
        video_tag=video_tag,
        audio_channels=audio_channels,
        tonemap=tonemap,
        subtitles=subtitles,
        default_subtitle=choose_subtitle(subtitles, audio, language),
    )


def video_key(video: Stream) -> str | None:
    """The capability key of a video stream (``transcode.capabilities.VIDEO_KEYS``), with
    HEVC tagged as the file tags it (hvc1 when the container has no tag); None for what no
    browser plays (MPEG-4 Part 2, 4:2:2 H.264, VC-1...)."""
    depth = video.bit_depth or 8
    chroma = video.chroma
    if chroma not in (None, "4:2:0"):
        return None
    codec = video.codec
    if codec == "h264":
        profile = (video.profile or "High").lower()
        if depth > 10 or _H264_NEVER.search(profile):
            return None
        if depth > 8 or "10" in profile:
            return "h264_high10"
        if "baseline" in profile:
            return "h264_baseline"
        return "h264_main" if profile == "main" else "h264_high"
    if codec == "hevc":
        if depth > 10:
            return None
        main = "main10" if depth > 8 or "10" in (video.profile or "") else "main"
        tag = "hev1" if (video.codec_tag or "").lower() == "hev1" else "hvc1"
        return f"hevc_{main}_{tag}"
    if codec in ("av1", "vp9"):
        return codec if depth <= 8 else f"{codec}_10"
    if codec == "vp8":
        return "vp8"
    return None


_H264_NEVER = re.compile(r"4:2:2|4:4:4|422|444")


def _direct_blocker(
    info: MediaInfo, video: Stream | None, audio: Stream | None, caps: Capabilities
) -> str | None:
    """Why the file cannot be handed to the browser as it is; None when it can."""
    container = _FILE_CONTAINERS.get(info.container)
    name = _container_name(info.container)
    if container is None or container not in caps.containers:
        return f"{caps.name} does not play {name} files directly"
    if video is not None:
        key = video_key(video)
        if key is not None and video.codec == "hevc" and info.container == "matroska":
            # Matroska has no codec tag: either spelling of HEVC will do.
            key = key if caps.file_codec(key) else _other_hevc_tag(key)
        if key is None or not caps.file_codec(key):
            return f"{caps.name} cannot play {_video_label(video)} from a {name} file"
    if audio is not None and not caps.file_codec(audio.codec):
        return f"{caps.name} cannot play {_codec_name(audio)} sound from a {name} file"
    if container == "webm" and not all(
        s.codec in (WEBM_VIDEO | WEBM_AUDIO) for s in (video, audio) if s is not None
    ):
        return "WebM holds only VP8, VP9, AV1, Opus and Vorbis"
    # A browser plays the first track of each kind; anything else needs HLS to select it.
    videos, audios = info.video_streams, info.audio_streams
    if video is not None and video.index != videos[0].index:
        return f"to select video stream {video.index}"
    if audio is not None and audio.index != audios[0].index:
        lang = f" ({audio.language})" if audio.language else ""
        return f"to select audio track {audio.index}{lang}"
    return None


def _other_hevc_tag(key: str) -> str:
    return key[:-4] + ("hev1" if key.endswith("hvc1") else "hvc1")


def _segment_video(
    video: Stream | None, key: str | None, caps: Capabilities
) -> tuple[str | None, str | None]:
    """(why ``video`` cannot be copied into fMP4 segments or None, the tag to give HEVC)."""
    if video is None:
        return None, None
    if key is None:
        return f"{_video_label(video)} does not play in browsers", None
    if video.codec == "hevc":
        # A remux may retag HEVC: hvc1 where the browser takes it (Safari needs it), else hev1.
        for candidate in (key, _other_hevc_tag(key)):
            if caps.segment_codec(candidate) and candidate.endswith("hvc1"):
                return None, "hvc1"
        for candidate in (key, _other_hevc_tag(key)):
            if caps.segment_codec(candidate):
                return None, candidate[-4:]
        return f"{caps.name} cannot play HEVC", None
    if key == "vp8":
        return "VP8 does not go into HLS", None
    if not caps.segment_codec(key):
        if key == "h264_high10":
            return "10-bit H.264 does not play in browsers", None
        return f"{caps.name} cannot play {_video_label(video)}", None
    return None, None


# -- from a release title ------------------------------------------------------------------

_TITLE_VIDEO = {
    "h264": "h264", "h.264": "h264", "x264": "h264", "avc": "h264",
    "hevc": "hevc", "h265": "hevc", "h.265": "hevc", "x265": "hevc",
    "av1": "av1", "vp9": "vp9", "xvid": "mpeg4", "divx": "mpeg4", "mpeg4": "mpeg4",
    "vc-1": "vc1", "vc1": "vc1", "mpeg-2": "mpeg2video", "mpeg2": "mpeg2video",
}  # fmt: skip
_TITLE_AUDIO = {
    "aac": "aac", "mp3": "mp3", "ac3": "ac3", "dd": "ac3", "dd5.1": "ac3",
    "eac3": "eac3", "e-ac3": "eac3", "ddp": "eac3", "dd+": "eac3", "ddp5.1": "eac3",
    "dts": "dts", "dts-hd": "dts", "dts-hd ma": "dts", "dts-x": "dts",
    "truehd": "truehd", "atmos": "truehd", "flac": "flac", "opus": "opus",
}  # fmt: skip
_TITLE_CONTAINER = {"mkv": "matroska", "mp4": "mp4", "m4v": "mp4", "avi": "avi", "webm": "webm"}


def estimate(
    video_codec: str | None,
    audio_codec: str | None,
    container: str | None,
    browser: Capabilities | BrowserFamily = "chrome",
    *,
    bit_depth: int | None = None,
) -> PlaybackPlan:
    """The plan for a release known only by its title: codec names as titles spell them
    ("x265", "HEVC", "DDP5.1", "DTS-HD MA", "XviD"), a container ("mkv"; None assumes MKV,
    what most releases are) and "10bit" as ``bit_depth``. Unknown names are taken as they are,
    so an odd codec plans as unplayable rather than as playing. Cheap: no I/O, no ffprobe."""
    vcodec = _TITLE_VIDEO.get((video_codec or "h264").strip().lower(), (video_codec or "").lower())
    streams = [
        Stream(
            index=0,
            kind="video",
            codec=vcodec,
            profile="Main 10" if vcodec == "hevc" and (bit_depth or 8) > 8 else None,
            bit_depth=bit_depth,
        )
    ]
    if audio_codec is not None:
        acodec = _TITLE_AUDIO.get(audio_codec.strip().lower(), audio_codec.strip().lower())
        streams.append(Stream(index=1, kind="audio", codec=acodec, channels=6))
    info = MediaInfo(
        container=_TITLE_CONTAINER.get((container or "mkv").strip(".").lower(), "unknown"),
        format_name=container or "matroska",
        duration=None,
        bit_rate=None,
        size=None,
        streams=tuple(streams),
    )
    return plan(info, browser)


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
#: Every tag ``language_key`` knows (639-1 codes and their 639-2 forms), for telling a
#: language in a file name ("Movie.eng.srt") from other words.
KNOWN_LANGUAGES = frozenset(_LANGUAGES) | frozenset(_LANGUAGE_KEYS)


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
