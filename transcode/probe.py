"""What a media file contains: ffprobe's JSON turned into ``MediaInfo``.

``parse_probe`` is pure (JSON text in, dataclasses out); ``probe`` runs ffprobe on a path
or on an http(s) URL (Matinee's own loopback range URL while a file is still
downloading). Files come from strangers on Usenet, so ffprobe is only allowed the
protocols the source needs and the demuxers of real movie containers: a crafted playlist
cannot make it open other files or URLs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transcode.process import ProcessError, ProcessTimeout, run

StreamKind = Literal["video", "audio", "subtitle", "data", "attachment"]
HdrFormat = Literal["hdr10", "hlg", "dolby_vision"]

FFPROBE = "ffprobe"
# Demuxers ffprobe may pick. Not on the list: playlists (hls, concat), image sequences
# and other formats that open further files or URLs named inside the input.
MEDIA_DEMUXERS = (
    "matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,mpegts,mpegtsraw,avi,asf,mpeg,mpegvideo,flv,"
    "ogg,nut,rm,ivf,obu,h264,hevc,m4v,mp3,aac,ac3,eac3,dts,truehd,flac,wav,w64"
)
URL_PROTOCOLS = "http,https,tcp,tls"
USER_AGENT = "Matinee ffprobe"
STDOUT_LIMIT = 8 * 1024 * 1024  # JSON for a few hundred streams is well under this

# Matroska holding only these audio/video codecs is WebM to a browser.
WEBM_VIDEO = frozenset({"vp8", "vp9", "av1"})
WEBM_AUDIO = frozenset({"opus", "vorbis"})


class ProbeError(Exception):
    """ffprobe could not read the source, or what it read is not a movie."""

    def __init__(self, message: str, *, source: str | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.stderr = stderr


class ProbeTimeout(ProbeError):
    """ffprobe did not answer within the timeout (it has been killed)."""


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream as ffprobe describes it; fields that do not apply are None."""

    index: int
    kind: StreamKind
    codec: str  # ffprobe's codec_name, lower case; "" when ffprobe does not know it
    profile: str | None = None
    codec_tag: str | None = None  # e.g. "hvc1", "XVID"; None when the container has none
    bit_rate: int | None = None
    duration: float | None = None
    # video
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    frame_rate: float | None = None
    bit_depth: int | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    hdr: HdrFormat | None = None
    attached_pic: bool = False  # cover art stored as a one-frame video stream
    # audio
    channels: int | None = None
    channel_layout: str | None = None
    sample_rate: int | None = None
    # tags and dispositions
    language: str | None = None  # as tagged (usually ISO 639-2, "eng"); None for "und"
    title: str | None = None
    default: bool = False
    forced: bool = False
    hearing_impaired: bool = False
    visual_impaired: bool = False
    commentary: bool = False

    @property
    def chroma(self) -> str | None:
        """Chroma subsampling of a video stream ("4:2:0", "4:2:2", "4:4:4"), from pix_fmt."""
        return chroma_of(self.pix_fmt)


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A media file: its container, duration and streams."""

    container: str  # normalised: mp4, mov, matroska, webm, mpegts, avi, asf, mpeg, ...
    format_name: str  # ffprobe's demuxer name, e.g. "matroska,webm" (for ffmpeg's -f)
    duration: float | None
    bit_rate: int | None
    size: int | None
    streams: tuple[Stream, ...]
    title: str | None = None

    @property
    def video_streams(self) -> tuple[Stream, ...]:
        """Real video streams; cover art is left out."""
        return tuple(s for s in self.streams if s.kind == "video" and not s.attached_pic)

    @property
    def audio_streams(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.kind == "audio")

    @property
    def subtitle_streams(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.kind == "subtitle")

    @property
    def video(self) -> Stream | None:
        """The main video stream: the first default one, else the first."""
        return _main(self.video_streams)

    @property
    def audio(self) -> Stream | None:
        """The audio stream a player starts with: the first default one, else the first."""
        return _main(self.audio_streams)


def _main(streams: tuple[Stream, ...]) -> Stream | None:
    for stream in streams:
        if stream.default:
            return stream
    return streams[0] if streams else None


# -- running ffprobe -----------------------------------------------------------------------


def is_url(source: str) -> bool:
    return source[:8].lower().startswith(("http://", "https://"))


def ffprobe_argv(
    source: str | os.PathLike[str],
    *,
    io_timeout: float | None = None,
    extra_args: Sequence[str] = (),
    ffprobe: str = FFPROBE,
) -> list[str]:
    """The ffprobe command line for ``source`` (pure). ``io_timeout`` bounds each read of a
    URL; ``extra_args`` are input options such as ``-probesize``."""
    text = os.fspath(source)
    options: list[str] = ["-format_whitelist", MEDIA_DEMUXERS]
    if is_url(text):
        target = text
        options += ["-protocol_whitelist", URL_PROTOCOLS, "-user_agent", USER_AGENT]
        if io_timeout is not None:
            options += ["-rw_timeout", str(max(1, round(io_timeout * 1_000_000)))]
    elif "://" in text:
        raise ValueError(f"only files and http(s) URLs can be probed, not {text!r}")
    else:
        # "file:" keeps names with a colon or a leading dash from being read as options
        # or protocols.
        target = "file:" + os.path.abspath(text)
        options += ["-protocol_whitelist", "file"]
    return [
        ffprobe,
        "-hide_banner",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        *options,
        *extra_args,
        "-i",
        target,
    ]


async def probe(
    source: str | os.PathLike[str],
    *,
    timeout: float | None = 30.0,  # noqa: ASYNC109 - expiry kills ffprobe and says why
    extra_args: Sequence[str] = (),
    ffprobe: str = FFPROBE,
) -> MediaInfo:
    """Describe the media at ``source`` (a path or an http(s) URL).

    Raises ``ProbeError`` with ffprobe's own explanation when the source cannot be read or
    holds no audio or video, ``ProbeTimeout`` when ffprobe takes longer than ``timeout``.
    Cancelling the caller kills ffprobe.
    """
    text = os.fspath(source)
    # Reads time out a little before the whole probe, so that ffprobe reports the stall
    # itself instead of being killed without a word.
    io_timeout = timeout * 0.9 if timeout is not None else None
    argv = ffprobe_argv(text, io_timeout=io_timeout, extra_args=extra_args, ffprobe=ffprobe)
    try:
        result = await run(argv, timeout=timeout, stdout_limit=STDOUT_LIMIT)
    except ProcessTimeout as exc:
        raise ProbeTimeout(
            f"cannot probe {text}: ffprobe timed out after {timeout:g} s",
            source=text,
            stderr=exc.stderr_tail,
        ) from exc
    except ProcessError as exc:
        detail = _ffprobe_complaint(exc, argv[-1]) or str(exc)
        raise ProbeError(
            f"cannot probe {text}: {detail}", source=text, stderr=exc.stderr_tail
        ) from exc
    info = parse_probe(result.stdout, source=text)
    if not info.video_streams and not info.audio_streams:
        raise ProbeError(
            f"cannot probe {text}: no audio or video streams (format {info.format_name})",
            source=text,
            stderr=result.stderr_tail,
        )
    return info


# Demuxers a wrong file is typically taken for, named for people.
_FORMAT_NAMES = {
    "tty": "plain text",
    "srt": "SubRip subtitles",
    "ass": "ASS subtitles",
    "image2": "an image",
    "png_pipe": "a PNG image",
    "jpeg_pipe": "a JPEG image",
    "hls": "an HLS playlist",
    "concat": "a concat list",
}
_REFUSED = re.compile(r"^\[([^\]@]+?) @ [^\]]*\] Format not on whitelist")


def _ffprobe_complaint(exc: ProcessError, target: str) -> str | None:
    """The line of stderr that explains the failure, without the input name in front."""
    lines = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1].removeprefix(f"{target}: ")
    # "Invalid argument" after a refused demuxer says less than the refusal before it.
    for line in lines[:-1]:
        refused = _REFUSED.search(line)
        if refused:
            found = _FORMAT_NAMES.get(refused.group(1), refused.group(1))
            return f"not a movie container (ffprobe recognised {found})"
    return last


# -- parsing ffprobe's JSON ----------------------------------------------------------------


def parse_probe(json_text: str | bytes, *, source: str | None = None) -> MediaInfo:
    """``MediaInfo`` from the output of ``ffprobe -print_format json -show_format
    -show_streams``. Anything missing or odd becomes None rather than an error; only text
    that is not a JSON object with a format section raises ``ProbeError``."""
    try:
        data = json.loads(json_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProbeError(f"ffprobe output is not JSON: {exc}", source=source) from exc
    if not isinstance(data, dict):
        raise ProbeError("ffprobe output is not a JSON object", source=source)
    fmt = data.get("format")
    if not isinstance(fmt, dict):
        raise ProbeError("ffprobe found no container format", source=source)
    raw_streams = data.get("streams")
    streams = tuple(
        _parse_stream(raw, position)
        for position, raw in enumerate(raw_streams if isinstance(raw_streams, list) else [])
        if isinstance(raw, dict)
    )
    format_name = _str(fmt.get("format_name")) or ""
    tags = _tags(fmt)
    duration = _seconds(fmt.get("duration"))
    if duration is None:
        durations = [s.duration for s in streams if s.duration is not None]
        duration = max(durations) if durations else None
    return MediaInfo(
        container=normalise_container(format_name, tags.get("major_brand"), streams),
        format_name=format_name,
        duration=duration,
        bit_rate=_int(fmt.get("bit_rate")),
        size=_int(fmt.get("size")),
        streams=streams,
        title=tags.get("title") or None,
    )


def normalise_container(
    format_name: str, major_brand: str | None = None, streams: Sequence[Stream] = ()
) -> str:
    """ffprobe's demuxer name → the container a browser cares about (pure).

    ffprobe reports Matroska and WebM alike ("matroska,webm"), so the codecs decide: a
    file whose audio and video are all WebM codecs is "webm". The MP4 demuxer also reads
    QuickTime; the "qt" brand tells them apart.
    """
    names = [n.strip().lower() for n in format_name.split(",") if n.strip()]
    if not names:
        return "unknown"
    if "matroska" in names or "webm" in names:
        media = [s for s in streams if s.kind in ("video", "audio") and not s.attached_pic]
        webm = media and all(
            s.codec in (WEBM_VIDEO if s.kind == "video" else WEBM_AUDIO) for s in media
        )
        return "webm" if webm else "matroska"
    if "mov" in names or "mp4" in names:
        return "mov" if (major_brand or "").strip().lower() == "qt" else "mp4"
    if "mpegts" in names or "mpegtsraw" in names:
        return "mpegts"
    return names[0]


_KINDS: dict[str, StreamKind] = {
    "video": "video",
    "audio": "audio",
    "subtitle": "subtitle",
    "data": "data",
    "attachment": "attachment",
}


def _parse_stream(raw: Mapping[str, Any], position: int) -> Stream:
    kind = _KINDS.get((_str(raw.get("codec_type")) or "").lower(), "data")
    index = _int(raw.get("index"))
    tags = _tags(raw)
    disposition = raw.get("disposition")
    flags = disposition if isinstance(disposition, dict) else {}

    def flag(name: str) -> bool:
        return _int(flags.get(name)) == 1

    title = tags.get("title") or None
    pix_fmt = _str(raw.get("pix_fmt")) if kind == "video" else None
    codec_tag = _str(raw.get("codec_tag_string"))
    if codec_tag is not None and (codec_tag.startswith("[0]") or not codec_tag.strip()):
        codec_tag = None
    duration = _seconds(raw.get("duration"))
    if duration is None:
        duration = _clock_seconds(tags.get("duration"))  # Matroska keeps it as a tag
    return Stream(
        index=index if index is not None else position,
        kind=kind,
        codec=(_str(raw.get("codec_name")) or "").lower(),
        profile=_str(raw.get("profile")),
        codec_tag=codec_tag,
        bit_rate=_int(raw.get("bit_rate")),
        duration=duration,
        width=_positive(raw.get("width")),
        height=_positive(raw.get("height")),
        pix_fmt=pix_fmt,
        frame_rate=(
            _rate(raw.get("avg_frame_rate")) or _rate(raw.get("r_frame_rate"))
            if kind == "video"
            else None
        ),
        bit_depth=_bit_depth(raw, pix_fmt) if kind == "video" else None,
        color_transfer=_str(raw.get("color_transfer")),
        color_primaries=_str(raw.get("color_primaries")),
        hdr=_hdr(raw, codec_tag) if kind == "video" else None,
        attached_pic=flag("attached_pic"),
        channels=_positive(raw.get("channels")),
        channel_layout=_str(raw.get("channel_layout")),
        sample_rate=_positive(raw.get("sample_rate")),
        language=_language(tags.get("language")),
        title=title,
        default=flag("default"),
        forced=flag("forced"),
        hearing_impaired=flag("hearing_impaired"),
        visual_impaired=flag("visual_impaired"),
        commentary=flag("comment") or (title is not None and "commentary" in title.lower()),
    )


def _tags(obj: Mapping[str, Any]) -> dict[str, str]:
    """Tags with lower-case keys: Matroska writes LANGUAGE and DURATION, MP4 language."""
    raw = obj.get("tags")
    if not isinstance(raw, dict):
        return {}
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(key, str) and isinstance(value, str | int | float):
            tags.setdefault(key.lower(), str(value).strip())
    return tags


def _str(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value if value and value.lower() not in ("n/a", "unknown") else None
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _positive(value: object) -> int | None:
    number = _int(value)
    return number if number is not None and number > 0 else None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


_CLOCK = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")


def _clock_seconds(value: str | None) -> float | None:
    """ "01:02:03.500000000" → 3723.5."""
    if not value:
        return None
    match = _CLOCK.match(value.strip())
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _rate(value: object) -> float | None:
    """ "24000/1001" → 23.976...; "0/0" (unknown) → None."""
    if not isinstance(value, str):
        return None
    num, sep, den = value.partition("/")
    try:
        rate = float(num) / float(den) if sep else float(num)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def _language(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    return None if value in ("und", "unk", "mis", "zxx", "") else value


_DEPTH_SUFFIX = re.compile(r"p(\d{1,2})(?:le|be)?$")
_DEPTH_NAMES = {"p010": 10, "p210": 10, "p410": 10, "p012": 12, "p016": 16, "nv20": 10}


def bit_depth_of(pix_fmt: str | None) -> int | None:
    """Bits per component from a pixel format name ("yuv420p10le" → 10, "nv12" → 8)."""
    if not pix_fmt:
        return None
    name = pix_fmt.lower()
    base = name.removesuffix("le").removesuffix("be")
    if base in _DEPTH_NAMES:
        return _DEPTH_NAMES[base]
    match = _DEPTH_SUFFIX.search(name)
    if match and name.startswith(("yuv", "yuva", "gbr")):
        return int(match.group(1))
    gray = re.fullmatch(r"gray(\d{1,2})(?:le|be)?", name)
    if gray:
        return int(gray.group(1))
    return 8


def chroma_of(pix_fmt: str | None) -> str | None:
    if not pix_fmt:
        return None
    name = pix_fmt.lower()
    if name.startswith(("yuv420", "yuvj420", "yuva420", "nv12", "nv21", "p010", "p012", "p016")):
        return "4:2:0"
    if name.startswith(("yuv422", "yuvj422", "yuva422", "nv16", "nv20", "yuyv422", "uyvy422")):
        return "4:2:2"
    if name.startswith(("p210", "y210")):
        return "4:2:2"
    if name.startswith(("yuv444", "yuvj444", "yuva444", "nv24", "p410", "gbr", "rgb", "bgr")):
        return "4:4:4"
    if name.startswith("gray"):
        return "4:0:0"
    return None


def _bit_depth(raw: Mapping[str, Any], pix_fmt: str | None) -> int | None:
    # bits_per_raw_sample is absent for HEVC and some MPEG-4; the pixel format never lies
    # downwards, so the larger of the two wins.
    known = [d for d in (_positive(raw.get("bits_per_raw_sample")), bit_depth_of(pix_fmt)) if d]
    return max(known) if known else None


def _hdr(raw: Mapping[str, Any], codec_tag: str | None) -> HdrFormat | None:
    side_data = raw.get("side_data_list")
    if isinstance(side_data, list):
        for item in side_data:
            kind = item.get("side_data_type") if isinstance(item, dict) else None
            if isinstance(kind, str) and "dovi" in kind.lower():
                return "dolby_vision"
    if codec_tag is not None and codec_tag.lower() in ("dvh1", "dvhe", "dav1", "dva1", "dvav"):
        return "dolby_vision"
    transfer = (_str(raw.get("color_transfer")) or "").lower()
    if transfer == "smpte2084":
        return "hdr10"
    if transfer == "arib-std-b67":
        return "hlg"
    return None
