"""The ``preferences`` table: the household's playback choices (which audio and subtitle
language the player last chose), as short text values under fixed keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.store.db import Database

MAX_VALUE = 64  # a language code or "off"; nothing long belongs here


class PreferencesTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_all(self) -> dict[str, str]:
        rows = await self._db.rows("SELECT key, value FROM preferences ORDER BY key")
        return {row["key"]: row["value"] for row in rows}

    async def set(self, key: str, value: str | None) -> None:
        """Remember ``value`` under ``key``; None forgets it."""
        if value is not None and len(value) > MAX_VALUE:
            raise ValueError(f"a preference is at most {MAX_VALUE} characters")
        async with self._db.write() as conn:
            if value is None:
                await conn.execute("DELETE FROM preferences WHERE key = ?", (key,))
                return
            await conn.execute(
                "INSERT INTO preferences (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, self._db.clock()),
            )
