"""The ``job_events`` table: each job's history (release chosen, retries, repairs, errors)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.errors import NotFound

if TYPE_CHECKING:
    from server.store.db import Database


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    job_id: str
    at: float
    kind: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    """An event to write with a job's change, in the same transaction: whoever sees the
    change finds its event in the history too."""

    kind: str
    message: str
    data: Mapping[str, Any] | None = None


def _payload(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    try:
        return json.dumps(dict(data), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event data is not JSON-serialisable: {exc}") from exc


async def insert_event(conn: Any, job_id: str, at: float, note: Note) -> int:
    """Inside a write transaction: append ``note`` to the job's history; its id."""
    cursor = await conn.execute(
        "INSERT INTO job_events (job_id, at, kind, message, data) VALUES (?, ?, ?, ?, ?)",
        (job_id, at, note.kind, note.message, _payload(note.data)),
    )
    event_id = cursor.lastrowid
    assert event_id is not None  # an INSERT into a rowid table always has one
    return int(event_id)


class EventsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, job_id: str, kind: str, message: str, data: Mapping[str, Any] | None = None
    ) -> JobEvent:
        """Append an event to a job's history; ``data`` must be JSON-serialisable."""
        note = Note(kind, message, data)
        payload = _payload(data)
        at = self._db.clock()
        async with self._db.write() as conn:
            if not await self._db.fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)):
                raise NotFound(f"no job {job_id}")
            event_id = await insert_event(conn, job_id, at, note)
        # the JSON round trip, so that this equals what `list` will return
        stored = json.loads(payload) if payload is not None else {}
        return JobEvent(event_id, job_id, at, kind, message, stored)

    async def list(self, job_id: str) -> builtins.list[JobEvent]:
        """A job's events, oldest first; an empty list for an unknown job."""
        rows = await self._db.rows(
            "SELECT id, job_id, at, kind, message, data FROM job_events"
            " WHERE job_id = ? ORDER BY id",
            (job_id,),
        )
        return [
            JobEvent(
                row["id"],
                row["job_id"],
                row["at"],
                row["kind"],
                row["message"],
                json.loads(row["data"]) if row["data"] is not None else {},
            )
            for row in rows
        ]
