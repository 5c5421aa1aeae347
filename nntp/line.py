"""The line to the Usenet providers, shared by every download on it.

On loopback a downloader may keep as much in flight as it likes. On a household's line
(a provider 10-100 ms away, 20 Mbit/s to 1 Gbit/s) every byte requested and not yet
received stands between a seek and the bytes the player now wants: a fixed pipelining
depth of 8 articles on 8 connections is ~45 MB, half a minute on a 2 MiB/s line. So the
line decides how much may be in flight (the budget) and who sends first:

* **Budget.** What the line delivers in a round trip plus a short queue:
  ``GAIN * rate * (rtt + TARGET_DELAY)`` bytes, never below ``MIN_BUDGET``. ``rate`` is the
  largest delivery rate seen over the last seconds (bytes received on the whole line
  while one article was in flight, divided by its time in flight), ``rtt`` the smallest
  time to first byte of a request sent on an idle connection (or of a login command).
  While the line is not full the requests see no queue, deliver faster than estimated
  and the budget grows; once it is full the queue stays near ``TARGET_DELAY``. On
  loopback the budget is far above what the connections can pipeline, as before.
* **Lanes.** A lane is one connection slot of a download with its requests in flight;
  it knows how many bytes it still expects (the NZB's article sizes less what arrived).
  New requests go to the lane with the least outstanding, so the budget spreads over
  connections (one connection rarely fills a far line).
* **Who goes first.** Downloads with a reader waiting fill first, then downloads being
  watched, then the rest in the order they started: a job being watched takes the line
  from one that is not, and leaves it what it cannot use.
* **Preemption.** A read that blocks a player is sent at once on the least loaded
  connection, nothing else is sent while it is in flight (``blocking``), and when the
  bytes already in flight on the line would hold it up for more than ``PREEMPT_DELAY``,
  the connections holding the most are dropped (their articles go back to the queue).
  Fair queueing on the way (every home router does it) then gives the blocking article
  most of the line: it arrives after about one round trip plus its own transfer time,
  whatever was in flight. Dropping costs the bytes that were on their way and a
  reconnect per dropped connection: once per seek, not per article.
* **Warm connections.** Logged-in connections that a download leaves are kept for
  ``KEEP_WARM`` seconds and handed to the next download; ``warm()`` opens them ahead of
  time (while an indexer is searched), so the first request pays no TCP, TLS or login
  round trips.

Per-server statistics (bytes, articles, missing, errors, round trip, speed) are kept here
too, for the status page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import sabctools

from nntp.connection import Meter, NntpConnection, ServerSpec
from nntp.errors import NntpError
from nntp.scheduler import SegmentTask

log = logging.getLogger(__name__)

TARGET_DELAY = 0.1  # seconds of queue a download may keep on the line
GAIN = 1.25  # headroom over the measured rate, so that a faster line is found
MIN_BUDGET = 512 * 1024  # at least this much in flight: one article behind another
INITIAL_BUDGET = 2 << 20  # before anything was measured
PREEMPT_DELAY = 0.05  # a blocking read waits at most this long behind other bytes
RATE_WINDOW = 2.0  # seconds over which the delivery rate's maximum is kept
RTT_WINDOW = 10.0  # seconds over which the round trip's minimum is kept
MIN_SAMPLE = 0.002  # delivery-rate samples over shorter times are bursts, not the line
KEEP_WARM = 60.0  # seconds an idle logged-in connection is kept for the next download
DEFAULT_ARTICLE = 768_000  # what an article is taken to weigh when the NZB says 0
ServerKey = tuple[str, str, int, bool, str | None]


class _Windowed:
    """The minimum or maximum of samples over a sliding window of time."""

    def __init__(self, window: float, *, largest: bool) -> None:
        self.window = window
        self.largest = largest
        self._samples: deque[tuple[float, float]] = deque()  # monotonic in value

    def add(self, now: float, value: float) -> None:
        s = self._samples
        if self.largest:
            while s and s[-1][1] <= value:
                s.pop()
        else:
            while s and s[-1][1] >= value:
                s.pop()
        s.append((now, value))

    def value(self, now: float) -> float | None:
        s = self._samples
        # The newest sample stays even when old: a quiet line keeps its last estimate.
        while len(s) > 1 and s[0][0] < now - self.window:
            s.popleft()
        return s[0][1] if s else None


@dataclass
class ServerStats:
    """What one server did for the downloads on this line (since start-up)."""

    name: str
    bytes: int = 0  # decoded article bytes
    articles: int = 0
    missing: int = 0  # 430: not on this server
    corrupt: int = 0  # articles whose CRC or yEnc part did not match
    timeouts: int = 0  # requests that got no data within the server's timeout
    errors: int = 0  # temporary failures, dropped connections
    connects: int = 0
    rtt: float | None = None  # seconds, the smallest seen lately
    busy_seconds: float = 0.0  # time with at least one request in flight
    _busy_since: float | None = field(default=None, repr=False)

    @property
    def speed_bps(self) -> float:
        """Bytes per second while it had work."""
        return self.bytes / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "articles": self.articles,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "connects": self.connects,
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 1),
            "speed_bps": round(self.speed_bps),
        }


@dataclass(eq=False, slots=True)
class Request:
    """One BODY in flight on a lane."""

    task: SegmentTask
    fut: asyncio.Future[sabctools.NNTPResponse]
    expected: int  # bytes the reply should take on the wire (the NZB's article size)
    sent_at: float
    line_received: int  # the line's byte count when sent: for the delivery rate
    blocking: bool


class LineUser(Protocol):
    """What the line asks of a download."""

    def priority(self) -> tuple[int, int]: ...

    def fill(self) -> None: ...


class Lane:
    """One connection slot of a download and the requests in flight on it."""

    def __init__(self, line: Line, spec: ServerSpec, slot: int) -> None:
        self.line = line
        self.spec = spec
        self.slot = slot
        self.conn: NntpConnection | None = None
        self.inflight: deque[Request] = deque()
        self.expected = 0  # bytes of the replies in flight
        self._mark = 0  # conn.received when the replies in flight began to arrive
        self.dropped = False  # closed on purpose (preempted): not a fault of the server
        self.backoff = 0.5  # seconds before the next connect after a failure (the owner's)
        self.wake = asyncio.Event()  # the lane's supervisor has something to look at
        self.idle_since = time.monotonic()

    @property
    def ready(self) -> bool:
        return self.conn is not None and self.conn.connected and not self.dropped

    @property
    def room(self) -> bool:
        return len(self.inflight) < self.spec.pipelining

    @property
    def outstanding(self) -> int:
        """Bytes still expected on this lane."""
        if not self.inflight or self.conn is None:
            return 0
        return max(0, self.expected - (self.conn.received - self._mark))

    def attach(self, conn: NntpConnection) -> None:
        self.conn = conn
        self.dropped = False
        self._mark = conn.received

    def detach(self) -> NntpConnection | None:
        conn, self.conn = self.conn, None
        return conn

    def send(
        self, task: SegmentTask, sink: sabctools.FileWriter | None, *, blocking: bool
    ) -> Request:
        conn = self.conn
        assert conn is not None
        now = time.monotonic()
        if not self.inflight:
            self._mark = conn.received
            conn.time_first_byte(now, self.line.rtt_sample)
            self.line.busy(self.spec, now, True)
        expected = task.segment.bytes or DEFAULT_ARTICLE
        req = Request(
            task,
            conn.body(task.segment.message_id, sink),
            expected,
            now,
            self.line.meter.received,
            blocking,
        )
        self.inflight.append(req)
        self.expected += expected
        self.line.expected += expected
        if blocking:
            self.line.blocking += 1
        return req

    def make_blocking(self, req: Request) -> None:
        """A reader now waits for a request already in flight."""
        if not req.blocking:
            req.blocking = True
            self.line.blocking += 1

    def finished(self, req: Request, response: sabctools.NNTPResponse | None) -> None:
        """Book a reply (None: the request failed with its connection)."""
        try:
            self.inflight.remove(req)
        except ValueError:
            return
        self.expected -= req.expected
        self.line.expected -= req.expected
        if req.blocking:
            self.line.blocking -= 1
        now = time.monotonic()
        if response is not None:
            self._mark += response.bytes_read
            self.line.delivered(req, now)
        if not self.inflight:
            self.expected = 0
            if self.conn is not None:
                self._mark = self.conn.received
            self.idle_since = now
            self.line.busy(self.spec, now, False)

    def drop(self) -> None:
        """Close the connection to make room on the line; its requests are retried."""
        if self.conn is not None and self.inflight:
            self.dropped = True
            self.conn.close()
            self.wake.set()


class Line:
    """See the module docstring. One per process (the job manager's), or one per download."""

    def __init__(
        self,
        *,
        target_delay: float = TARGET_DELAY,
        preempt_delay: float = PREEMPT_DELAY,
        keep_warm: float = KEEP_WARM,
    ) -> None:
        self.target_delay = target_delay
        self.preempt_delay = preempt_delay
        self.keep_warm = keep_warm
        self.meter = Meter()  # every byte read on any connection of this line
        self.expected = 0  # bytes of all replies in flight, as the NZBs weigh them
        self.blocking = 0  # requests in flight that a reader is blocked on
        self.lanes: list[Lane] = []
        self.preemptions = 0  # connections dropped to make way for a blocking read
        self.stats: dict[str, ServerStats] = {}
        self._rate = _Windowed(RATE_WINDOW, largest=True)
        self._rtt = _Windowed(RTT_WINDOW, largest=False)
        self._users: list[LineUser] = []
        self._pool: dict[ServerKey, list[tuple[NntpConnection, float]]] = {}
        self._opening: dict[ServerKey, int] = {}
        self._parked = asyncio.Event()  # a warm connection was parked (or failed to open)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.meter.on_alarm = self.refill

    # -- what the line can do ------------------------------------------------------------
    def rate(self) -> float | None:
        """Bytes per second the line delivered at best, lately."""
        return self._rate.value(time.monotonic())

    def rtt(self) -> float | None:
        return self._rtt.value(time.monotonic())

    def budget(self) -> float:
        """Bytes that may be in flight on the whole line now."""
        rate = self.rate()
        if rate is None:
            return INITIAL_BUDGET
        return max(MIN_BUDGET, GAIN * rate * ((self.rtt() or 0.0) + self.target_delay))

    def outstanding(self) -> int:
        """Bytes requested on the line and not received yet."""
        return sum(lane.outstanding for lane in self.lanes)

    def admits(self, budget: float) -> bool:
        # The sum of whole articles in flight bounds what is outstanding: cheap, and on a
        # fast line always enough to say yes.
        return self.expected < budget or self.outstanding() < budget

    def rtt_sample(self, seconds: float, server: str | None = None) -> None:
        now = time.monotonic()
        self._rtt.add(now, seconds)
        if server is not None:
            st = self.stats.get(server)
            if st is not None and (st.rtt is None or seconds < st.rtt):
                st.rtt = seconds

    def delivered(self, req: Request, now: float) -> None:
        elapsed = now - req.sent_at
        if elapsed >= MIN_SAMPLE:
            self._rate.add(now, (self.meter.received - req.line_received) / elapsed)

    def stats_for(self, spec: ServerSpec) -> ServerStats:
        st = self.stats.get(spec.name)
        if st is None:
            st = self.stats[spec.name] = ServerStats(spec.name)
        return st

    def busy(self, spec: ServerSpec, now: float, busy: bool) -> None:
        st = self.stats_for(spec)
        if busy:
            if st._busy_since is None:
                st._busy_since = now
            return
        if st._busy_since is not None and not any(
            lane.inflight for lane in self.lanes if lane.spec.name == spec.name
        ):
            st.busy_seconds += now - st._busy_since
            st._busy_since = None

    # -- who sends -------------------------------------------------------------------------
    def attach(self, user: LineUser, lanes: Sequence[Lane]) -> None:
        self._users.append(user)
        self.lanes.extend(lanes)

    def detach(self, user: LineUser, lanes: Iterable[Lane]) -> None:
        with contextlib.suppress(ValueError):
            self._users.remove(user)
        gone = set(lanes)
        self.lanes = [lane for lane in self.lanes if lane not in gone]
        self.refill()  # what it held is free for the others

    def wake_after(self, nbytes: float) -> None:
        """Look for work to send again once ``nbytes`` more have arrived on the line."""
        self.meter.alarm_at = min(self.meter.alarm_at, self.meter.received + max(1, int(nbytes)))

    def refill(self) -> None:
        """Budget was freed: let the downloads send, the most urgent first."""
        self.meter.alarm_at = Meter.NEVER  # each fill sets it again if it must wait
        users = self._users
        if len(users) > 1:
            users = sorted(users, key=lambda u: u.priority())
        for user in users:
            user.fill()

    def preempt(self) -> int:
        """Drop connections until what is in flight beside the blocking reads drains within
        ``preempt_delay``; returns how many were dropped. (While a blocking read is in
        flight nothing else is sent: see ``admits``.)"""
        rate = self.rate()
        if rate is None:
            return 0
        allowed = rate * self.preempt_delay
        others = [
            lane
            for lane in self.lanes
            if lane.inflight and not any(r.blocking for r in lane.inflight)
        ]
        ahead = sum(lane.outstanding for lane in others)
        if ahead <= allowed:
            return 0
        dropped = 0
        for lane in sorted(others, key=lambda lane: lane.outstanding, reverse=True):
            if ahead <= allowed:
                break
            ahead -= lane.outstanding
            lane.drop()
            dropped += 1
        self.preemptions += dropped
        log.debug("dropped %d connections for a blocking read (%.0f bytes ahead)", dropped, ahead)
        return dropped

    # -- warm connections --------------------------------------------------------------------
    @staticmethod
    def key(spec: ServerSpec) -> ServerKey:
        return (spec.name, spec.host, spec.port, spec.tls, spec.username)

    def connection(self, spec: ServerSpec, number: int) -> NntpConnection:
        """A new (not yet connected) connection whose bytes count on this line."""
        conn = NntpConnection(spec, number, meter=self.meter)
        conn.on_rtt = lambda seconds: self.rtt_sample(seconds, spec.name)
        return conn

    def lease(self, spec: ServerSpec) -> NntpConnection | None:
        """A warm logged-in connection to ``spec``'s server, if one is parked."""
        parked = self._pool.get(self.key(spec))
        while parked:
            conn, _ = parked.pop()
            if conn.connected and conn.in_flight == 0:
                return conn
            conn.close()
        return None

    async def acquire(self, spec: ServerSpec, number: int) -> NntpConnection:
        """A logged-in connection to ``spec``'s server: a warm one, one being warmed (wait
        for it rather than open one more than the server allows), or a new one."""
        key = self.key(spec)
        while True:
            conn = self.lease(spec)
            if conn is not None:
                return conn
            if not self._opening.get(key):
                break
            self._parked.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(spec.timeout):
                    await self._parked.wait()
        conn = self.connection(spec, number)
        try:
            await conn.connect()
        except BaseException:
            conn.close()
            raise
        self.stats_for(spec).connects += 1
        return conn

    def park(self, conn: NntpConnection) -> None:
        """Keep an idle connection for the next download (closed after ``keep_warm``)."""
        if self._closed or not conn.connected or conn.in_flight or self.keep_warm <= 0:
            conn.close()
            return
        self._pool.setdefault(self.key(conn.spec), []).append((conn, time.monotonic()))
        self._parked.set()
        self._spawn(self._expire(conn))

    def parked(self, spec: ServerSpec) -> int:
        return sum(1 for c, _ in self._pool.get(self.key(spec), ()) if c.connected)

    def warm(self, specs: Iterable[ServerSpec], count: int | None = None) -> None:
        """Open and log in connections ahead of a download (up to each server's
        ``connections``, or ``count``), in the background; failures are only logged."""
        for spec in specs:
            key = self.key(spec)
            busy = sum(
                1 for lane in self.lanes if lane.conn is not None and self.key(lane.spec) == key
            )
            want = (count if count is not None else spec.connections) - busy
            want -= self.parked(spec) + self._opening.get(key, 0)
            for number in range(max(0, want)):
                self._opening[key] = self._opening.get(key, 0) + 1
                self._spawn(self._open(spec, number + 1))

    async def _open(self, spec: ServerSpec, number: int) -> None:
        key = self.key(spec)
        conn = self.connection(spec, number)
        try:
            await conn.connect()
        except NntpError as exc:
            log.info("warming a connection to %s failed: %s", spec.name, exc)
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        finally:
            self._opening[key] -= 1
            self._parked.set()  # whoever waits for it must look again
        self.stats_for(spec).connects += 1
        self.park(conn)

    async def _expire(self, conn: NntpConnection) -> None:
        await asyncio.sleep(self.keep_warm)
        parked = self._pool.get(self.key(conn.spec), [])
        for i, (c, _) in enumerate(parked):
            if c is conn:
                del parked[i]
                await conn.quit()
                return

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every parked connection and stop opening new ones."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conns = [c for parked in self._pool.values() for c, _ in parked]
        self._pool.clear()
        await asyncio.gather(*(c.quit() for c in conns), return_exceptions=True)
