"""One HLS session: ffmpeg turning one source (a URL or a file) into fMP4 segments for one
player, restarted where the player seeks.

The player gets a VOD playlist over the whole film at once (``transcode.playlist``). A
request for a segment that the running ffmpeg has produced, or will within ``max_ahead``
segments, waits for it; anything else (behind the run, far ahead, or after the run died)
restarts ffmpeg at that segment's keyframe (``needs_restart``, pure). Each run writes into
its own directory; ffmpeg renames a segment only when it is complete and lists it in its
playlist, which a watcher polls to wake waiters, prune what the player has passed and
pause a run that is ``buffer_ahead`` seconds ahead of the player (SIGSTOP, not a kill: a
remux of a finished file would otherwise copy the whole film to disk in a minute).

Copied video is cut by ffmpeg at every keyframe; a playlist segment is the run's pieces from
its start to the next segment's, concatenated (their ``styp``/``sidx`` boxes dropped: they
describe one piece, not the segment). Without a keyframe index (AVI, MPEG-TS) the session
serves ffmpeg's own pieces as an event playlist instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcode.argv import (
    FFMPEG,
    INIT_NAME,
    PLAYLIST_NAME,
    HlsOutput,
    hls_argv,
)
from transcode.keyframes import mp4_boxes
from transcode.playlist import (
    Segment,
    WrittenPlaylist,
    build_segments,
    parse_written,
    render_event,
    render_vod,
    uniform_cuts,
)
from transcode.process import Process, ProcessError

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between looks at ffmpeg's playlist while a run is going
MAX_AHEAD = 3  # segments a request may be beyond the run's progress and still wait
BUFFER_AHEAD = 60.0  # seconds of film a run may produce beyond the player before pausing
KEEP_BEHIND = 2  # segments kept behind the player's last request (a short seek back)
SEGMENT_TIMEOUT = 120.0  # a run that produces nothing for this long has failed
# ffmpeg's seek lands on the keyframe before its target when the video has B-frames (it
# subtracts 3/23 s): a copied run seeks this far past the keyframe it wants.
SEEK_PAST_KEYFRAME = 0.2
EPSILON = 0.05  # seconds: piece start times within this of a cut are on it


class HlsError(Exception):
    """A segment could not be produced; the message is meant for the player."""


class SessionClosed(HlsError):
    """The session was closed while a request waited."""


# -- the restart rule (pure) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunState:
    """What a running ffmpeg covers: segments ``first`` .. ``produced`` are complete
    (``produced == first - 1`` before the first one), ``alive`` while it still runs."""

    first: int
    produced: int
    alive: bool


def needs_restart(requested: int, run: RunState | None, *, max_ahead: int = MAX_AHEAD) -> bool:
    """Whether serving segment ``requested`` needs a new ffmpeg run starting at it."""
    if run is None or requested < run.first:
        return True
    if requested <= run.produced:
        return False
    if not run.alive:
        return True
    return requested > run.produced + max_ahead


# -- one ffmpeg run ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    number: int  # ffmpeg's file number
    start: float  # film time of its first keyframe
    duration: float


class _Run:
    def __init__(self, number: int, first: int, start: float, directory: Path) -> None:
        self.number = number
        self.first = first  # playlist segment it starts at
        self.start = start
        self.directory = directory
        self.process: Process | None = None
        self.pieces: list[Piece] = []
        self.ended = False  # ffmpeg wrote #EXT-X-ENDLIST
        self.paused = False
        # Film time before which the run's pieces were deleted (the player passed them): a
        # segment there is no longer produced, and asking for it again restarts ffmpeg.
        self.pruned_before = -math.inf
        self.started = time.monotonic()
        self.timed = False  # its speed was reported
        self._mtime_ns = -1

    @property
    def made_until(self) -> float:
        """Film time up to which it has written pieces."""
        return self.pieces[-1].start + self.pieces[-1].duration if self.pieces else self.start

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def refresh(self) -> bool:
        """Re-read ffmpeg's playlist if it changed; whether anything new is there."""
        path = self.directory / PLAYLIST_NAME
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime == self._mtime_ns:
            return False
        self._mtime_ns = mtime
        written = parse_written(path.read_text(encoding="utf-8", errors="replace"))
        return self._take(written)

    def _take(self, written: WrittenPlaylist) -> bool:
        pieces = []
        position = self.start
        for number, duration in written.entries:
            pieces.append(Piece(number, position, duration))
            position += duration
        changed = len(pieces) != len(self.pieces) or written.ended != self.ended
        self.pieces = pieces
        self.ended = written.ended
        return changed


# -- the session ---------------------------------------------------------------------------


class HlsSession:
    """HLS for one source and one output. ``playlist``, ``init`` and ``segment`` are what the
    routes serve; ``close`` stops ffmpeg and removes every file of the session."""

    def __init__(
        self,
        source: str,
        output: HlsOutput,
        directory: Path,
        *,
        keyframes: Sequence[float] | None,
        duration: float | None,
        ffmpeg: str = FFMPEG,
        max_ahead: int = MAX_AHEAD,
        buffer_ahead: float = BUFFER_AHEAD,
        segment_timeout: float = SEGMENT_TIMEOUT,
        io_timeout: float | None = None,
        on_speed: Callable[[float], object] | None = None,
    ) -> None:
        self.source = source
        #: Told, once per ffmpeg run, the film seconds it made per second while it ran
        #: unpaused (at its first pause, its end, or when it is stopped).
        self.on_speed = on_speed
        self.output = output
        self.directory = directory
        self.ffmpeg = ffmpeg
        self.max_ahead = max_ahead
        self.buffer_ahead = buffer_ahead
        self.segment_timeout = segment_timeout
        self.io_timeout = io_timeout
        self.segments: tuple[Segment, ...] | None = None
        self.cuts: tuple[float, ...] = ()
        if duration is not None and duration > 0:
            if output.video_stream is not None and output.copy_video:
                if keyframes:
                    self.cuts = tuple(sorted(keyframes))
                    self.segments = build_segments(self.cuts, max(duration, self.cuts[-1]))
            else:
                # A transcode (or sound alone) makes its own cut points.
                self.cuts = uniform_cuts(0.0, duration)
                self.segments = build_segments(self.cuts, duration)
        self.last_used = time.monotonic()
        self.restarts = 0
        self._run: _Run | None = None
        self._runs = 0
        self._init: bytes | None = None
        self._requested = 0
        self._changed = asyncio.Condition()
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._error: HlsError | None = None

    @property
    def vod(self) -> bool:
        """A playlist over the whole film (else an event playlist of what is produced)."""
        return self.segments is not None

    # -- what the routes serve -------------------------------------------------------------

    async def playlist(self, *, init_uri: str, segment_uri: Callable[[int], str]) -> str:
        self._touch()
        if self.segments is not None:
            return render_vod(self.segments, init_uri=init_uri, segment_uri=segment_uri)
        async with self._lock:
            if self._run is None:
                await self._start(0)
        run = self._run
        assert run is not None
        written = WrittenPlaylist(tuple((p.number, p.duration) for p in run.pieces), run.ended)
        return render_event(written, init_uri=init_uri, segment_uri=segment_uri)

    async def init(self) -> bytes:
        """The initialisation segment (the same for every run of one output)."""
        self._touch()
        if self._init is not None:
            return self._init
        async with self._lock:
            if self._run is None:
                await self._start(0)
        while self._init is None:
            run = self._current()
            path = run.directory / INIT_NAME
            if run.pieces and path.exists():
                self._init = path.read_bytes()
                break
            if not run.alive and not run.refresh():
                self._raise_for(run, run.first)
            await self._wait_change(run)
        return self._init

    async def segment(self, index: int) -> bytes:
        """Segment ``index`` of the playlist, waiting for it (and restarting ffmpeg there when
        it is far from what the running one produces)."""
        self._touch()
        count = len(self.segments) if self.segments is not None else None
        if index < 0 or (count is not None and index >= count):
            raise HlsError(f"no segment {index}")
        self._requested = index
        async with self._lock:
            run = self._run
            state = None
            if run is not None:
                state = RunState(self._first_whole(run), self._produced(run), run.alive)
            if self.segments is None:
                # Event playlist: one run from the start; only what it made can be served.
                if run is None:
                    await self._start(0)
            elif needs_restart(index, state, max_ahead=self.max_ahead):
                await self._start(index)
            elif run is not None:
                self._steer(run)  # a paused run resumes when the player comes near
        while True:
            run = self._current()
            pieces = self._pieces_of(run, index)
            if pieces is not None:
                data = self._read(run, pieces)
                self._steer(run)
                return data
            if not run.alive and not run.refresh():
                self._raise_for(run, index)
            await self._wait_change(run)

    async def close(self) -> None:
        """Stop ffmpeg (reaped) and remove the session's files. Idempotent."""
        self._closed = True
        async with self._changed:
            self._changed.notify_all()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        run, self._run = self._run, None
        if run is not None:
            await self._stop(run)
        await asyncio.to_thread(shutil.rmtree, self.directory, True)

    # -- runs ------------------------------------------------------------------------------

    async def _start(self, first: int) -> None:
        """Replace the running ffmpeg by one starting at segment ``first``."""
        if self._closed:
            raise SessionClosed("the stream was closed")
        old, self._run = self._run, None
        if old is not None:
            self.restarts += 1
            await self._stop(old)
            await asyncio.to_thread(shutil.rmtree, old.directory, True)
        start = self.segments[first].start if self.segments is not None else 0.0
        self._runs += 1
        directory = self.directory / f"run-{self._runs}"
        directory.mkdir(parents=True, exist_ok=True)
        run = _Run(self._runs, first, start, directory)
        seek = start
        if start > 0 and self.output.copy_video:
            following = [c for c in self.cuts if c > start + 0.001]
            gap = (following[0] - start) if following else SEEK_PAST_KEYFRAME * 2
            seek = start + min(SEEK_PAST_KEYFRAME, gap / 2)
        # Copied video: a piece per keyframe, numbered by the keyframe's position, so piece
        # numbers stay unique across runs. A transcode's pieces are the segments themselves.
        number = first
        if self.segments is not None and self.output.copy_video:
            number = self._cut_index(start)
        argv = hls_argv(
            self.source,
            self.output,
            directory,
            start_number=number,
            start_time=start,
            seek_time=seek,
            cuts=self.cuts,
            io_timeout=self.io_timeout,
            ffmpeg=self.ffmpeg,
        )
        process = Process(argv, stdout_limit=64 * 1024)
        await process.start()
        run.process = process
        self._run = run
        self._error = None
        # The source is left out: its URL may carry a credential (a token, a presigned link).
        shown = ["<source>" if arg == self.source else arg for arg in argv]
        log.debug("hls run %d from segment %d (%.3f s): %s", run.number, first, start, shown)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch())

    async def _stop(self, run: _Run) -> None:
        self._time(run)
        if run.process is not None:
            await run.process.kill()

    def _time(self, run: _Run) -> None:
        if run.timed or not run.pieces or self.on_speed is None:
            return
        run.timed = True
        wall = time.monotonic() - run.started
        if wall > 0:
            self.on_speed((run.made_until - run.start) / wall)

    def _current(self) -> _Run:
        if self._closed:
            raise SessionClosed("the stream was closed")
        if self._run is None:
            raise HlsError("no ffmpeg is running for this stream")
        return self._run

    async def _watch(self) -> None:
        """Poll the current run's playlist; wake waiters when it changes or ffmpeg exits."""
        while not self._closed:
            run = self._run
            if run is not None:
                changed = run.refresh()
                if changed or (run.process is not None and run.process.returncode is not None):
                    async with self._changed:
                        self._changed.notify_all()
                if changed:
                    if run.ended:
                        self._time(run)
                    self._steer(run)
            await asyncio.sleep(POLL)

    async def _wait_change(self, run: _Run) -> None:
        """Wait until the run's output changes, failing after ``segment_timeout``."""
        try:
            async with asyncio.timeout(self.segment_timeout), self._changed:
                await self._changed.wait()
        except TimeoutError:
            raise HlsError(
                f"ffmpeg produced nothing for {self.segment_timeout:g} s (is the download stuck?)"
            ) from None
        if self._closed:
            raise SessionClosed("the stream was closed")

    def _raise_for(self, run: _Run, index: int) -> None:
        process = run.process
        if process is not None and process.returncode not in (0, None):
            failure = ProcessError(process.argv, process.returncode, process.stderr_tail)
            raise HlsError(f"the stream failed at segment {index}: {failure}")
        if run.ended or (process is not None and process.returncode == 0):
            reached = run.pieces[-1].start + run.pieces[-1].duration if run.pieces else run.start
            said = process.stderr_tail.strip().splitlines()[-1:] if process is not None else []
            detail = f" ({said[0].strip()})" if said else ""
            raise HlsError(
                f"the film could not be read past {reached:.1f} s, before segment {index}: "
                f"damaged or missing data{detail}"
            )
        raise HlsError(f"ffmpeg stopped before segment {index}")

    # -- mapping ffmpeg's pieces to playlist segments --------------------------------------

    def _cut_index(self, time_: float) -> int:
        for i, cut in enumerate(self.cuts):
            if cut >= time_ - EPSILON:
                return i
        return len(self.cuts)

    def _first_whole(self, run: _Run) -> int:
        """The run's first segment whose pieces are all still on disk."""
        if self.segments is None or run.pruned_before == -math.inf:
            return run.first
        index = run.first
        while index < len(self.segments) and (
            self.segments[index].start < run.pruned_before - EPSILON
        ):
            index += 1
        return index

    def _produced(self, run: _Run) -> int:
        """The last playlist segment the run has completed (``first - 1`` for none)."""
        produced = run.first - 1
        if self.segments is None:
            return produced + len(run.pieces)
        index = self._first_whole(run)
        produced = index - 1
        while index < len(self.segments) and self._pieces_of(run, index) is not None:
            produced = index
            index += 1
        return produced

    def _pieces_of(self, run: _Run, index: int) -> list[Piece] | None:
        """The run's pieces that make up segment ``index``, or None while it is incomplete."""
        if self.segments is None:
            found = [p for p in run.pieces if p.number == index]
            return found or None
        if index < run.first:
            return None
        segment = self.segments[index]
        if segment.start < run.pruned_before - EPSILON:
            return None  # its pieces were deleted
        last = index == len(self.segments) - 1
        end = segment.end
        inside = [p for p in run.pieces if segment.start - EPSILON <= p.start < end - EPSILON]
        # A listed piece is finished: one that reaches the segment's end completes it. A run
        # that ended short of it (a damaged or missing stretch) does not, except at the end.
        complete = any(p.start + p.duration >= end - EPSILON for p in run.pieces) or (
            run.ended and last
        )
        if not complete or not inside:
            return None
        return inside

    def _read(self, run: _Run, pieces: Sequence[Piece]) -> bytes:
        parts = []
        for n, piece in enumerate(pieces):
            data = (run.directory / f"{piece.number}.m4s").read_bytes()
            parts.append(strip_piece_boxes(data, keep_styp=n == 0))
        return b"".join(parts)

    def _steer(self, run: _Run) -> None:
        """Prune pieces the player has passed; pause a run far ahead of it, resume it when
        the player comes near."""
        if self.segments is None or run.process is None:
            return
        requested = self._requested
        if requested < run.first:
            return
        keep_from = self.segments[max(run.first, requested - KEEP_BEHIND)].start
        for piece in run.pieces:
            if piece.start < keep_from - EPSILON:
                run.pruned_before = max(run.pruned_before, piece.start + piece.duration)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(run.directory / f"{piece.number}.m4s")
        # Measured from the end of the segment the player waits for: never pause before it.
        ahead = run.made_until - self.segments[requested].end
        if ahead > self.buffer_ahead and not run.paused and run.alive:
            self._time(run)
            run.process.pause()
            run.paused = True
        elif ahead <= self.buffer_ahead / 2 and run.paused:
            run.process.resume()
            run.paused = False

    def _touch(self) -> None:
        self.last_used = time.monotonic()


def strip_piece_boxes(data: bytes, *, keep_styp: bool) -> bytes:
    """A piece of an fMP4 segment without its ``sidx`` (and ``styp`` unless kept): they
    index one piece, and a segment made of several must not carry one piece's index."""
    out = []
    for kind, body, stop in mp4_boxes(data):
        header = (
            body - 8 if data[body - 8 + 4 : body - 8 + 8] == kind.encode("latin-1") else body - 16
        )
        if kind == "sidx" or (kind == "styp" and not keep_styp):
            continue
        out.append(data[header:stop])
    return b"".join(out)
