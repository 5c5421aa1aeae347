"""Text subtitles as WebVTT, the one format every browser's ``<track>`` and hls.js read.

Tracks inside the film (SRT, ASS/SSA, mov_text, WebVTT) are extracted by ffmpeg from the same
source the player reads (a URL of a file still downloading works), and handed over cue by cue
as ffmpeg reaches them (``stream_webvtt``): nothing waits for the whole file. ASS styling is
reduced to what WebVTT has (bold, italic). External ``.srt`` files are converted here, in
Python (``srt_to_webvtt``): they are small and often not UTF-8.

Image subtitles (PGS, VobSub) cannot become text; ``compat.PlaybackPlan.image_subtitles``
lists them and ``argv.HlsOutput(burn_subtitle=...)`` draws one into a transcode.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator

from transcode.argv import FFMPEG, input_args, input_target
from transcode.process import Process, ProcessError

WEBVTT_CONTENT_TYPE = "text/vtt; charset=utf-8"
MAX_SRT_BYTES = 16 * 1024 * 1024


class SubtitleError(Exception):
    """A subtitle track could not be converted; the message is meant for people."""


def webvtt_argv(
    source: str,
    stream_index: int,
    *,
    start: float | None = None,
    io_timeout: float | None = None,
    ffmpeg: str = FFMPEG,
) -> list[str]:
    """ffmpeg writing stream ``stream_index`` (ffprobe's index) of ``source`` as WebVTT to
    stdout, one cue at a time. ``start`` skips to a point of the film (cue times stay film
    times)."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    argv += input_args(source, io_timeout=io_timeout)
    if start is not None and start > 0:
        argv += ["-ss", f"{start:.3f}", "-copyts"]
    argv += ["-i", input_target(source), "-map", f"0:{stream_index}", "-c:s", "webvtt"]
    argv += ["-flush_packets", "1", "-f", "webvtt", "pipe:1"]
    return argv


async def stream_webvtt(
    source: str,
    stream_index: int,
    *,
    start: float | None = None,
    io_timeout: float | None = None,
    ffmpeg: str = FFMPEG,
) -> AsyncGenerator[bytes, None]:
    """The track as WebVTT, in pieces as ffmpeg produces them (a response can send each one
    on). Closing the iterator early (the player went away) kills ffmpeg; a failure raises
    ``SubtitleError``."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    argv = webvtt_argv(source, stream_index, start=start, io_timeout=io_timeout, ffmpeg=ffmpeg)
    process = Process(argv, on_stdout_line=queue.put_nowait)
    await process.start()
    waiter = asyncio.create_task(process.wait(check=False))
    getter: asyncio.Task[bytes] | None = None
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            returncode = waiter.result()
            if returncode != 0:
                failure = ProcessError(process.argv, returncode, process.stderr_tail)
                raise SubtitleError(f"subtitle track {stream_index} failed: {failure}")
            return
    finally:
        # Closed early (the player went away): no task of ours is left pending.
        for task in (getter, waiter):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await process.kill()


# -- SRT files -----------------------------------------------------------------------------

_SRT_TIME = re.compile(
    r"^\s*(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
)
_TAG = re.compile(r"<(?!/?(?:b|i|u)>)[^>]*>|\{\\[^}]*\}", re.IGNORECASE)


def decode_subtitle_file(data: bytes) -> str:
    """Text of a subtitle file: UTF-8 (with or without BOM), UTF-16 with BOM, else
    Windows-1252, which most old European SRT files are."""
    if len(data) > MAX_SRT_BYTES:
        raise SubtitleError(f"subtitle file larger than {MAX_SRT_BYTES // (1024 * 1024)} MiB")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def srt_to_webvtt(text: str) -> str:
    """SubRip text → WebVTT (pure). Cue numbers go, commas in times become dots, tags other
    than b/i/u and ASS overrides are dropped, and a blank line inside a cue's text (which
    would end the cue in WebVTT) is removed. Malformed cues are skipped, not fatal."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[str] = []
    i = 0
    while i < len(lines):
        match = _SRT_TIME.match(lines[i])
        if not match:
            i += 1
            continue
        g = [int(x) for x in match.groups()]
        start = _vtt_time(g[0], g[1], g[2], g[3], match.group(4))
        end = _vtt_time(g[4], g[5], g[6], g[7], match.group(8))
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip():
            if _SRT_TIME.match(lines[i]):
                break
            body.append(_escape(_TAG.sub("", lines[i])))
            i += 1
        # A number followed by a timing line is the next cue's number, not text.
        if body and body[-1].strip().isdigit() and i < len(lines) and _SRT_TIME.match(lines[i]):
            body.pop()
        if body and any(line.strip() for line in body):
            cues.append(f"{start} --> {end}\n" + "\n".join(body))
    return "WEBVTT\n\n" + "".join(cue + "\n\n" for cue in cues)


_ENTITY = re.compile(r"&(?!(?:amp|lt|gt|nbsp|lrm|rlm|#\d+|#x[0-9a-f]+);)", re.IGNORECASE)
_STRAY_LT = re.compile(r"<(?!/?(?:b|i|u)>)", re.IGNORECASE)


def _escape(line: str) -> str:
    """Text as WebVTT wants it: & and stray < escaped, no "-->" inside a cue."""
    line = _ENTITY.sub("&amp;", line)
    return _STRAY_LT.sub("&lt;", line).replace("-->", "->")


def _vtt_time(hours: int, minutes: int, seconds: int, millis: int, raw_millis: str) -> str:
    millis = int(raw_millis.ljust(3, "0"))  # ",5" is 500 ms
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
