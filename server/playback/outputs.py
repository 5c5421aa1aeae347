"""The name of an HLS output in URLs: which streams of the film, copied or re-encoded (pure).

A player's playlist, init and segment URLs carry the output's name
(``/hls/{job_id}/{output}/3.m4s``), so a session stopped while the player paused (idle, or
pushed out by another viewer) is made again, identical, from the URL alone: the name says
everything ``HlsOutput`` needs beyond the film's own facts (its codecs, HDR), and those come
from the probe. Names are short and use only ``[A-Za-z0-9_.-]`` (session keys and paths):

    v0c            video stream 0 copied          v0c-hvc1   ... and tagged hvc1
    v0t            video stream 0 made H.264      a1c        audio stream 1 copied
    a1t2 / a1t6    audio stream 1 made AAC, stereo or 5.1
    b3             image subtitle stream 3 burned in (forces the video to be made H.264)

joined with "." in that order: ``v0c.a1t2``, ``v0t.a1c.b3``, ``a1t2`` (sound only).
"""

from __future__ import annotations

import re

from transcode.argv import HlsOutput, VideoEncoder
from transcode.compat import IMAGE_SUBTITLES, PlaybackPlan
from transcode.probe import MediaInfo

_NAME = re.compile(
    r"(?:v(?P<v>\d{1,3})(?P<vact>[ct])(?:-(?P<tag>hvc1|hev1))?)?"
    r"(?:(?(v)\.)a(?P<a>\d{1,3})(?P<aact>[ct])(?P<ch>[26])?)?"
    r"(?:\.b(?P<b>\d{1,3}))?"
)


class BadOutput(ValueError):
    """The name is not one this module makes, or does not fit the film."""


def output_for(plan: PlaybackPlan, *, burn: int | None = None) -> HlsOutput:
    """The HLS output of an HLS plan (``burn``: an image subtitle to draw in)."""
    return HlsOutput.from_plan(plan, burn_subtitle=burn)


def output_name(output: HlsOutput) -> str:
    parts = []
    if output.video_stream is not None:
        video = f"v{output.video_stream}{'c' if output.copy_video else 't'}"
        if output.copy_video and output.video_tag:
            video += f"-{output.video_tag}"
        parts.append(video)
    if output.audio_stream is not None:
        audio = f"a{output.audio_stream}{'c' if output.copy_audio else 't'}"
        if not output.copy_audio:
            audio += "6" if output.audio_channels >= 6 else "2"
        parts.append(audio)
    if output.burn_subtitle is not None:
        parts.append(f"b{output.burn_subtitle}")
    if not parts:
        raise BadOutput("an output needs a video or an audio stream")
    return ".".join(parts)


def parse_output(name: str, info: MediaInfo, encoder: VideoEncoder | None = None) -> HlsOutput:
    """The output a name stands for, checked against the film: each stream must exist and be
    of its kind, a copied stream must not be burned into, a burned one must be an image
    subtitle. Raises ``BadOutput``."""
    match = _NAME.fullmatch(name) if name else None
    if match is None or not (match["v"] or match["a"]):
        raise BadOutput(f"{name!r} is not an output name")
    streams = {s.index: s for s in info.streams}
    video = audio = None
    if match["v"] is not None:
        video = streams.get(int(match["v"]))
        if video is None or video.kind != "video":
            raise BadOutput(f"the film has no video stream {match['v']}")
    if match["a"] is not None:
        audio = streams.get(int(match["a"]))
        if audio is None or audio.kind != "audio":
            raise BadOutput(f"the film has no audio stream {match['a']}")
    copy_video = match["vact"] == "c"
    copy_audio = match["aact"] == "c"
    if audio is not None and not copy_audio and match["ch"] is None:
        raise BadOutput(f"{name!r} does not say how many channels the sound gets")
    burn: int | None = None
    if match["b"] is not None:
        sub = streams.get(int(match["b"]))
        if sub is None or sub.kind != "subtitle" or sub.codec not in IMAGE_SUBTITLES:
            raise BadOutput(f"the film has no image subtitle stream {match['b']}")
        if copy_video or video is None:
            raise BadOutput("a subtitle is burned only into video that is made anew")
        burn = sub.index
    return HlsOutput(
        video_stream=video.index if video is not None else None,
        audio_stream=audio.index if audio is not None else None,
        copy_video=copy_video and video is not None,
        copy_audio=copy_audio and audio is not None,
        audio_channels=int(match["ch"] or 2),
        video_tag=match["tag"] if copy_video else None,
        audio_codec=audio.codec if audio is not None and copy_audio else None,
        tonemap=video is not None and not copy_video and video.hdr is not None,
        burn_subtitle=burn,
        encoder=encoder or VideoEncoder(),
    )
