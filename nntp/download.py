"""A download: the files of an NZB fetched over a pool of servers into sparse files.

Each configured connection is a lane (``nntp.lanes``): it sends as much as the line's
budget allows (``nntp.line``; at most ``pipelining`` per connection) and hands each reply
back here. Decoded bytes go straight to their final offset (the decoder's FileWriter
sink); a RangeSet per file records what is on disk, persisted for resume. Readers may ask
for byte ranges, which jump the queue; a read that blocks a player is sent at once and
makes room for itself on the line. The file model is ``nntp.files``.

Which files download is decided by name where names tell (PAR2 volumes wait until a
repair needs them) and by content where they do not: of a file with a random name only
the first segment is fetched at first, and its packets say whether it is a PAR2 volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import sabctools

from nntp.connection import ServerSpec
from nntp.errors import ArticleMissing, AuthError, NntpError, TemporaryError, reply_class
from nntp.files import (
    DownloadError,
    DownloadResult,
    FileResult,
    FileTask,
    Progress,
    Selection,
    default_selection,
)
from nntp.lanes import MAX_TRANSIENT_ATTEMPTS, Lanes
from nntp.line import DEFAULT_ARTICLE, Line
from nntp.nzb import Nzb, NzbFile
from nntp.par2 import Par2Kind, par2_kind_in_name, read_par2_kind
from nntp.rangeset import RangeSet
from nntp.scheduler import Scheduler, SegmentTask, State
from nntp.state import DownloadState, FileRecord, StateFile, load_state, nzb_fingerprint

# The file model lives in nntp.files; these names stay importable from here.
__all__ = [
    "DEFAULT_READAHEAD",
    "STATE_FILE",
    "Download",
    "DownloadError",
    "DownloadResult",
    "FileResult",
    "FileTask",
    "Progress",
    "Selection",
    "default_selection",
]

log = logging.getLogger(__name__)

STATE_FILE = ".matinee-download.json"
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
WATCHED_FOR = 30.0  # seconds after a reader's last request that a download counts as watched
_ORDER = itertools.count()  # downloads on one line go first come, first served
# The state file is written after every 1/STATE_SAVE_SHARE of the download's bytes (within
# the bounds) and at least every STATE_SAVE_INTERVAL: a kill costs at most that much again
# (plus the replies in flight), on a 1 GB/s line as on a slow one. A save appends a line
# of a few hundred bytes (nntp.state): 64 of them cost ~5 ms per 2 GB download.
STATE_SAVE_INTERVAL = 2.0
STATE_SAVE_SHARE = 64
STATE_SAVE_MIN, STATE_SAVE_MAX = 1 << 20, 64 << 20
DEFAULT_READAHEAD = 8 * 1024 * 1024
EDGE_BYTES = 1024 * 1024 + 65536  # a little over the 1 MiB the job waits for at each end


class Download:
    """Use as ``async with Download(nzb, out_dir, servers) as dl: result = await dl.wait()``."""

    def __init__(
        self,
        nzb: Nzb,
        out_dir: Path,
        servers: Sequence[ServerSpec],
        *,
        select: Callable[[NzbFile], Selection] | None = None,
        state_file: Path | None = None,
        line: Line | None = None,
    ) -> None:
        if not servers:
            raise DownloadError("no Usenet server is configured")
        self.nzb = nzb
        self.out_dir = out_dir
        self.servers = sorted(servers, key=lambda s: s.priority)
        priorities = sorted({s.priority for s in self.servers})
        levels = [[s.name for s in self.servers if s.priority == p] for p in priorities]
        self.scheduler = Scheduler(levels, on_work=self._work_queued)
        # The line to the providers: shared with the other downloads when given (the job
        # manager's), else this download's own.
        self._own_line = line is None
        self.line = line or Line()
        self.state_file = state_file or out_dir / STATE_FILE
        choose = select or default_selection
        self.files: list[FileTask] = []
        for i, nf in enumerate(nzb.files):
            path = out_dir / nf.name
            tasks = [
                SegmentTask(file_index=i, index=j, segment=s) for j, s in enumerate(nf.segments)
            ]
            selection = choose(nf)
            self.files.append(
                FileTask(
                    i,
                    nf,
                    path,
                    tasks,
                    selected=selection == "fetch",
                    probing=selection == "probe",
                    par2=par2_kind_in_name(nf.name),
                )
            )
        self.progress = Progress()
        self.server_errors: dict[str, str] = {}
        self._remaining = 0
        self._complete = asyncio.Event()
        self._fatal: BaseException | None = None
        self._closing = False
        self._aux: list[asyncio.Task[None]] = []
        self._probes: set[asyncio.Task[None]] = set()
        self._readers = 0  # reader requests holding priority now
        self._watched_until = 0.0
        self._order = next(_ORDER)
        # What an article of this post weighs on the wire (the budget's unit).
        article = max((seg.bytes for f in nzb.files for seg in f.segments), default=DEFAULT_ARTICLE)
        self._lanes = Lanes(
            self.line,
            self.servers,
            self.scheduler,
            self.files,
            article=article,
            backoff=(BACKOFF_START, BACKOFF_MAX),
            priority=self.priority,
            halted=lambda: self._closing or self._fatal is not None,
            on_reply=self._handle,
            on_failed=self._segment_failed,
            on_give_up=self._give_up_server,
            on_fatal=self._fail,
        )
        self._state = DownloadState(nzb_fingerprint(nzb))
        self._state_log = StateFile(self.state_file)
        self._state_dirty = False
        self._unsaved = 0  # bytes on disk that the state file does not claim yet
        self._save_every = STATE_SAVE_MIN
        self._started = 0.0
        self._last_rate = (0.0, 0)

    # -- lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Download:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._restore)
        self._started = time.monotonic()
        self._last_rate = (self._started, 0)
        for f in self.files:
            for t in f.tasks:
                if t.state is State.DONE:
                    continue
                if f.selected:
                    t.edge = self._is_edge(f, t.index)
                    self._activate(t)
                else:
                    t.state = State.PARKED
            if f.probing:
                self._probe(f)
        self._update_totals()
        if self._remaining == 0:
            self._complete.set()
        # Read when it starts (tests shorten them).
        self._lanes.backoff = (BACKOFF_START, BACKOFF_MAX)
        self._lanes.start()
        self._aux.append(asyncio.create_task(self._saver()))

    @staticmethod
    def _is_edge(f: FileTask, index: int) -> bool:
        """Segments holding the first or last EDGE_BYTES of a file: container headers,
        MP4 moov and MKV cues are there, and a player asks for them first."""
        if index in (0, len(f.tasks) - 1):
            return True
        start = f.offset_of(index)
        return start < EDGE_BYTES or f.offset_of(index + 1) > f.estimated_size - EDGE_BYTES

    async def wait(self) -> DownloadResult:
        """Until every selected segment is on disk or definitively missing."""
        await self._complete.wait()
        if self._fatal is not None:
            raise self._fatal
        return self.result()

    async def close(self) -> None:
        """Stop all connections, persist what is on disk, close the files."""
        self._closing = True
        self._complete.set()
        self.scheduler.wake_all()
        tasks = [*self._aux, *self._probes]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._aux.clear()
        await self._lanes.close()
        if self._own_line:
            await self.line.close()
        for f in self.files:
            if f.writer is not None:
                f.writer.close()
                f.writer = None
            f.ranges.cancel_waiters(DownloadError("the download was stopped"))
        self._save_now()
        self._state_log.close()

    def result(self) -> DownloadResult:
        files = tuple(
            FileResult(
                name=f.name,
                path=str(f.path),
                size=f.size if f.size is not None else f.estimated_size,
                complete=f.complete,
                missing_segments=len(f.failed),
            )
            for f in self.files
            if f.selected
        )
        return DownloadResult(
            bytes=self.progress.bytes_this_run,
            seconds=time.monotonic() - self._started,
            files=files,
            missing_segments=sum(len(f.failed) for f in self.files if f.selected),
            server_errors=dict(self.server_errors),
        )

    # -- selection and priority --------------------------------------------------
    def _activate(self, task: SegmentTask) -> None:
        if task.state in (State.PARKED, State.PENDING) or task.state is State.FAILED:
            self._remaining += 1
            self._complete.clear()
            self.scheduler.push(task)

    def select_files(self, indexes: Sequence[int]) -> None:
        """Add parked files (e.g. PAR2 volumes a repair needs) to the download."""
        for i in indexes:
            f = self.files[i]
            if f.selected:
                continue
            f.selected = True
            for t in f.tasks:
                if t.state is State.PARKED:
                    t.edge = self._is_edge(f, t.index)
                    self._activate(t)
        self._update_totals()

    # -- deciding by content -----------------------------------------------------
    def _probe(self, f: FileTask) -> None:
        """Fetch the first segment of a file whose name says nothing, then decide."""
        # The pending decision counts as work, so that wait() cannot finish before it.
        self._remaining += 1
        self._complete.clear()
        if not f.tasks:
            self._decide(f, None)
            return
        head = f.tasks[0]
        if head.state is State.DONE:  # resumed
            self._start_decision(f)
        else:
            head.edge = True
            self._activate(head)

    def _start_decision(self, f: FileTask) -> None:
        task = asyncio.create_task(self._decide_by_head(f))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _decide_by_head(self, f: FileTask) -> None:
        size = f.size or 0
        try:
            kind = await asyncio.to_thread(read_par2_kind, f.path, min(size, f.part_size or size))
        except OSError as exc:
            log.warning("cannot read the first segment of %s: %s", f.name, exc)
            kind = None
        self._decide(f, kind)

    def _decide(self, f: FileTask, kind: Par2Kind | None) -> None:
        """A recovery volume waits like a named one; anything else downloads."""
        if not f.probing:
            return
        f.probing = False
        f.par2 = kind
        if kind == "volume":
            log.info("%s is a PAR2 recovery volume: fetched when a repair needs it", f.name)
            self._update_totals()
        else:
            self.select_files([f.index])
        self._finish_one()

    def set_file_rank(self, index: int, rank: int) -> None:
        """Lower ranks download first (the server puts the main video first)."""
        for t in self.files[index].tasks:
            t.rank = rank
            self.scheduler.reprioritise(t)

    def prioritise(
        self, index: int, start: int, end: int, readahead: int = DEFAULT_READAHEAD
    ) -> Callable[[], None]:
        """Move the segments covering [start, end + readahead) of a file to the front.

        Returns a function that releases the priority (call it when the reader goes away).
        """
        f = self.files[index]
        limit = f.size if f.size is not None else f.estimated_size
        wanted = [
            t for t in f.tasks_for(start, min(limit, end + readahead)) if t.state is not State.DONE
        ]
        for t in wanted:
            if t.state is State.PARKED:
                self._remaining += 1
                self._complete.clear()
        held = self.scheduler.want(wanted)
        released = False
        self._readers += 1
        self._watched_until = time.monotonic() + WATCHED_FOR

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._readers -= 1
                self.scheduler.release(held)

        return release

    @property
    def stopped(self) -> bool:
        """Closed, or failed for good: waiting for more bytes is pointless."""
        return self._closing or self._fatal is not None

    @property
    def failure(self) -> BaseException | None:
        return self._fatal

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise DownloadError("the download was stopped")

    async def wait_range(
        self, index: int, start: int, end: int, readahead: int = DEFAULT_READAHEAD
    ) -> None:
        """Until [start, end) of a file is on disk, prioritising it (plus ``readahead``)."""
        f = self.files[index]
        while not f.ranges.contains(start, end):
            self._raise_if_stopped()
            release = self.prioritise(index, start, end, readahead)
            self._lanes.expedite(f.tasks_for(start, end))
            try:
                # The segment estimate may be off before sizes are known: re-check when
                # anything of this file lands, not only when the whole range does.
                waiter = asyncio.ensure_future(f.ranges.wait(start, end))
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), timeout=1.0)
                except TimeoutError:
                    pass
                finally:
                    if not waiter.done():
                        waiter.cancel()
                        with contextlib.suppress(asyncio.CancelledError, NntpError):
                            await waiter
                    elif waiter.exception() is not None:
                        raise waiter.exception()  # type: ignore[misc]
            finally:
                release()

    # -- the line ----------------------------------------------------------------
    def priority(self) -> tuple[int, int]:
        """For the line: readers waiting first, then downloads being watched, then the
        others in the order they started."""
        if self._readers:
            return (0, self._order)
        if time.monotonic() < self._watched_until:
            return (1, self._order)
        return (2, self._order)

    def _work_queued(self) -> None:
        self._lanes.work_queued()

    # -- replies -----------------------------------------------------------------
    def _handle(self, spec: ServerSpec, task: SegmentTask, r: sabctools.NNTPResponse) -> None:
        code = r.status_code
        f = self.files[task.file_index]
        stats = self.line.stats_for(spec)
        if task.state is not State.IN_FLIGHT:
            return  # answered already (a copy requested elsewhere came first)
        if code == 222:
            if r.sink_failed:
                err = r.sink_error
                raise DownloadError(f"cannot write {f.path}: {err}") from err
            good = r.bytes_decoded > 0 and (r.crc is not None or r.crc_expected is None)
            good = good and r.part_end - r.part_begin == r.bytes_decoded
            if good and f.size is not None and r.file_size != f.size:
                good = False  # an article of another file: the NZB is wrong or was tampered with
            if good and r.part_end > r.file_size:
                good = False
            if not good:
                stats.corrupt += 1
                self._segment_failed(task, spec.name, "corrupt article (CRC mismatch)")
                return
            stats.articles += 1
            stats.bytes += r.bytes_decoded
            self._segment_done(f, task, r)
            return
        kind = reply_class(code)
        if kind is ArticleMissing:
            stats.missing += 1
            self._segment_failed(task, spec.name, "missing")
            return
        stats.errors += 1
        if kind is AuthError:
            self.scheduler.retry_later(task)
            self._give_up_server(spec, f"{spec.name} wants a login: {r.message}")
        elif kind is TemporaryError:
            task.attempts += 1
            if task.attempts >= MAX_TRANSIENT_ATTEMPTS:
                self._segment_failed(task, spec.name, r.message or str(code))
            else:
                self.scheduler.retry_later(task)
        else:
            self._segment_failed(task, spec.name, r.message or str(code))

    def _segment_done(self, f: FileTask, task: SegmentTask, r: sabctools.NNTPResponse) -> None:
        if f.size is None:
            f.size = r.file_size
            if f.writer is not None and f.writer.size < r.file_size:
                with contextlib.suppress(OSError):
                    f.writer.preallocate(r.file_size)
            self._update_totals()
        if task.index < len(f.tasks) - 1 and f.part_size is None:
            f.part_size = r.part_end - r.part_begin
        task.state = State.DONE
        f.ranges.add(r.part_begin, r.part_end)
        self.progress.bytes_this_run += r.bytes_decoded
        self.progress.bytes_done += r.bytes_decoded
        rec = self._record(f)
        rec.done.add(task.index, task.index + 1)
        self._state_dirty = True
        self._unsaved += r.bytes_decoded
        if self._unsaved >= self._save_every:
            # Here, not in a task or a thread: either would lag by milliseconds, which is
            # megabytes at line speed.
            self._save_now()
        if f.probing and task.index == 0:
            self._start_decision(f)
        self._finish_one()

    def _segment_failed(self, task: SegmentTask, server: str, why: str) -> None:
        if self.scheduler.failed_on(task, server):
            return
        self._lost(task, why)

    def _lost(self, task: SegmentTask, why: str) -> None:
        """No server can deliver this segment: readers waiting for its bytes must hear it."""
        f = self.files[task.file_index]
        f.failed.add(task.index)
        start = f.offset_of(task.index)
        end = f.offset_of(task.index + 1) if task.index + 1 < len(f.tasks) else f.estimated_size
        f.ranges.fail(start, end)
        log.warning(
            "%s: segment %d is missing on every server (%s)", f.name, task.segment.number, why
        )
        if f.probing and task.index == 0:
            self._decide(f, None)  # its content cannot tell: better fetched than lost
        self._finish_one()

    def _finish_one(self) -> None:
        self._remaining -= 1
        if self._remaining <= 0:
            self._remaining = 0
            self._complete.set()
            self.scheduler.wake_all()

    def _give_up_server(self, spec: ServerSpec, why: str) -> None:
        if self.scheduler.is_disabled(spec.name):
            return
        log.error("giving up on %s: %s", spec.name, why)
        self.server_errors[spec.name] = why
        pending = [t for f in self.files for t in f.tasks if t.state is State.PENDING]
        for task in self.scheduler.disable(spec.name, pending):
            self._lost(task, why)
        if all(self.scheduler.is_disabled(s.name) for s in self.servers):
            self._fail(DownloadError("; ".join(f"{k}: {v}" for k, v in self.server_errors.items())))

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._complete.set()
        self.scheduler.wake_all()
        self._lanes.wake_all()
        for f in self.files:
            f.ranges.cancel_waiters(exc)

    # -- progress and persistence ------------------------------------------------
    def _update_totals(self) -> None:
        # Parked files count with what was fetched of them (a probed volume's first segment).
        self.progress.bytes_total = sum(
            (f.size if f.size is not None else f.estimated_size) if f.selected else f.ranges.total
            for f in self.files
        )
        share = self.progress.bytes_total // STATE_SAVE_SHARE
        self._save_every = min(STATE_SAVE_MAX, max(STATE_SAVE_MIN, share))

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._lanes.connections

    def rate(self) -> float:
        """Bytes per second over the last few seconds (call it periodically)."""
        now = time.monotonic()
        t0, b0 = self._last_rate
        if now - t0 >= 1.0:
            inst = (self.progress.bytes_this_run - b0) / (now - t0)
            self.progress.speed_bps = (
                inst if self.progress.speed_bps == 0 else 0.5 * inst + 0.5 * self.progress.speed_bps
            )
            self._last_rate = (now, self.progress.bytes_this_run)
        return self.progress.speed_bps

    def _record(self, f: FileTask) -> FileRecord:
        rec = self._state.files.get(f.name)
        if rec is None:
            rec = self._state.files[f.name] = FileRecord(f.name)
        rec.size = f.size
        rec.part_size = f.part_size
        return rec

    def _save_now(self) -> None:
        if not self._state_dirty:
            return
        self._unsaved = 0  # also after a failure: retried after as many bytes again
        for f in self.files:
            if f.name in self._state.files:
                self._record(f).ranges = f.ranges.to_list()
        try:
            self._state_log.save(self._state)
            self._state_dirty = False
        except OSError as exc:
            log.warning("cannot save download state %s: %s", self.state_file, exc)

    async def _saver(self) -> None:
        """Saves on a slow line, where the share of bytes that triggers a save takes long."""
        while True:
            await asyncio.sleep(STATE_SAVE_INTERVAL)
            self._save_now()

    def _restore(self) -> None:
        state = load_state(
            self.state_file, self._state.fingerprint, [(f.name, len(f.tasks)) for f in self.files]
        )
        self._state = state
        for f in self.files:
            rec = state.files.get(f.name)
            if rec is None:
                continue
            try:
                on_disk = os.stat(f.path).st_size
            except OSError:
                del state.files[f.name]  # the file is gone: fetch it again
                continue
            if rec.size is None or on_disk < max((e for _, e in rec.ranges), default=0):
                del state.files[f.name]
                continue
            f.size, f.part_size = rec.size, rec.part_size
            f.ranges = RangeSet.from_list(rec.ranges)
            for start, end in rec.done:
                for i in range(start, end):
                    f.tasks[i].state = State.DONE
            self.progress.bytes_done += f.ranges.total
