"""The ``jobs`` table: one row per download, and every change to it by name.

A job changes only through the methods below, each named for what happened (the download
started, the movie became playable, the job failed...). They all go through one checked
write that validates every field, stamps ``updated_at`` and refuses a status change that
``server.jobs.lifecycle`` does not allow, reading and writing the row in one transaction so
that no update is lost.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import math
import secrets
import sqlite3
import time
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from server.errors import AlreadyExists, InvalidTransition, NotFound
from server.jobs.lifecycle import (
    ACTIVE,
    CURRENT,
    Expiry,
    Failure,
    MediaKind,
    MirrorState,
    Mode,
    Source,
    Status,
    is_retry,
    may_change,
)
from server.store.events import Note, insert_event

if TYPE_CHECKING:
    from server.store.db import Database


def new_job_id(now: float | None = None) -> str:
    """``job_{unix_ms}_{8 hex}``: sorts by creation time, unguessable enough to be unique."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"job_{ms}_{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Media:
    """What the movie of a job is, once known: its name, how it is read, type and size."""

    name: str
    kind: MediaKind
    content_type: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One download, as stored. ``created_at``/``updated_at`` of 0 mean "now" to `create`."""

    job_id: str
    movie_id: int | None = None
    status: Status = Status.QUEUED
    progress: float = 0.0
    playable: bool = False
    bytes_done: int = 0
    bytes_total: int = 0
    speed_bps: float = 0.0
    eta_seconds: float | None = None
    error_message: str | None = None
    release_title: str | None = None
    release_id: str | None = None
    mode: Mode
    attempt: int = 1
    source: Source
    nzb_name: str | None = None
    dir: str
    media_name: str | None = None
    media_kind: MediaKind | None = None
    content_type: str | None = None
    media_size: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    ready_at: float | None = None
    expires_at: float | None = None
    failure: Failure | None = None
    # The mirror to R2 (None: R2 has no part in this job) and the other retention deadlines.
    mirror: MirrorState | None = None
    mirror_bytes: int = 0
    mirror_error: str | None = None
    mirrored_at: float | None = None
    #: When the local copy goes (it plays from R2 after); None: not before the job goes.
    local_expires_at: float | None = None
    #: When the local copy went; None while it is there.
    local_deleted_at: float | None = None
    #: [retention] idle_hours after the last saved playback position.
    idle_expires_at: float | None = None

    def __post_init__(self) -> None:
        # Values from SQLite (and callers' plain strings) become the lifecycle's members; a
        # string that is none of them stays, and `_check` refuses it.
        for name in _ENUMS:
            value = getattr(self, name)
            coerced = _coerce(name, value)
            if coerced is not value:
                object.__setattr__(self, name, coerced)

    @property
    def media(self) -> Media | None:
        if self.media_name is None or self.media_kind is None or self.media_size is None:
            return None
        return Media(self.media_name, self.media_kind, self.content_type or "", self.media_size)

    @property
    def has_local(self) -> bool:
        """The local copy is (still) there."""
        return self.local_deleted_at is None

    @property
    def deletes_at(self) -> float | None:
        """When the whole job goes (its ready, failed or idle deadline, the soonest)."""
        found = [t for t in (self.expires_at, self.idle_expires_at) if t is not None]
        return min(found) if found else None

    def due(self, now: float) -> Expiry | None:
        """Which retention timer has run out at ``now``, the one that deletes most first."""
        if self.status == Status.DELETED:
            return None
        if self.expires_at is not None and self.expires_at <= now:
            return Expiry.FAILED if self.status == Status.ERROR else Expiry.READY
        if self.idle_expires_at is not None and self.idle_expires_at <= now:
            return Expiry.IDLE
        if self.local_expires_at is not None and self.local_expires_at <= now and self.has_local:
            return Expiry.LOCAL
        return None


_HINTS: dict[str, Any] = get_type_hints(Job)
_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Job))
_ENUMS: dict[str, type[Status | Mode | Source | MediaKind | Failure | MirrorState]] = {
    "status": Status,
    "mode": Mode,
    "source": Source,
    "media_kind": MediaKind,
    "failure": Failure,
    "mirror": MirrorState,
}
_NON_NEGATIVE = (
    "bytes_done", "bytes_total", "speed_bps", "eta_seconds", "media_size", "mirror_bytes"
)  # fmt: skip
#: A change of one of these wakes the retention scheduler.
_DEADLINES = ("expires_at", "idle_expires_at", "local_expires_at", "local_deleted_at", "status")


def _accepts(hint: Any, value: object) -> bool:
    """Whether ``value`` fits a field annotation (str, int, float, bool, enums, X | None)."""
    if get_origin(hint) in (Union, types.UnionType):
        return any(_accepts(arg, value) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # bool is an int to Python, never to us
        return hint is bool
    if hint is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, hint)


def _check(job: Job) -> None:
    """Raise ValueError unless every field has a value the schema and the API accept."""
    for name in _FIELDS:
        value = getattr(job, name)
        if not _accepts(_HINTS[name], value):
            raise ValueError(f"job field {name}: {value!r} is not {_HINTS[name]}")
    if not 0 <= job.progress <= 100:
        raise ValueError(f"job field progress: {job.progress!r} is not within 0-100")
    for name in _NON_NEGATIVE:
        value = getattr(job, name)
        if value is not None and value < 0:
            raise ValueError(f"job field {name}: {value!r} is negative")
    if job.attempt < 1:
        raise ValueError(f"job field attempt: {job.attempt!r} is below 1")
    if not job.job_id or not job.dir:
        raise ValueError("job fields job_id and dir must not be empty")


def _coerce(name: str, value: Any) -> Any:
    """An enum column's value as its member (a string that is no member stays, and `_check`
    refuses it)."""
    enum = _ENUMS[name]
    if isinstance(value, str) and not isinstance(value, enum):
        try:
            return enum(value)
        except ValueError:
            return value
    return value


def _from_row(row: sqlite3.Row) -> Job:
    values = {name: row[name] for name in _FIELDS}
    values["playable"] = bool(values["playable"])
    return Job(**values)


def _params(job: Job) -> tuple[Any, ...]:
    return tuple(getattr(job, name) for name in _FIELDS)


# Column order is the order of Job's fields, which `_params` relies on (a test checks).
_INSERT = """
    INSERT INTO jobs (
        job_id, movie_id, status, progress, playable, bytes_done, bytes_total, speed_bps,
        eta_seconds, error_message, release_title, release_id, mode, attempt, source,
        nzb_name, dir, media_name, media_kind, content_type, media_size, created_at,
        updated_at, ready_at, expires_at, failure, mirror, mirror_bytes, mirror_error,
        mirrored_at, local_expires_at, local_deleted_at, idle_expires_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
              ?, ?, ?, ?, ?, ?, ?)
"""
# Every column but job_id, again in field order, then job_id for the WHERE; the whole row is
# written back from a read inside the same transaction, so no update is lost.
_UPDATE = """
    UPDATE jobs SET
        movie_id = ?, status = ?, progress = ?, playable = ?, bytes_done = ?,
        bytes_total = ?, speed_bps = ?, eta_seconds = ?, error_message = ?,
        release_title = ?, release_id = ?, mode = ?, attempt = ?, source = ?, nzb_name = ?,
        dir = ?, media_name = ?, media_kind = ?, content_type = ?, media_size = ?,
        created_at = ?, updated_at = ?, ready_at = ?, expires_at = ?, failure = ?,
        mirror = ?, mirror_bytes = ?, mirror_error = ?, mirrored_at = ?, local_expires_at = ?,
        local_deleted_at = ?, idle_expires_at = ?
    WHERE job_id = ?
"""


def _values(statuses: frozenset[Status]) -> tuple[str, ...]:
    """Parameters for ``status IN (?, ...)``, as many as the placeholders say."""
    return tuple(sorted(s.value for s in statuses))


class JobsTable:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: Set whenever a deadline (or a status) changes: the retention scheduler waits on it
        #: beside its timer, so nobody has to remember to wake it.
        self.deadlines_changed = asyncio.Event()

    # -- reading -------------------------------------------------------------------
    async def get(self, job_id: str) -> Job | None:
        rows = await self._db.rows("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _from_row(rows[0]) if rows else None

    async def list(self, status: Status | None = None) -> builtins.list[Job]:
        """Jobs, newest ``updated_at`` first; only those in ``status`` when given."""
        if status is None:
            rows = await self._db.rows(
                "SELECT * FROM jobs ORDER BY updated_at DESC, created_at DESC, job_id DESC"
            )
        else:
            rows = await self._db.rows(
                "SELECT * FROM jobs WHERE status = ?"
                " ORDER BY updated_at DESC, created_at DESC, job_id DESC",
                (Status(status).value,),
            )
        return [_from_row(row) for row in rows]

    async def current_for_movie(self, movie_id: int) -> Job | None:
        """The movie's job that is active or ready, if any (one at a time per movie)."""
        rows = await self._db.rows(
            "SELECT * FROM jobs WHERE movie_id = ? AND status IN (?, ?, ?, ?)"
            " ORDER BY updated_at DESC, created_at DESC LIMIT 1",
            (movie_id, *_values(CURRENT)),
        )
        return _from_row(rows[0]) if rows else None

    async def unfinished(self) -> builtins.list[Job]:
        """Jobs to resume at start-up, oldest first."""
        rows = await self._db.rows(
            "SELECT * FROM jobs WHERE status IN (?, ?, ?) ORDER BY created_at, job_id",
            _values(ACTIVE),
        )
        return [_from_row(row) for row in rows]

    async def expired(self, now: float | None = None) -> builtins.list[Job]:
        """Jobs not yet deleted whose ``expires_at`` has passed, soonest expired first."""
        at = self._db.clock() if now is None else now
        rows = await self._db.rows(
            "SELECT * FROM jobs WHERE status != 'deleted'"
            " AND expires_at IS NOT NULL AND expires_at <= ?"
            " ORDER BY expires_at, job_id",
            (at,),
        )
        return [_from_row(row) for row in rows]

    async def with_deadlines(self) -> builtins.list[Job]:
        """Jobs not deleted that have a retention deadline, for the scheduler."""
        rows = await self._db.rows(
            "SELECT * FROM jobs WHERE status != 'deleted' AND (expires_at IS NOT NULL"
            " OR idle_expires_at IS NOT NULL"
            " OR (local_expires_at IS NOT NULL AND local_deleted_at IS NULL))"
        )
        return [_from_row(row) for row in rows]

    async def unmirrored(self) -> builtins.list[Job]:
        """Ready jobs with their local copy whose upload to R2 is not done, oldest first."""
        rows = await self._db.rows(
            "SELECT * FROM jobs WHERE status = 'ready' AND local_deleted_at IS NULL"
            " AND (mirror IS NULL OR mirror IN ('pending', 'mirroring'))"
            " ORDER BY ready_at, job_id"
        )
        return [_from_row(row) for row in rows]

    # -- creating and removing -------------------------------------------------------
    async def create(self, job: Job) -> Job:
        """Store a new job; it must start ``queued``. Zero timestamps become the clock's now."""
        now = self._db.clock()
        job = dataclasses.replace(
            job, created_at=job.created_at or now, updated_at=job.updated_at or now
        )
        _check(job)
        if job.status != Status.QUEUED:
            raise ValueError(f"a new job starts 'queued', not {job.status!r}")
        async with self._db.write() as conn:
            if await self._db.fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job.job_id,)):
                raise AlreadyExists(f"job {job.job_id} exists already")
            await conn.execute(_INSERT, _params(job))
            rows = await self._db.fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (job.job_id,))
        return _from_row(rows[0])

    async def purge(self, job_id: str) -> bool:
        """Remove a job row for good, with its events and position; False if there was none.

        Not the API's DELETE, which only marks a job ``deleted``; this is housekeeping.
        """
        async with self._db.write() as conn:
            cursor = await conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            return cursor.rowcount > 0

    # -- what happened to a job --------------------------------------------------------
    async def choose_release(
        self, job_id: str, *, release_id: str, title: str, nzb_name: str | None, size: int
    ) -> Job:
        return await self._change(
            job_id,
            release_id=release_id,
            release_title=title,
            nzb_name=nzb_name,
            bytes_total=size,
        )

    async def start_download(self, job_id: str) -> Job:
        return await self._change(job_id, status=Status.DOWNLOADING)

    async def record_progress(
        self,
        job_id: str,
        *,
        bytes_done: int,
        bytes_total: int,
        speed_bps: float,
        eta_seconds: float | None,
    ) -> Job:
        total = max(bytes_total, 1)
        return await self._change(
            job_id,
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            progress=round(min(100.0, 100.0 * bytes_done / total), 1),
            speed_bps=speed_bps,
            eta_seconds=eta_seconds,
        )

    async def mark_playable(self, job_id: str, media: Media, note: Note | None = None) -> Job:
        return await self._change(job_id, note, playable=True, **_media_fields(media))

    async def start_preparing(self, job_id: str) -> Job:
        return await self._change(job_id, status=Status.PREPARING, speed_bps=0.0, eta_seconds=0.0)

    async def mark_ready(
        self,
        job_id: str,
        media: Media,
        *,
        ready_at: float,
        expires_at: float | None,
        mirror: MirrorState | None = None,
        note: Note | None = None,
    ) -> Job:
        """Ready; ``mirror`` PENDING when it is to be uploaded to R2 (in the same write, so
        nobody following the job sees it at rest before its upload)."""
        async with self._db.write() as conn:
            old = await self._read(conn, job_id)
            return await self._write(
                conn,
                old,
                note,
                status=Status.READY,
                playable=True,
                progress=100.0,
                bytes_done=max(old.bytes_done, old.bytes_total),
                speed_bps=0.0,
                eta_seconds=0.0,
                ready_at=ready_at,
                expires_at=expires_at,
                mirror=mirror,
                **_media_fields(media),
            )

    async def retry(self, job_id: str) -> Job:
        """Back to ``queued`` for the next release (the lifecycle's retry edge): the attempt
        counts up and what belonged to the last release is cleared."""
        async with self._db.write() as conn:
            old = await self._read(conn, job_id)
            if old.status != Status.QUEUED and not is_retry(old.status, Status.QUEUED):
                raise InvalidTransition(
                    f"job {job_id} cannot go from {old.status.value!r} to 'queued' (a retry)"
                )
            return await self._write(
                conn,
                old,
                status=Status.QUEUED,
                attempt=old.attempt + 1,
                playable=False,
                progress=0.0,
                bytes_done=0,
                speed_bps=0.0,
                eta_seconds=None,
                error_message=None,
                failure=None,
                media_name=None,
                media_kind=None,
                content_type=None,
                media_size=None,
            )

    async def fail(
        self,
        job_id: str,
        message: str,
        failure: Failure,
        *,
        expires_at: float | None = None,
        note: Note | None = None,
    ) -> Job:
        """Failed; its files are deleted at ``expires_at`` (the retention sweep's doing)."""
        return await self._change(
            job_id,
            note,
            status=Status.ERROR,
            error_message=message,
            failure=failure,
            speed_bps=0.0,
            eta_seconds=None,
            expires_at=expires_at,
        )

    async def purge_deleted(self, before: float) -> int:
        """Rows of jobs deleted before ``before`` go, with their events: housekeeping."""
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "DELETE FROM jobs WHERE status = 'deleted' AND updated_at < ?", (before,)
            )
            return cursor.rowcount

    async def stall(self, job_id: str, message: str | None) -> Job:
        """A download that cannot go on for now (the disk is full) says why; None when it
        goes on again. The status stays: it is not a failure."""
        return await self._change(job_id, error_message=message, speed_bps=0.0, eta_seconds=None)

    async def mark_deleted(self, job_id: str, note: Note | None = None) -> Job:
        return await self._change(
            job_id, note, status=Status.DELETED, playable=False, speed_bps=0.0, eta_seconds=None
        )

    async def set_expiry(self, job_id: str, expires_at: float | None) -> Job:
        return await self._change(job_id, expires_at=expires_at)

    # -- the mirror and the retention timers -------------------------------------------
    async def mirror_pending(self, job_id: str) -> Job:
        return await self._change(
            job_id, mirror=MirrorState.PENDING, mirror_bytes=0, mirror_error=None
        )

    async def mirror_progress(self, job_id: str, bytes_done: int) -> Job:
        return await self._change(
            job_id, mirror=MirrorState.MIRRORING, mirror_bytes=bytes_done, mirror_error=None
        )

    async def mark_mirrored(
        self, job_id: str, *, at: float, size: int, local_expires_at: float | None
    ) -> Job:
        return await self._change(
            job_id,
            mirror=MirrorState.MIRRORED,
            mirror_bytes=size,
            mirror_error=None,
            mirrored_at=at,
            local_expires_at=local_expires_at,
        )

    async def mirror_failed(self, job_id: str, message: str) -> Job:
        """It will not be uploaded (for now); the local copy stays and the job plays from it."""
        return await self._change(job_id, mirror=MirrorState.FAILED, mirror_error=message)

    async def mirror_removed(self, job_id: str) -> Job:
        """Its R2 copy is gone (room for another); it plays from the local copy."""
        return await self._change(
            job_id, mirror=None, mirror_bytes=0, mirrored_at=None, local_expires_at=None
        )

    async def local_dropped(self, job_id: str, at: float, note: Note | None = None) -> Job:
        """The local copy is gone; it plays from R2 until the job goes."""
        return await self._change(job_id, note, local_deleted_at=at, local_expires_at=None)

    async def watched(self, job_id: str, idle_expires_at: float | None) -> Job:
        """A playback position was saved: the idle timer starts again."""
        return await self._change(job_id, idle_expires_at=idle_expires_at)

    async def extend(self, job_id: str, seconds: float, now: float) -> Job:
        """Every deadline of the job ``seconds`` later (counted from ``now`` at the earliest):
        "keep 24 h longer"."""

        def later(at: float | None) -> float | None:
            return None if at is None else max(at, now) + seconds

        async with self._db.write() as conn:
            old = await self._read(conn, job_id)
            return await self._write(
                conn,
                old,
                expires_at=later(old.expires_at),
                idle_expires_at=later(old.idle_expires_at),
                local_expires_at=later(old.local_expires_at) if old.has_local else None,
            )

    # -- the one checked write -------------------------------------------------------
    async def _change(self, job_id: str, note: Note | None = None, **changes: Any) -> Job:
        async with self._db.write() as conn:
            return await self._write(conn, await self._read(conn, job_id), note, **changes)

    async def _read(self, conn: Any, job_id: str) -> Job:
        rows = await self._db.fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id}")
        return _from_row(rows[0])

    async def _write(self, conn: Any, old: Job, note: Note | None = None, **changes: Any) -> Job:
        """Inside a write transaction: check and store ``old`` with ``changes``, and the
        ``note`` that tells of them in the job's history."""
        now = self._db.clock()
        new = dataclasses.replace(old, **changes, updated_at=now)
        _check(new)
        if not may_change(old.status, new.status):
            raise InvalidTransition(
                f"job {old.job_id} cannot go from {old.status.value!r} to {new.status.value!r}"
            )
        await conn.execute(_UPDATE, (*_params(new)[1:], old.job_id))
        if note is not None:
            await insert_event(conn, old.job_id, now, note)
        rows = await self._db.fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (old.job_id,))
        if any(getattr(old, name) != getattr(new, name) for name in _DEADLINES):
            self._db.after_commit(self.deadlines_changed.set)
        return _from_row(rows[0])


def _media_fields(media: Media) -> dict[str, Any]:
    return {
        "media_name": media.name,
        "media_kind": media.kind,
        "content_type": media.content_type,
        "media_size": media.size,
    }
