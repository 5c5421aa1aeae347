"""Which segment each connection fetches next.

Order within a download: segments a reader is waiting for (newest request first), then
the first and last segment of every file (headers, MP4 ``moov``, MKV cues), then each
file sequentially, files in their rank order. Servers are grouped into levels by
priority; a segment reaches level n+1 only after every server of level n failed it.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nntp.nzb import Segment

URGENT, EDGE, NORMAL = 0, 1, 2

Key = tuple[int, int, int, int]


class State(enum.Enum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    PARKED = "parked"  # not selected for download (e.g. PAR2 volumes until a repair needs them)


@dataclass(eq=False, slots=True)
class SegmentTask:
    file_index: int
    index: int  # position within the file's segment list
    segment: Segment
    state: State = State.PENDING
    level: int = 0
    tried: set[str] = field(default_factory=set)
    attempts: int = 0  # transient failures on the current server
    urgent: int = 0  # how many reader requests want it
    urgent_seq: int = 0
    edge: bool = False
    rank: int = 0
    key: Key = (NORMAL, 0, 0, 0)

    def compute_key(self) -> Key:
        if self.urgent:
            return (URGENT, -self.urgent_seq, self.rank, self.index)
        if self.edge:
            return (EDGE, self.rank, self.file_index, self.index)
        return (NORMAL, self.rank, self.file_index, self.index)


class Scheduler:
    """Priority queues of segments per server level, with wake-ups for idle workers."""

    def __init__(
        self, levels: Sequence[Sequence[str]], on_work: Callable[[], None] | None = None
    ) -> None:
        # levels[i] = names of the servers sharing the i-th lowest priority value
        self.levels = [tuple(names) for names in levels]
        self._level_of = {name: i for i, names in enumerate(self.levels) for name in names}
        self._heaps: list[list[tuple[Key, int, SegmentTask]]] = [[] for _ in self.levels]
        self._retry: dict[str, deque[SegmentTask]] = {n: deque() for n in self._level_of}
        self._events = [asyncio.Event() for _ in self.levels]
        self._seq = itertools.count()
        self._urgent_seq = itertools.count(1)
        self._disabled: set[str] = set()
        # Told whenever work is queued, so that connections with room can take it.
        self._on_work = on_work

    # -- feeding -----------------------------------------------------------------
    def push(self, task: SegmentTask) -> None:
        task.state = State.PENDING
        task.key = task.compute_key()
        heapq.heappush(self._heaps[task.level], (task.key, next(self._seq), task))
        self._events[task.level].set()
        if self._on_work is not None:
            self._on_work()

    def reprioritise(self, task: SegmentTask) -> None:
        """Re-queue a pending task under its new key; the old heap entry goes stale."""
        if task.state is State.PENDING and task.compute_key() != task.key:
            self.push(task)

    def want(self, tasks: Iterable[SegmentTask]) -> list[SegmentTask]:
        """Mark tasks urgent for a reader; returns them so the caller can release them."""
        seq = next(self._urgent_seq)
        held = []
        for task in tasks:
            if task.state in (State.DONE, State.FAILED):
                continue
            task.urgent += 1
            task.urgent_seq = seq
            held.append(task)
            if task.state is State.PARKED:
                self.push(task)
            else:
                self.reprioritise(task)
        return held

    def release(self, tasks: Iterable[SegmentTask]) -> None:
        for task in tasks:
            task.urgent = max(0, task.urgent - 1)
            self.reprioritise(task)

    # -- taking ------------------------------------------------------------------
    def pop(self, server: str) -> SegmentTask | None:
        """The next segment for a connection of ``server``, marked in flight, or None."""
        retry = self._retry[server]
        while retry:
            task = retry.popleft()
            if task.state is State.PENDING:
                task.state = State.IN_FLIGHT
                return task
        heap = self._heaps[self._level_of[server]]
        while heap:
            key, _, task = heap[0]
            if (
                task.state is not State.PENDING
                or key != task.key
                or task.level != self._level_of[server]
            ):
                heapq.heappop(heap)  # stale entry
                continue
            if server in task.tried:
                # Another server of this level still owes it an attempt; it sits in that
                # server's retry queue, so drop this entry.
                heapq.heappop(heap)
                continue
            heapq.heappop(heap)
            task.state = State.IN_FLIGHT
            return task
        self._events[self._level_of[server]].clear()
        return None

    def can_serve(self, task: SegmentTask, server: str) -> bool:
        """Whether a connection of ``server`` may fetch ``task`` now."""
        return (
            self._level_of.get(server) == task.level
            and server not in task.tried
            and server not in self._disabled
        )

    def take(self, task: SegmentTask) -> None:
        """Mark a pending task in flight out of turn (a reader is blocked on it); its queue
        entries go stale."""
        assert task.state is State.PENDING
        task.state = State.IN_FLIGHT

    def has_work(self, server: str) -> bool:
        """Whether anything may be queued for ``server`` (stale entries included)."""
        return bool(self._retry[server]) or bool(self._heaps[self._level_of[server]])

    async def wait_for_work(self, server: str) -> None:
        """Until something may be queued for ``server``."""
        event = self._events[self._level_of[server]]
        while not self.has_work(server):
            event.clear()
            await event.wait()

    def wake_all(self) -> None:
        for ev in self._events:
            ev.set()

    # -- outcomes ----------------------------------------------------------------
    def retry_later(self, task: SegmentTask) -> None:
        """A transient failure (dropped connection, timeout): same level, any server."""
        self.push(task)

    def failed_on(self, task: SegmentTask, server: str) -> bool:
        """The server does not have it (or served it corrupt). Returns False when no
        server is left to try: the segment is then definitively missing."""
        task.tried.add(server)
        task.attempts = 0
        while task.level < len(self.levels):
            untried = [
                n
                for n in self.levels[task.level]
                if n not in task.tried and n not in self._disabled
            ]
            if untried:
                task.state = State.PENDING
                for name in untried:
                    self._retry[name].append(task)
                self._events[task.level].set()
                if self._on_work is not None:
                    self._on_work()
                return True
            task.level += 1
            if task.level < len(self.levels):
                self.push(task)
                return True
        task.state = State.FAILED
        return False

    def disable(self, server: str, pending: Iterable[SegmentTask]) -> list[SegmentTask]:
        """A server that refused login: its level's work moves on. Returns tasks that no
        server can fetch any more."""
        self._disabled.add(server)
        lost: list[SegmentTask] = []
        level = self._level_of[server]
        if all(n in self._disabled for n in self.levels[level]):
            # Nobody at this level can work: move everything queued here down a level.
            stranded = [t for _, _, t in self._heaps[level] if t.state is State.PENDING]
            stranded += [t for t in pending if t.state is State.PENDING]
            self._heaps[level].clear()
            for task in dict.fromkeys(stranded):
                if not self.failed_on(task, server):
                    lost.append(task)
        self._events[level].set()
        return lost

    def is_disabled(self, server: str) -> bool:
        return server in self._disabled
