"""The connections of one download and what they send: the lanes of ``nntp.line``, each
with a supervisor coroutine that keeps it connected, takes its replies in order and
watches it.

* ``fill`` sends what the line's budget allows, each request on the least loaded lane (a
  lane takes no more than its share while others could: at the start, the first
  connection up would otherwise take the whole budget). On a line the budget cannot bind
  (loopback) every connection is simply kept ``pipelining`` deep.
* ``expedite`` serves a reader blocked on some segments: they go out at once, in order on
  the least loaded connection; nothing else is sent until they are in; the line drops the
  connections that stand in their way; a connection that sends nothing for
  ``BLOCKED_STALL`` while a reader waits on it is closed and its requests go elsewhere.
* Replies go back to the download (``on_reply``); a request lost with its connection is
  retried (and counts as an attempt unless the line dropped the connection on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import sabctools

from nntp.connection import ServerSpec
from nntp.errors import AuthError, NntpError
from nntp.files import DownloadError, FileTask
from nntp.line import Lane, Line, Request
from nntp.scheduler import Scheduler, SegmentTask, State

log = logging.getLogger(__name__)

MAX_TRANSIENT_ATTEMPTS = 3  # per segment and server, before it counts as failed there
MAX_CONNECT_FAILURES = 5  # consecutive, per server, before the server is given up
IDLE_CLOSE = 30.0  # seconds an idle connection stays with the download (then: the line's)
BLOCKED_STALL = 2.0  # seconds without a byte on a connection a reader waits on: ask elsewhere


class Lanes:
    """One lane per configured connection of each server; the line's user for a download."""

    def __init__(
        self,
        line: Line,
        servers: Sequence[ServerSpec],
        scheduler: Scheduler,
        files: Sequence[FileTask],
        *,
        article: int,
        backoff: tuple[float, float],
        priority: Callable[[], tuple[int, int]],
        halted: Callable[[], bool],
        on_reply: Callable[[ServerSpec, SegmentTask, sabctools.NNTPResponse], None],
        on_failed: Callable[[SegmentTask, str, str], None],
        on_give_up: Callable[[ServerSpec, str], None],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.line = line
        self.scheduler = scheduler
        self.files = files
        self.article = article  # what an article of this post weighs on the wire
        self.backoff = backoff  # (first, longest) wait before connecting again
        self._priority = priority
        self._halted = halted
        self._on_reply = on_reply
        self._on_failed = on_failed
        self._on_give_up = on_give_up
        self._on_fatal = on_fatal
        self.lanes = [
            Lane(line, spec, slot + 1) for spec in servers for slot in range(spec.connections)
        ]
        self._supervisors: list[asyncio.Task[None]] = []
        self._connect_failures: dict[str, int] = {}
        self._fill_queued = False

    def start(self) -> None:
        for lane in self.lanes:
            lane.backoff = self.backoff[0]
        self.line.attach(self, self.lanes)
        self._supervisors = [asyncio.create_task(self._supervise(lane)) for lane in self.lanes]

    async def close(self) -> None:
        """Stop the supervisors; idle logged-in connections go to the line, warm."""
        for t in self._supervisors:
            t.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        self._supervisors.clear()
        for lane in self.lanes:
            conn = lane.detach()
            if conn is not None:
                if lane.inflight:
                    conn.close()  # replies still coming: nobody could take it over
                else:
                    self.line.park(conn)  # logged in and idle: warm for the next download
            for req in list(lane.inflight):
                lane.finished(req, None)  # off the line's books
        self.line.detach(self, self.lanes)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return sum(1 for lane in self.lanes if lane.ready)

    def wake_all(self) -> None:
        for lane in self.lanes:
            lane.wake.set()

    def priority(self) -> tuple[int, int]:
        return self._priority()

    def fill(self) -> None:
        """Send what the line's budget allows, each request on the least loaded lane."""
        if self._halted():
            return
        line = self.line
        if line.blocking:
            return  # a reader is blocked: its article has the line (sent again once it is in)
        budget = line.budget()
        lanes = [lane for lane in self.lanes if lane.room and lane.ready]
        if not lanes:
            return
        dry: set[str] = set()  # servers with nothing queued for them
        room = sum(lane.spec.pipelining - len(lane.inflight) for lane in lanes)
        if line.expected + room * self.article < budget:
            # A fast line: the budget cannot bind, so fill every connection as it comes.
            for lane in lanes:
                name = lane.spec.name
                while lane.room and name not in dry:
                    task = self.scheduler.pop(name)
                    if task is None:
                        dry.add(name)
                    else:
                        self._send(lane, task)
            return
        # No lane takes more than its share while others could (at the start, the first
        # connection up would take the whole budget).
        share = max(budget / len(self.lanes), self.article)
        while lanes:
            outstanding = line.outstanding()
            if outstanding >= budget:
                line.wake_after(outstanding - budget + 1)  # look again once they arrived
                return
            lane = min(lanes, key=lambda lane: lane.outstanding)
            if lane.outstanding >= share:
                line.wake_after(lane.outstanding - share + 1)
                return
            name = lane.spec.name
            task = None if name in dry else self.scheduler.pop(name)
            if task is None:
                dry.add(name)
                lanes = [other for other in lanes if other.spec.name != name]
                continue
            self._send(lane, task)
            if not lane.room or not lane.ready:
                lanes.remove(lane)

    def _send(self, lane: Lane, task: SegmentTask, *, blocking: bool = False) -> None:
        f = self.files[task.file_index]
        try:
            if f.writer is None:
                f.writer = sabctools.FileWriter(f.path)
        except OSError as exc:
            self.scheduler.retry_later(task)
            self._on_fatal(DownloadError(f"cannot write {f.path}: {exc.strerror or exc}"))
            return
        lane.send(task, f.writer, blocking=blocking)
        if len(lane.inflight) == 1:
            lane.wake.set()  # its supervisor waits for the reply

    def _replied(
        self, lane: Lane, req: Request, fut: asyncio.Future[sabctools.NNTPResponse]
    ) -> None:
        """A reply arrived (or its connection died): book it, then send more. Replies of a
        lane come here in order, from its supervisor."""
        response = None if fut.cancelled() or fut.exception() is not None else fut.result()
        lane.finished(req, response)
        if self._halted():
            return
        task = req.task
        if response is None:
            self._connection_failed(lane, task)
            return
        try:
            self._on_reply(lane.spec, task, response)
        except Exception as exc:  # a bug or the disk: stop the whole download, loudly
            log.exception("download failed handling a reply")
            self._on_fatal(exc)
            return
        lane.backoff = self.backoff[0]
        self.line.refill()

    def _connection_failed(self, lane: Lane, task: SegmentTask) -> None:
        """A request lost with its connection goes back to the queue (and counts as an
        attempt, unless the line dropped the connection to make way for a reader)."""
        if task.state is State.IN_FLIGHT:
            if lane.dropped:
                self.scheduler.retry_later(task)
            else:
                task.attempts += 1
                if task.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    self._on_failed(task, lane.spec.name, "connection lost repeatedly")
                else:
                    self.scheduler.retry_later(task)
        lane.wake.set()

    def work_queued(self) -> None:
        """The scheduler queued work: let lanes with room take it (once per loop turn)."""
        if not self._fill_queued and self.lanes:
            self._fill_queued = True
            asyncio.get_running_loop().call_soon(self._fill_now)

    def _fill_now(self) -> None:
        self._fill_queued = False
        self.line.refill()

    def expedite(self, covering: Sequence[SegmentTask]) -> None:
        """A reader is blocked on [start, end): send its segments at once, in order on one
        connection (the least loaded), hold everything else back until they are in, and
        make room for them on the line."""
        wanted = [t for t in covering if t.state in (State.PENDING, State.IN_FLIGHT)]
        if not wanted:
            return
        newly = False
        ids = {id(t) for t in wanted}
        now = time.monotonic()
        for lane in self.lanes:
            since = 0.0  # when the oldest request of this lane the reader waits for went out
            for req in lane.inflight:
                if id(req.task) in ids:
                    since = since or req.sent_at
                    if not req.blocking:
                        lane.make_blocking(req)  # sent already (as read-ahead, say)
                        newly = True
            conn = lane.conn
            quiet = now - max(since, conn.last_activity) if conn is not None else 0.0
            if since and conn is not None and conn.connected and quiet >= BLOCKED_STALL:
                # Head of line: not a byte while a reader waits. Its requests go back to
                # the queue and out on another connection (or server).
                log.warning(
                    "%s#%d: nothing for %g s while a reader waits; asking elsewhere",
                    lane.spec.name,
                    lane.slot,
                    BLOCKED_STALL,
                )
                conn.close()
        pending = [t for t in wanted if t.state is State.PENDING]
        lanes = [
            lane
            for lane in self.lanes
            if pending and lane.ready and self.scheduler.can_serve(pending[0], lane.spec.name)
        ]
        if lanes:  # else they lead the queue: the first connection up takes them
            lane = min(lanes, key=lambda lane: (lane.outstanding, len(lane.inflight)))
            for task in pending:
                if self.scheduler.can_serve(task, lane.spec.name):
                    self.scheduler.take(task)
                    self._send(lane, task, blocking=True)
                    newly = True
        if newly:
            self.line.preempt()

    async def _supervise(self, lane: Lane) -> None:
        """One lane's life: take its replies in order (``_replied`` books each and sends
        more), keep it connected while there is work, close it when it goes quiet with
        replies due (they are retried), hand it to the line when idle for IDLE_CLOSE.

        Replies are awaited here rather than handled in the futures' callbacks: on
        loopback that rhythm lets the loop read more often, and the engine runs ~20 %
        faster with it (bench/download.py)."""
        spec, name = lane.spec, lane.spec.name
        loop = asyncio.get_running_loop()
        tick = max(0.05, min(spec.timeout, IDLE_CLOSE) / 4)
        try:
            while not self._halted() and not self.scheduler.is_disabled(name):
                conn = lane.conn
                if lane.inflight:
                    req = lane.inflight[0]
                    # Awaited even when done: the turn of the loop lets it read sockets
                    # between replies, which keeps the servers' replies flowing.
                    try:
                        await asyncio.wait_for(asyncio.shield(req.fut), tick)
                    except TimeoutError:
                        quiet = loop.time() - (conn.last_activity if conn else 0.0)
                        if conn is not None and quiet >= spec.timeout:
                            self.line.stats_for(spec).timeouts += 1
                            log.warning(
                                "%s#%d: no data for %g s, reconnecting",
                                name,
                                lane.slot,
                                spec.timeout,
                            )
                            conn.close()
                        continue
                    except NntpError:
                        pass  # the connection is gone: _replied retries the request
                    self._replied(lane, req, req.fut)
                    continue
                if conn is not None and not conn.connected:
                    lane.detach()
                    if lane.dropped:
                        lane.dropped = False  # dropped on purpose: back at once
                    else:
                        await asyncio.sleep(lane.backoff)
                        lane.backoff = min(self.backoff[1], lane.backoff * 2)
                    continue
                if conn is None:
                    if not self.scheduler.has_work(name):
                        await self.scheduler.wait_for_work(name)
                        continue
                    if not await self._connect(lane):
                        if self.scheduler.is_disabled(name):
                            return
                        await asyncio.sleep(lane.backoff)
                        lane.backoff = min(self.backoff[1], lane.backoff * 2)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await lane.wake.wait()
                lane.wake.clear()
                if not lane.inflight and time.monotonic() - lane.idle_since >= IDLE_CLOSE:
                    lane.detach()
                    self.line.park(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: stop the whole download, loudly
            log.exception("download connection supervisor failed")
            self._on_fatal(exc)

    async def _connect(self, lane: Lane) -> bool:
        """Attach a warm connection from the line, or open one; False when it failed."""
        spec, name = lane.spec, lane.spec.name
        try:
            conn = await self.line.acquire(spec, lane.slot)
        except AuthError as exc:
            self._on_give_up(spec, str(exc))
            return False
        except NntpError as exc:
            self.line.stats_for(spec).errors += 1
            fails = self._connect_failures.get(name, 0) + 1
            self._connect_failures[name] = fails
            log.warning("%s: %s (attempt %d)", name, exc, fails)
            if fails >= MAX_CONNECT_FAILURES * spec.connections:
                self._on_give_up(spec, str(exc))
            return False
        if self._halted():
            self.line.park(conn)
            return True
        self._connect_failures[name] = 0
        conn.on_lost = lane.wake.set
        lane.attach(conn)
        self.line.refill()
        return True
