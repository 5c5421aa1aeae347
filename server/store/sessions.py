"""The ``sessions`` table: login sessions, stored under the hash of their id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.errors import AlreadyExists

if TYPE_CHECKING:
    from server.store.db import Database


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    data: str
    created_at: float
    expires_at: float


class SessionsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, session_id: str, data: str, expires_at: float) -> Session:
        now = self._db.clock()
        async with self._db.write() as conn:
            if await self._db.fetch(
                conn, "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ):
                raise AlreadyExists("that session id exists already")
            await conn.execute(
                "INSERT INTO sessions (session_id, data, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (session_id, data, now, expires_at),
            )
        return Session(session_id, data, now, float(expires_at))

    async def get(self, session_id: str, now: float | None = None) -> Session | None:
        """The session, or None when unknown or expired."""
        at = self._db.clock() if now is None else now
        rows = await self._db.rows(
            "SELECT session_id, data, created_at, expires_at FROM sessions"
            " WHERE session_id = ? AND expires_at > ?",
            (session_id, at),
        )
        if not rows:
            return None
        row = rows[0]
        return Session(row["session_id"], row["data"], row["created_at"], row["expires_at"])

    async def delete(self, session_id: str) -> bool:
        """Forget a session (log out); False if there was none."""
        async with self._db.write() as conn:
            cursor = await conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            return cursor.rowcount > 0

    async def purge(self, now: float | None = None) -> int:
        """Drop expired sessions; returns how many went."""
        at = self._db.clock() if now is None else now
        async with self._db.write() as conn:
            cursor = await conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (at,))
            return cursor.rowcount
