"""What a browser can play, as its player measured it (web/static/js/capabilities.js).

``parse_capabilities`` reads the JSON the player sends; it comes from the network, so it is
bounded, unknown keys and values are ignored, and anything malformed falls back to nothing
claimed rather than to an error deep in the planner. ``for_family`` expresses the older
User-Agent rules as a capability set, for callers that have no measurement (an API client,
the releases ranking before any browser asked).

Codec keys name a codec *and* the variant that decides playability: ``h264_high10`` is
10-bit H.264, ``hevc_main10_hvc1`` 10-bit HEVC tagged hvc1. ``mse_codecs`` is what Media
Source Extensions accept in fMP4 segments (what hls.js plays: the remux target),
``file_codecs`` what a ``<video src>`` plays from a whole MP4/WebM file (direct play).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

BrowserFamily = Literal["chrome", "firefox", "safari", "generic"]

CAPABILITIES_VERSION = 1
MAX_JSON_BYTES = 16 * 1024  # the real report is well under 1 KiB
MAX_LIST_ITEMS = 64

VIDEO_KEYS = frozenset(
    {
        "h264_baseline",
        "h264_main",
        "h264_high",
        "h264_high10",
        "hevc_main_hvc1",
        "hevc_main_hev1",
        "hevc_main10_hvc1",
        "hevc_main10_hev1",
        "av1",
        "av1_10",
        "vp9",
        "vp9_10",
        "vp8",
    }
)
AUDIO_KEYS = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "vorbis"})
CODEC_KEYS = VIDEO_KEYS | AUDIO_KEYS
CONTAINER_KEYS = frozenset({"mp4", "webm", "mkv"})


class CapabilitiesError(ValueError):
    """The capability report is not a JSON object (or is too large to be one)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one browser said it plays. Empty sets claim nothing."""

    mse: bool = False  # Media Source Extensions (hls.js) available
    native_hls: bool = False  # plays an HLS playlist in <video src> (Safari, recent Chrome)
    mse_codecs: frozenset[str] = frozenset()
    file_codecs: frozenset[str] = frozenset()
    containers: frozenset[str] = frozenset()
    max_channels: int = 2  # of the audio output: 6 or more keeps 5.1
    name: str = "this browser"  # for reasons shown to people
    measured: bool = True  # False for a family's assumed set

    @property
    def hls(self) -> bool:
        """Plays HLS at all (through hls.js or by itself)."""
        return self.mse or self.native_hls

    def segment_codec(self, key: str) -> bool:
        """Plays ``key`` inside HLS fMP4 segments. Native HLS players play what they play
        from an MP4 file."""
        if self.mse:
            return key in self.mse_codecs
        return self.native_hls and key in self.file_codecs

    def file_codec(self, key: str) -> bool:
        return key in self.file_codecs

    @property
    def surround(self) -> bool:
        return self.max_channels >= 6


def parse_capabilities(data: str | bytes | Mapping[str, object]) -> Capabilities:
    """``Capabilities`` from the player's report (JSON text or an already parsed object).

    Raises ``CapabilitiesError`` only when the report is not a JSON object or is larger than
    ``MAX_JSON_BYTES``; every field that is missing or of the wrong type claims nothing.
    """
    if isinstance(data, str | bytes):
        if len(data) > MAX_JSON_BYTES:
            raise CapabilitiesError(f"capability report is larger than {MAX_JSON_BYTES} bytes")
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CapabilitiesError(f"capability report is not JSON: {exc}") from exc
    else:
        parsed = data
    if not isinstance(parsed, Mapping):
        raise CapabilitiesError("capability report is not a JSON object")
    channels = parsed.get("max_channels")
    return Capabilities(
        mse=parsed.get("mse") is True,
        native_hls=parsed.get("native_hls") is True,
        mse_codecs=_keys(parsed.get("mse_codecs"), CODEC_KEYS),
        file_codecs=_keys(parsed.get("file_codecs"), CODEC_KEYS),
        containers=_keys(parsed.get("containers"), CONTAINER_KEYS),
        max_channels=channels
        if isinstance(channels, int) and not isinstance(channels, bool) and 1 <= channels <= 32
        else 2,
    )


def _keys(value: object, known: frozenset[str]) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value[:MAX_LIST_ITEMS] if isinstance(item, str)) & known


# -- the User-Agent families as capability sets --------------------------------------------

_H264 = frozenset({"h264_baseline", "h264_main", "h264_high"})
_OPEN = frozenset({"av1", "av1_10", "vp9", "vp9_10", "vp8"})
_FAMILY_NAMES: dict[BrowserFamily, str] = {
    "chrome": "Chrome",
    "firefox": "Firefox",
    "safari": "Safari",
    "generic": "this browser",
}


def _family(
    family: BrowserFamily,
    *,
    mse: bool,
    native_hls: bool,
    segment: Iterable[str],
    file: Iterable[str],
    containers: Iterable[str],
) -> Capabilities:
    return Capabilities(
        mse=mse,
        native_hls=native_hls,
        mse_codecs=frozenset(segment) if mse else frozenset(),
        file_codecs=frozenset(file),
        containers=frozenset(containers),
        name=_FAMILY_NAMES[family],
        measured=False,
    )


# Chrome and Firefox as the older rules saw them: the same codecs, MKV not opened.
_DESKTOP = {
    "mse": True,
    "native_hls": False,
    "segment": _H264 | _OPEN | {"aac", "mp3"},
    "file": _H264 | _OPEN | {"aac", "mp3", "opus", "flac", "vorbis"},
    "containers": ("mp4", "webm"),
}
FAMILY_CAPABILITIES: dict[BrowserFamily, Capabilities] = {
    "chrome": _family("chrome", **_DESKTOP),  # type: ignore[arg-type]
    "firefox": _family("firefox", **_DESKTOP),  # type: ignore[arg-type]
    "safari": _family(
        "safari",
        mse=False,  # Safari's own HLS player decides; what it plays from MP4 is the measure
        native_hls=True,
        segment=(),
        file=_H264 | {"hevc_main_hvc1", "hevc_main10_hvc1", "aac", "mp3", "ac3", "eac3", "flac"},
        containers=("mp4",),
    ),
    "generic": _family(
        "generic",
        mse=True,
        native_hls=False,
        segment=_H264 | {"aac", "mp3"},
        file=_H264 | {"aac", "mp3"},
        containers=("mp4",),
    ),
}


def for_family(family: BrowserFamily) -> Capabilities:
    """The assumed capabilities of a User-Agent family (``compat.browser_family``)."""
    return FAMILY_CAPABILITIES[family]
