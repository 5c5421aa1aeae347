"""The ``http_cache`` table: replies of TMDB and the indexers, kept until they expire."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.store.db import Database


class CacheTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, now: float | None = None) -> bytes | None:
        """The cached bytes for ``key``, or None when absent or expired."""
        at = self._db.clock() if now is None else now
        rows = await self._db.rows(
            "SELECT value FROM http_cache WHERE key = ? AND expires_at > ?", (key, at)
        )
        return bytes(rows[0]["value"]) if rows else None

    async def put(
        self, key: str, value: bytes, ttl_seconds: float, now: float | None = None
    ) -> None:
        """Cache ``value`` under ``key`` for ``ttl_seconds``, replacing what was there."""
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds!r}")
        at = self._db.clock() if now is None else now
        async with self._db.write() as conn:
            await conn.execute(
                "INSERT INTO http_cache (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value, expires_at = excluded.expires_at",
                (key, bytes(value), at + ttl_seconds),
            )

    async def purge(self, now: float | None = None) -> int:
        """Drop expired entries; returns how many went."""
        at = self._db.clock() if now is None else now
        async with self._db.write() as conn:
            cursor = await conn.execute("DELETE FROM http_cache WHERE expires_at <= ?", (at,))
            return cursor.rowcount
