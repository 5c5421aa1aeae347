"""The ``credentials`` table: the household's password (as its scrypt string) and the epoch
that every change of it, and every "log out everywhere", counts up. One row.

A change ends every login session in the same transaction, so no browser stays logged in
with a password that is no longer the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from server.store.db import Database

Source = Literal["none", "config", "set"]


@dataclass(frozen=True, slots=True)
class Credentials:
    password_hash: str | None
    #: "config": taken from [auth] password_hash; "set": by `matinee set-password` or a page.
    source: Source
    epoch: int
    changed_at: float | None


class CredentialsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self) -> Credentials:
        rows = await self._db.rows(
            "SELECT password_hash, source, epoch, changed_at FROM credentials WHERE id = 1"
        )
        row = rows[0]
        return Credentials(row["password_hash"], row["source"], row["epoch"], row["changed_at"])

    async def set_password(self, password_hash: str, *, source: Source = "set") -> Credentials:
        """A new password: the epoch counts up and every session ends."""
        now = self._db.clock()
        async with self._db.write() as conn:
            await conn.execute(
                "UPDATE credentials SET password_hash = ?, source = ?, epoch = epoch + 1,"
                " changed_at = ? WHERE id = 1",
                (password_hash, source, now),
            )
            await conn.execute("DELETE FROM sessions")
        return await self.get()

    async def log_out_everywhere(self) -> Credentials:
        """Every session ends and every media token signed so far stops working."""
        async with self._db.write() as conn:
            await conn.execute("UPDATE credentials SET epoch = epoch + 1 WHERE id = 1")
            await conn.execute("DELETE FROM sessions")
        return await self.get()
