"""The ``watch_positions`` table: where playback of each job was, to resume there."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from server.errors import NotFound

if TYPE_CHECKING:
    from server.store.db import Database


class Position(NamedTuple):
    """A watch position; a tuple so that ``job_id, seconds, updated_at = p`` works."""

    job_id: str
    seconds: float
    updated_at: float


class PositionsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, job_id: str, seconds: float) -> None:
        """Remember where playback of a job is; ValueError unless finite and >= 0."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"position must be a number of seconds, not {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"position must be finite and not negative, not {seconds!r}")
        now = self._db.clock()
        async with self._db.write() as conn:
            if not await self._db.fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)):
                raise NotFound(f"no job {job_id}")
            await conn.execute(
                "INSERT INTO watch_positions (job_id, seconds, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE"
                " SET seconds = excluded.seconds, updated_at = excluded.updated_at",
                (job_id, float(seconds), now),
            )

    async def get(self, job_id: str) -> float | None:
        rows = await self._db.rows(
            "SELECT seconds FROM watch_positions WHERE job_id = ?", (job_id,)
        )
        return float(rows[0]["seconds"]) if rows else None

    async def last_watched(self) -> dict[str, float]:
        """Job id -> when its position was last saved, for every job that has one."""
        rows = await self._db.rows("SELECT job_id, updated_at FROM watch_positions")
        return {row["job_id"]: float(row["updated_at"]) for row in rows}

    async def recent(self, limit: int = 20) -> list[Position]:
        """The most recently updated positions, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        rows = await self._db.rows(
            "SELECT job_id, seconds, updated_at FROM watch_positions"
            " ORDER BY updated_at DESC, job_id LIMIT ?",
            (limit,),
        )
        return [Position(row["job_id"], row["seconds"], row["updated_at"]) for row in rows]
