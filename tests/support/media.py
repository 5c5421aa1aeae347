"""Real little movies made with ffmpeg, for tests that need a player or ffprobe to agree.

``make_movie`` writes one H.264 clip where a test asks. ``ReleaseClips`` makes release-shaped
clips (MKV with AC3/DTS/E-AC3, HEVC 10-bit, SRT/ASS tracks, AVI XviD, MP4 HEVC) once per test
run: each clip's file name carries a digest of its ffmpeg argv, so a changed recipe is a new
file and an unchanged one is made once, whichever test asks first (fixture ``release_clips``).
Every clip's sound is a sine tone (440 Hz, 880 Hz in a second track), so a test can hear it.

Also a command, for the benchmarks (bench/ never imports tests/):
``python -m tests.support.media DIR NAME [NAME...] [--seconds S] [--size WxH]`` prints the paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest


def make_movie(
    path: Path,
    *,
    seconds: float = 10.0,
    size: str = "640x360",
    faststart: bool = False,
    audio: str = "aac",
    bitrate: str = "2M",
) -> Path:
    """H.264 + audio in the container named by ``path``'s suffix (.mp4, .mkv, .webm...).

    MP4 without ``faststart`` keeps its moov atom at the end, as most releases do: the
    case that makes a progressive player ask for the file's tail first.
    """
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", "50",
        "-pix_fmt", "yuv420p", "-c:a", audio,
    ]  # fmt: skip
    if path.suffix == ".mp4" and faststart:
        argv += ["-movflags", "+faststart"]
    argv.append(str(path))
    subprocess.run(argv, check=True, capture_output=True)
    return path


# -- release-shaped clips ------------------------------------------------------------------

TONE = 440  # Hz of every clip's first audio track
SECOND_TONE = 880  # of a second audio track, to tell which one plays
FPS = 24
SURROUND = "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0"  # the tone on every channel

SRT_ENGLISH = """1
00:00:00,500 --> 00:00:02,000
Hello from the first subtitle

2
00:00:03,000 --> 00:00:05,000
A second line, <i>in italics</i>

3
00:00:09,000 --> 00:00:11,000
Near the end
"""
SRT_GERMAN = """1
00:00:00,500 --> 00:00:02,000
Hallo aus dem ersten Untertitel

2
00:00:06,000 --> 00:00:08,000
Größe & Übermut
"""
ASS_SCRIPT = """[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,\
2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.50,0:00:02.00,Default,,0,0,0,,{\\b1}Styled{\\b0} first line
Dialogue: 0,0:00:04.00,0:00:06.00,Default,,0,0,0,,Second\\Nline break
"""


@dataclass(frozen=True)
class Recipe:
    """How one clip is made: ffmpeg arguments between the inputs and the output name."""

    name: str  # file name without the digest; its suffix is the container
    description: str
    video: tuple[str, ...]  # video encoder arguments
    audio: tuple[tuple[str, ...], ...]  # one tuple of arguments per audio track
    subtitles: tuple[tuple[str, str, str], ...] = ()  # (file name, codec, language)
    extra: tuple[str, ...] = ()


X264 = ("-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p", "-g", str(FPS))
X265_MAIN10 = (
    "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
    "-x265-params", f"log-level=error:keyint={FPS * 2}:min-keyint={FPS}",
)  # fmt: skip
X265_MAIN = ("-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
             "-x265-params", f"log-level=error:keyint={FPS * 2}:min-keyint={FPS}")  # fmt: skip
XVID = ("-c:v", "mpeg4", "-vtag", "XVID", "-q:v", "5", "-g", str(FPS * 2))
STEREO_AAC = ("-c:a", "aac", "-b:a", "128k", "-ac", "2")

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("h264-aac.mkv", "MKV H.264 + AAC", X264, (STEREO_AAC,)),
        Recipe(
            "h264-ac3-2srt.mkv",
            "MKV H.264 + AC3 5.1 + two SRT tracks",
            X264,
            (("-c:a", "ac3", "-b:a", "384k", "-af", SURROUND),),
            (("eng.srt", "srt", "eng"), ("ger.srt", "srt", "ger")),
        ),
        Recipe(
            "h264-dts.mkv",
            "MKV H.264 + DTS 5.1",
            X264,
            (("-c:a", "dca", "-strict", "-2", "-af", SURROUND),),
        ),
        Recipe(
            "hevc10-eac3-ass.mkv",
            "MKV HEVC Main10 + E-AC3 5.1 + ASS",
            X265_MAIN10,
            (("-c:a", "eac3", "-b:a", "384k", "-af", SURROUND),),
            (("styled.ass", "ass", "eng"),),
        ),
        Recipe("xvid-mp3.avi", "AVI XviD + MP3", XVID, (("-c:a", "libmp3lame", "-b:a", "128k"),)),
        Recipe("hevc-aac.mp4", "MP4 HEVC (hvc1) + AAC", X265_MAIN, (STEREO_AAC,)),
        Recipe("h264-aac.mp4", "MP4 H.264 + AAC, moov at the end", X264, (STEREO_AAC,)),
        Recipe(
            "h264-2audio.mkv",
            "MKV H.264 + AC3 (eng, 440 Hz) + AAC (ger, 880 Hz)",
            X264,
            (("-c:a", "ac3", "-b:a", "192k"), STEREO_AAC),
        ),
    )
}
SUBTITLE_TEXT = {"eng.srt": SRT_ENGLISH, "ger.srt": SRT_GERMAN, "styled.ass": ASS_SCRIPT}


# Audio options written for one track, given the number of that track.
_PER_TRACK = {"-c:a": "-c:a:{}", "-b:a": "-b:a:{}", "-ac": "-ac:a:{}", "-af": "-filter:a:{}"}


def clip_argv(
    recipe: Recipe, output: Path, *, seconds: float, size: str, subs_dir: Path
) -> list[str]:
    """The ffmpeg command that makes ``recipe`` (pure): lavfi test picture and sine tones."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-threads", "2",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"]  # fmt: skip
    tones = (TONE, SECOND_TONE)
    for n in range(len(recipe.audio)):
        argv += ["-f", "lavfi", "-i",
                 f"sine=frequency={tones[n % 2]}:sample_rate=48000:duration={seconds}"]  # fmt: skip
    for sub_name, _, _ in recipe.subtitles:
        argv += ["-i", str(subs_dir / sub_name)]
    argv += ["-map", "0:v"]
    for n in range(len(recipe.audio)):
        argv += ["-map", f"{1 + n}:a"]
    for n in range(len(recipe.subtitles)):
        argv += ["-map", f"{1 + len(recipe.audio) + n}:s"]
    argv += list(recipe.video)
    for n, track in enumerate(recipe.audio):
        argv += [_PER_TRACK[a].format(n) if a in _PER_TRACK else a for a in track]
        argv += [f"-metadata:s:a:{n}", f"language={('eng', 'ger')[n % 2]}"]
    for n, (_, codec, language) in enumerate(recipe.subtitles):
        argv += [f"-c:s:{n}", codec, f"-metadata:s:s:{n}", f"language={language}"]
    if len(recipe.subtitles) > 1:
        argv += ["-metadata:s:s:1", "title=Deutsch"]
    argv += list(recipe.extra)
    argv.append(str(output))
    return argv


@dataclass(frozen=True)
class MadeClip:
    path: Path
    seconds: float  # how long ffmpeg took to make it (0 when it was already there)


class ReleaseClips:
    """Release-shaped clips under ``directory``, made on first use (thread-safe)."""

    def __init__(
        self,
        directory: Path,
        *,
        seconds: float = 20.0,
        size: str = "320x180",
        video_bitrate: str | None = None,
    ) -> None:
        self.directory = directory
        self.seconds = seconds
        self.size = size
        # A floor for the video's bit rate (XviD keeps its fixed quality): bigger files, so
        # that a throttled download has a middle part left when the ends are in.
        self.video_bitrate = video_bitrate
        self.made: dict[str, float] = {}  # name -> seconds ffmpeg took, this run
        self._lock = threading.Lock()

    def path(self, name: str, *, seconds: float | None = None, size: str | None = None) -> Path:
        return self.make(name, seconds=seconds, size=size).path

    def make(self, name: str, *, seconds: float | None = None, size: str | None = None) -> MadeClip:
        recipe = RECIPES[name]
        if self.video_bitrate and "-q:v" not in recipe.video:
            recipe = replace(recipe, extra=(*recipe.extra, "-b:v", self.video_bitrate))
        seconds = seconds or self.seconds
        size = size or self.size
        subs = self.directory / "subs"
        probe_argv = clip_argv(recipe, Path(name), seconds=seconds, size=size, subs_dir=Path())
        digest = hashlib.sha256("\0".join(probe_argv).encode()).hexdigest()[:12]
        stem, dot, suffix = name.rpartition(".")
        output = self.directory / f"{stem}-{digest}{dot}{suffix}"
        with self._lock:
            if output.exists():
                return MadeClip(output, 0.0)
            subs.mkdir(parents=True, exist_ok=True)
            for sub_name, text in SUBTITLE_TEXT.items():
                (subs / sub_name).write_text(text, encoding="utf-8")
            partial = output.with_name(f".{output.name}.part{output.suffix}")
            argv = clip_argv(recipe, partial, seconds=seconds, size=size, subs_dir=subs)
            started = time.monotonic()
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"cannot make {name}: {done.stderr.strip()[-2000:]}")
            os.replace(partial, output)
            took = time.monotonic() - started
            self.made[name] = took
            return MadeClip(output, took)


@pytest.fixture(scope="session")
def release_clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseClips]:
    """The release-shaped clips, 20 s at 320x180, made once per test run, here: a sync
    fixture runs outside the event loop, so no async test waits on ffmpeg while it holds
    the loop (about 5 s for all of them, two at a time)."""
    clips = ReleaseClips(tmp_path_factory.mktemp("release-clips"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(clips.make, sorted(RECIPES)))
    yield clips


def codecs_of(data: bytes, path: Path) -> list[str]:
    """The codecs ffprobe finds in ``data`` (e.g. an init segment and a first segment),
    written to ``path`` first (blocking)."""
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [s["codec_name"] for s in json.loads(out)["streams"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="320x180")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    clips = ReleaseClips(args.directory, seconds=args.seconds, size=args.size)
    for name in args.names:
        made = clips.make(name)
        print(f"{name}\t{made.path}\t{made.seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
