"""HLS playlists (pure): the segments of a whole film from its keyframes, the VOD playlist the
player gets, and the playlist ffmpeg writes as it goes.

Segments start on keyframes, because copied video can only be cut there; the first ones are
short so that playback starts after little work, the rest about ``target`` seconds. A
transcode makes its own keyframes, so ``uniform_cuts`` gives it the same shape of grid.
Times are the film's own presentation times: segment N of the playlist starts where its
first keyframe is, so a restarted ffmpeg (``-ss`` at that keyframe) continues the timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FIRST_TARGETS = (1.0, 2.0)  # seconds of the first segments: start fast
TARGET = 4.0  # seconds of every later segment
EPSILON = 0.01  # keyframe times that close to a target count as on it


@dataclass(frozen=True, slots=True)
class Segment:
    index: int
    start: float  # presentation time of its first keyframe, seconds
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def build_segments(
    keyframes: Sequence[float],
    end: float,
    *,
    first_targets: Sequence[float] = FIRST_TARGETS,
    target: float = TARGET,
) -> tuple[Segment, ...]:
    """Group ``keyframes`` (ascending presentation times) into segments ending at ``end``
    (the film's last presentation time).

    Each segment ends at the first keyframe at least its target length after its start:
    ``first_targets`` for the first ones, ``target`` after. A gap between keyframes longer
    than the target makes a longer segment; nothing is ever cut between keyframes.
    """
    times = sorted({t for t in keyframes if math.isfinite(t) and t < end - EPSILON})
    if not times:
        raise ValueError("no keyframe before the end of the film")
    segments: list[Segment] = []
    start = times[0]
    i = 0
    while True:
        length = first_targets[len(segments)] if len(segments) < len(first_targets) else target
        while i < len(times) and times[i] < start + length - EPSILON:
            i += 1
        stop = times[i] if i < len(times) else end
        # A last piece shorter than half a segment joins the one before it.
        if i < len(times) and end - stop < min(length, target) / 2:
            stop = end
        segments.append(Segment(len(segments), start, stop - start))
        if stop >= end:
            return tuple(segments)
        start = stop


def uniform_cuts(
    start: float,
    end: float,
    *,
    first_targets: Sequence[float] = FIRST_TARGETS,
    target: float = TARGET,
) -> tuple[float, ...]:
    """Cut points of a transcode (it makes a keyframe at each): the first segments short,
    then every ``target`` seconds, from ``start`` to before ``end``."""
    cuts = [start]
    position = start
    n = 0
    while True:
        length = first_targets[n] if n < len(first_targets) else target
        position += length
        n += 1
        # As in build_segments: a last piece under half a segment joins the one before.
        if end - position < min(length, target) / 2:
            return tuple(cuts)
        cuts.append(position)


def segment_at(segments: Sequence[Segment], time: float) -> Segment:
    """The segment holding ``time`` (the first or the last one beyond the ends)."""
    lo, hi = 0, len(segments) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if segments[mid].start <= time + EPSILON:
            lo = mid
        else:
            hi = mid - 1
    return segments[lo]


def render_vod(
    segments: Sequence[Segment], *, init_uri: str, segment_uri: Callable[[int], str]
) -> str:
    """The VOD playlist over the whole film: the player knows the duration at once and its
    seek bar works before ffmpeg has produced anything."""
    target = max(math.ceil(s.duration) for s in segments) if segments else 1
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{init_uri}"',
    ]
    for segment in segments:
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        lines.append(segment_uri(segment.index))
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class WrittenPlaylist:
    """What ffmpeg's own playlist says it has finished: segment numbers and durations."""

    entries: tuple[tuple[int, float], ...]  # (file number, duration)
    ended: bool  # #EXT-X-ENDLIST: ffmpeg reached the end of the input


def parse_written(text: str) -> WrittenPlaylist:
    """ffmpeg's playlist (segment files named ``<number>.m4s``); a line that is cut off (a
    playlist being rewritten) ends the parse, so only finished entries count."""
    entries: list[tuple[int, float]] = []
    duration: float | None = None
    ended = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            try:
                duration = float(line[8:].split(",", 1)[0])
            except ValueError:
                break
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#") and duration is not None:
            stem = line.rsplit("/", 1)[-1].removesuffix(".m4s")
            if not stem.isdigit():
                break
            entries.append((int(stem), duration))
            duration = None
    return WrittenPlaylist(tuple(entries), ended)


def render_event(
    written: WrittenPlaylist, *, init_uri: str, segment_uri: Callable[[int], str]
) -> str:
    """An event playlist of what ffmpeg has written so far: for files without an index,
    where the whole film's segments cannot be known in advance."""
    target = max((math.ceil(d) for _, d in written.entries), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{init_uri}"',
    ]
    for number, duration in written.entries:
        lines.append(f"#EXTINF:{duration:.6f},")
        lines.append(segment_uri(number))
    if written.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
