"""A guard against blocking the event loop: every callback the loop runs is timed, and a test
fails when one held the loop too long (file I/O, a sync subprocess, hashing a big file...).
The same check as asyncio's debug mode (``slow_callback_duration``), without its other costs.

"Too long" is ``CPU_LIMIT`` of the thread's own CPU time, or ``WAIT_LIMIT`` of wall time:
on a shared 2-core machine a callback can be preempted for longer than 100 ms without doing
anything wrong, but it cannot burn 100 ms of CPU, and it is not preempted for half a second
(a sync wait on a subprocess, a socket or ``time.sleep`` is). A test that must block (none
should) says so with ``@pytest.mark.blocking``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

CPU_LIMIT = 0.1  # seconds of CPU; asyncio's own default for slow_callback_duration
WAIT_LIMIT = 0.5  # seconds of wall time

_slow: list[tuple[float, str]] | None = None
_original_run = asyncio.events.Handle._run

# Garbage collection runs inside whatever callback allocates at the wrong moment; late in a
# long test session a full collection takes 100 ms or more. It is the interpreter's time,
# not the callback's, so it is subtracted.
_gc_total = 0.0
_gc_started = 0.0


def _gc_clock(phase: str, info: dict[str, Any]) -> None:
    global _gc_total, _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        _gc_total += time.perf_counter() - _gc_started


gc.callbacks.append(_gc_clock)


def _timed_run(self: asyncio.Handle) -> None:
    if _slow is None:
        _original_run(self)
        return
    start, cpu, collecting = time.perf_counter(), time.thread_time(), _gc_total
    try:
        _original_run(self)
    finally:
        in_gc = _gc_total - collecting
        took = time.perf_counter() - start - in_gc
        burnt = time.thread_time() - cpu - in_gc
        if burnt >= CPU_LIMIT or took >= WAIT_LIMIT:
            _slow.append((took, f"{_describe(self)}, {burnt * 1000:.0f} ms of CPU"))


def _describe(handle: asyncio.Handle) -> str:
    callback: Any = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None)
        where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "?"
        return f"task {task.get_name()} running {getattr(coro, '__qualname__', coro)} ({where})"
    return repr(handle)


asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    global _slow
    if request.node.get_closest_marker("blocking") is not None:
        yield
        return
    _slow = []
    try:
        yield
        found = sorted(_slow, reverse=True)
    finally:
        _slow = None
    if found:
        lines = "\n".join(f"  {took * 1000:.0f} ms: {what}" for took, what in found[:5])
        pytest.fail(f"the event loop was blocked {len(found)} time(s):\n{lines}", pytrace=False)
