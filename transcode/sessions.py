"""The HLS sessions of a server: at most ``max_sessions`` at once, each stopped after
``idle_timeout`` seconds without a request, all stopped on ``close``.

A new session beyond the limit stops the least recently used one (a household's viewer who
left a tab open loses to the one pressing play now). Every session owns a directory under
``root``, removed with it. Use as ``async with HlsSessions(root) as sessions:`` or call
``start``/``close`` from a cleanup context.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

from transcode.session import HlsSession

MAX_SESSIONS = 2  # ffmpeg transcodes take a core each on a small server
IDLE_TIMEOUT = 60.0
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

SessionFactory = Callable[[Path], Awaitable[HlsSession]]


class HlsSessions:
    def __init__(
        self,
        root: Path,
        *,
        max_sessions: int = MAX_SESSIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.root = root
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, HlsSession] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> HlsSession | None:
        return self._sessions.get(key)

    async def open(self, key: str, factory: SessionFactory) -> HlsSession:
        """The session for ``key`` (a job and output, e.g. "job_1-remux-a1"), made by
        ``factory(directory)`` when there is none."""
        if not _KEY.match(key):
            raise ValueError(f"bad session key {key!r}")
        async with self._lock:
            existing = self._sessions.get(key)
            if existing is not None:
                return existing
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].last_used)
                await self._sessions.pop(oldest).close()
            directory = self.root / key
            await asyncio.to_thread(shutil.rmtree, directory, True)  # a previous process's
            session = await factory(directory)
            self._sessions[key] = session
            return session

    async def stop(self, key: str) -> None:
        """Stop one session (the job was deleted, the player left)."""
        async with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            await session.close()

    async def stop_matching(self, prefix: str) -> None:
        """Stop every session whose key starts with ``prefix`` (all of one job's)."""
        for key in [k for k in self._sessions if k.startswith(prefix)]:
            await self.stop(key)

    async def reap_idle(self, now: float | None = None) -> list[str]:
        """Stop the sessions idle for longer than ``idle_timeout``; their keys."""
        now = time.monotonic() if now is None else now
        idle = [k for k, s in self._sessions.items() if now - s.last_used > self.idle_timeout]
        for key in idle:
            await self.stop(key)
        return idle

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        async with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(max(self.idle_timeout / 4, 0.05))
            await self.reap_idle()

    async def __aenter__(self) -> HlsSessions:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
