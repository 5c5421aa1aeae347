"""Matinee's state in one SQLite file: jobs, their events, watch positions, HTTP cache, sessions.

One write connection runs every write inside ``BEGIN IMMEDIATE``, serialised by an
``asyncio.Lock``; a second connection only reads, so reads never queue behind writes (WAL).
The schema is a list of numbered migrations recorded in ``PRAGMA user_version`` and applied
at open. Queries are literal SQL with ``?`` parameters, grouped per table, and return frozen
dataclasses; no row objects leave this module. Time comes from arguments or from the clock
given to `Store.open`, never from sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import secrets
import sqlite3
import time
import types
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

import aiosqlite

from server import errors

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Written into the file header by migration 1 ("MATN"), so a foreign SQLite file is refused.
APPLICATION_ID = 0x4D41544E

# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """The database cannot be opened or used; the message names the file."""


class NotFound(errors.NotFound, KeyError):
    """No row with that key. A KeyError, and a 404 if it reaches the API."""

    def __str__(self) -> str:
        # KeyError would show repr(message) with quotes
        return self.message


class InvalidTransition(errors.Conflict):
    """A job status change the lifecycle does not allow (409 if it reaches the API)."""


class AlreadyExists(errors.Conflict):
    """A row with that key exists already (409 if it reaches the API)."""


# --------------------------------------------------------------------------- schema

#: Migration N (1-based) takes a database from user_version N-1 to N. Append only: a
#: released migration is never edited, because databases in the field already ran it.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        job_id        TEXT PRIMARY KEY,
        movie_id      INTEGER,
        status        TEXT NOT NULL CHECK (status IN
                          ('queued', 'downloading', 'preparing', 'ready', 'error', 'deleted')),
        progress      REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        playable      INTEGER NOT NULL DEFAULT 0 CHECK (playable IN (0, 1)),
        bytes_done    INTEGER NOT NULL DEFAULT 0,
        bytes_total   INTEGER NOT NULL DEFAULT 0,
        speed_bps     REAL NOT NULL DEFAULT 0,
        eta_seconds   REAL,
        error_message TEXT,
        release_title TEXT,
        release_id    TEXT,
        mode          TEXT NOT NULL CHECK (mode IN ('auto', 'manual', 'nzb')),
        attempt       INTEGER NOT NULL DEFAULT 1,
        source        TEXT NOT NULL CHECK (source IN ('upload', 'url', 'fetch')),
        nzb_name      TEXT,
        dir           TEXT NOT NULL,
        media_name    TEXT,
        media_kind    TEXT CHECK (media_kind IN ('file', 'rar')),
        content_type  TEXT,
        media_size    INTEGER,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        ready_at      REAL,
        expires_at    REAL
    ) STRICT;
    CREATE INDEX jobs_by_updated ON jobs (updated_at);
    CREATE INDEX jobs_by_status ON jobs (status, updated_at);
    CREATE INDEX jobs_by_movie ON jobs (movie_id) WHERE movie_id IS NOT NULL;
    CREATE INDEX jobs_by_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;

    CREATE TABLE job_events (
        id       INTEGER PRIMARY KEY,
        job_id   TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        at       REAL NOT NULL,
        kind     TEXT NOT NULL,
        message  TEXT NOT NULL,
        data     TEXT
    ) STRICT;
    CREATE INDEX job_events_by_job ON job_events (job_id, id);

    CREATE TABLE watch_positions (
        job_id     TEXT PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
        seconds    REAL NOT NULL CHECK (seconds >= 0),
        updated_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX watch_positions_by_updated ON watch_positions (updated_at);

    CREATE TABLE http_cache (
        key        TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        expires_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX http_cache_by_expiry ON http_cache (expires_at);

    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        data       TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);

    PRAGMA application_id = 1296127054;
    """,
)


def split_statements(script: str) -> list[str]:
    """One migration script as single statements, so that it can run inside our transaction.

    ``executescript`` would commit first, which is why it is not used; sqlite3's own
    tokenizer (`complete_statement`) decides where a statement ends, so semicolons in
    strings or trigger bodies do not split.
    """
    statements: list[str] = []
    start = 0
    for i, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : i + 1]):
            statements.append(script[start : i + 1].strip())
            start = i + 1
    rest = [line.strip() for line in script[start:].splitlines()]
    if any(line and not line.startswith("--") for line in rest):
        raise ValueError(f"migration ends without ';': {script[start:].strip()[:80]!r}")
    return statements


# --------------------------------------------------------------------------- jobs: values

JOB_STATUSES = frozenset({"queued", "downloading", "preparing", "ready", "error", "deleted"})
JOB_MODES = frozenset({"auto", "manual", "nzb"})
JOB_SOURCES = frozenset({"upload", "url", "fetch"})
MEDIA_KINDS = frozenset({"file", "rar"})
#: A movie with a job in one of these has something to show or on its way.
ACTIVE_STATUSES = frozenset({"queued", "downloading", "preparing", "ready"})
#: Jobs in these states have a runner to resume after a restart.
UNFINISHED_STATUSES = frozenset({"queued", "downloading", "preparing"})
#: Allowed status changes; staying in the same status is always allowed.
TRANSITIONS: Mapping[str, frozenset[str]] = types.MappingProxyType(
    {
        "queued": frozenset({"downloading", "error", "deleted"}),
        "downloading": frozenset({"preparing", "error", "deleted"}),
        "preparing": frozenset({"ready", "error", "deleted"}),
        "ready": frozenset({"error", "deleted"}),
        "error": frozenset({"queued", "deleted"}),  # queued again: a retry
        "deleted": frozenset(),
    }
)


def new_job_id(now: float | None = None) -> str:
    """``job_{unix_ms}_{8 hex}``: sorts by creation time, unguessable enough to be unique."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"job_{ms}_{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One download, as stored. ``created_at``/``updated_at`` of 0 mean "now" to `create_job`."""

    job_id: str
    movie_id: int | None = None
    status: str = "queued"
    progress: float = 0.0
    playable: bool = False
    bytes_done: int = 0
    bytes_total: int = 0
    speed_bps: float = 0.0
    eta_seconds: float | None = None
    error_message: str | None = None
    release_title: str | None = None
    release_id: str | None = None
    mode: str
    attempt: int = 1
    source: str
    nzb_name: str | None = None
    dir: str
    media_name: str | None = None
    media_kind: str | None = None
    content_type: str | None = None
    media_size: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    ready_at: float | None = None
    expires_at: float | None = None


_JOB_HINTS: dict[str, Any] = get_type_hints(Job)
_JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Job))
#: The store owns these: the id never changes and the timestamps are set here.
_JOB_FIXED = frozenset({"job_id", "created_at", "updated_at"})
_JOB_ENUMS: Mapping[str, frozenset[str]] = {
    "status": JOB_STATUSES,
    "mode": JOB_MODES,
    "source": JOB_SOURCES,
    "media_kind": MEDIA_KINDS,
}
_NON_NEGATIVE = ("bytes_done", "bytes_total", "speed_bps", "eta_seconds", "media_size")


def _accepts(hint: Any, value: object) -> bool:
    """Whether ``value`` fits a field annotation (str, int, float, bool, X | None)."""
    if get_origin(hint) in (Union, types.UnionType):
        return any(_accepts(arg, value) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # bool is an int to Python, never to us
        return hint is bool
    if hint is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, hint)


def _check_job(job: Job) -> None:
    """Raise ValueError unless every field has a value the schema and the API accept."""
    for name in _JOB_FIELDS:
        value = getattr(job, name)
        if not _accepts(_JOB_HINTS[name], value):
            raise ValueError(f"job field {name}: {value!r} is not {_JOB_HINTS[name]}")
        allowed = _JOB_ENUMS.get(name)
        if allowed is not None and value is not None and value not in allowed:
            raise ValueError(f"job field {name}: {value!r} is not one of {sorted(allowed)}")
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


def _job_from_row(row: sqlite3.Row) -> Job:
    values = {name: row[name] for name in _JOB_FIELDS}
    values["playable"] = bool(values["playable"])
    return Job(**values)


def _job_params(job: Job) -> tuple[Any, ...]:
    return tuple(getattr(job, name) for name in _JOB_FIELDS)


# Column order is the order of Job's fields, which `_job_params` relies on.
_INSERT_JOB = """
    INSERT INTO jobs (
        job_id, movie_id, status, progress, playable, bytes_done, bytes_total, speed_bps,
        eta_seconds, error_message, release_title, release_id, mode, attempt, source,
        nzb_name, dir, media_name, media_kind, content_type, media_size, created_at,
        updated_at, ready_at, expires_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Every column but job_id, again in field order, then job_id for the WHERE; the whole row is
# written back from a read inside the same transaction, so no update is lost.
_UPDATE_JOB = """
    UPDATE jobs SET
        movie_id = ?, status = ?, progress = ?, playable = ?, bytes_done = ?,
        bytes_total = ?, speed_bps = ?, eta_seconds = ?, error_message = ?,
        release_title = ?, release_id = ?, mode = ?, attempt = ?, source = ?, nzb_name = ?,
        dir = ?, media_name = ?, media_kind = ?, content_type = ?, media_size = ?,
        created_at = ?, updated_at = ?, ready_at = ?, expires_at = ?
    WHERE job_id = ?
"""


# --------------------------------------------------------------------------- other rows


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    job_id: str
    at: float
    kind: str
    message: str
    data: dict[str, Any]


class Position(NamedTuple):
    """A watch position; a tuple so that ``job_id, seconds, updated_at = p`` works."""

    job_id: str
    seconds: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    data: str
    created_at: float
    expires_at: float


# --------------------------------------------------------------------------- the store


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        # Opened here and handed to aiosqlite, rather than by aiosqlite.connect: when opening
        # fails there, its worker thread later reports to an event loop that may be closed.
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, sqlite3 must not add its own.
        # check_same_thread=False: from now on only aiosqlite's one worker thread uses it.
        raw = await asyncio.to_thread(
            sqlite3.connect, path, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    conn = await aiosqlite.Connection(lambda: raw, iter_chunk_size=64)
    conn.row_factory = sqlite3.Row
    return conn


async def _scalar(conn: aiosqlite.Connection, sql: str) -> Any:
    rows = list(await conn.execute_fetchall(sql))
    return rows[0][0]


async def _rollback(conn: aiosqlite.Connection) -> None:
    # no transaction may be open: BEGIN failed, or SQLite already rolled back on an error
    with contextlib.suppress(sqlite3.OperationalError):
        await conn.execute("ROLLBACK")


class Store:
    """The open database. Make one with `Store.open` or `store_context`; close it once."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock = time.time, busy_timeout: float = 5.0
    ) -> Store:
        """Open (or create) the database at ``path`` and bring its schema up to date.

        Raises StoreError naming the file when it is not a SQLite database, belongs to
        another program, comes from a newer Matinee, or a migration fails.
        """
        path = Path(path)
        ms = int(busy_timeout * 1000)
        writer = await _connect(path)
        try:
            await _prepare(writer, path, ms)
            reader = await _connect(path)
            try:
                await reader.execute(f"PRAGMA busy_timeout = {ms}")
                # a read connection that cannot write keeps "one writer" true by construction
                await reader.execute("PRAGMA query_only = ON")
            except BaseException:
                await reader.close()
                raise
        except sqlite3.Error as exc:
            await writer.close()
            raise StoreError(f"{path}: {exc}") from exc
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader, clock=clock)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._write_lock:  # a write in progress finishes first
            try:
                # cheap, and keeps the query planner's statistics fresh between runs
                await self._writer.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                log.warning("%s: PRAGMA optimize failed: %s", self.path, exc)
            finally:
                try:
                    await self._reader.close()
                finally:
                    await self._writer.close()

    # -- plumbing ------------------------------------------------------------------
    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; commits when the block ends, rolls back when it raises."""
        conn = self._writer
        async with self._write_lock:
            # checked under the lock: close() may have run while this write waited for it
            if self._closed:
                raise StoreError(f"{self.path}: the store is closed")
            try:
                # IMMEDIATE takes the write lock now, so a read-then-write cannot be
                # overtaken by another process between the two
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                # Shielded so that a cancelled caller still queues its ROLLBACK; aiosqlite
                # runs statements in order, so the next writer's BEGIN comes after it.
                await asyncio.shield(_rollback(conn))
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {exc}") from exc
                raise

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    @staticmethod
    async def _fetch(
        conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await conn.execute_fetchall(sql, tuple(params)))

    # -- jobs ----------------------------------------------------------------------
    async def create_job(self, job: Job) -> Job:
        """Store a new job; it must start ``queued``. Zero timestamps become the clock's now."""
        now = self._clock()
        job = dataclasses.replace(
            job, created_at=job.created_at or now, updated_at=job.updated_at or now
        )
        _check_job(job)
        if job.status != "queued":
            raise ValueError(f"a new job starts 'queued', not {job.status!r}")
        async with self._write() as conn:
            if await self._fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job.job_id,)):
                raise AlreadyExists(f"job {job.job_id} exists already")
            await conn.execute(_INSERT_JOB, _job_params(job))
            rows = await self._fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (job.job_id,))
        return _job_from_row(rows[0])

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._rows("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    async def list_jobs(self, status: str | None = None) -> list[Job]:
        """Jobs, newest ``updated_at`` first; only those in ``status`` when given."""
        if status is None:
            rows = await self._rows(
                "SELECT * FROM jobs ORDER BY updated_at DESC, created_at DESC, job_id DESC"
            )
        elif status in JOB_STATUSES:
            rows = await self._rows(
                "SELECT * FROM jobs WHERE status = ?"
                " ORDER BY updated_at DESC, created_at DESC, job_id DESC",
                (status,),
            )
        else:
            raise ValueError(f"unknown job status {status!r}")
        return [_job_from_row(row) for row in rows]

    async def update_job(self, job_id: str, /, **changes: Any) -> Job:
        """Change some fields of a job and stamp ``updated_at``; returns the stored job.

        ValueError for a field that does not exist or may not change, or a bad value;
        NotFound for an unknown id; InvalidTransition for a status change the lifecycle
        forbids (see TRANSITIONS).
        """
        wrong = sorted((set(changes) - set(_JOB_FIELDS)) | (set(changes) & _JOB_FIXED))
        if wrong:
            raise ValueError(f"update_job cannot set {', '.join(wrong)}")
        async with self._write() as conn:
            rows = await self._fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (job_id,))
            if not rows:
                raise NotFound(f"no job {job_id}")
            old = _job_from_row(rows[0])
            new = dataclasses.replace(old, **changes, updated_at=self._clock())
            _check_job(new)
            if new.status != old.status and new.status not in TRANSITIONS[old.status]:
                raise InvalidTransition(
                    f"job {job_id} cannot go from {old.status!r} to {new.status!r}"
                )
            await conn.execute(_UPDATE_JOB, (*_job_params(new)[1:], job_id))
            rows = await self._fetch(conn, "SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job_from_row(rows[0])

    async def purge_job(self, job_id: str) -> bool:
        """Remove a job row for good, with its events and position; False if there was none.

        Not the API's DELETE, which only marks a job ``deleted``; this is housekeeping.
        """
        async with self._write() as conn:
            cursor = await conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            return cursor.rowcount > 0

    async def active_job_for_movie(self, movie_id: int) -> Job | None:
        """The movie's job that is queued, downloading, preparing or ready, if any."""
        rows = await self._rows(
            "SELECT * FROM jobs WHERE movie_id = ?"
            " AND status IN ('queued', 'downloading', 'preparing', 'ready')"
            " ORDER BY updated_at DESC, created_at DESC LIMIT 1",
            (movie_id,),
        )
        return _job_from_row(rows[0]) if rows else None

    async def unfinished_jobs(self) -> list[Job]:
        """Jobs to resume at start-up (queued, downloading, preparing), oldest first."""
        rows = await self._rows(
            "SELECT * FROM jobs WHERE status IN ('queued', 'downloading', 'preparing')"
            " ORDER BY created_at, job_id"
        )
        return [_job_from_row(row) for row in rows]

    async def expired_jobs(self, now: float | None = None) -> list[Job]:
        """Jobs not yet deleted whose ``expires_at`` has passed, soonest expired first."""
        at = self._clock() if now is None else now
        rows = await self._rows(
            "SELECT * FROM jobs WHERE status != 'deleted'"
            " AND expires_at IS NOT NULL AND expires_at <= ?"
            " ORDER BY expires_at, job_id",
            (at,),
        )
        return [_job_from_row(row) for row in rows]

    # -- job events ----------------------------------------------------------------
    async def add_event(
        self, job_id: str, kind: str, message: str, data: Mapping[str, Any] | None = None
    ) -> JobEvent:
        """Append an event to a job's history; ``data`` must be JSON-serialisable."""
        payload: str | None = None
        if data is not None:
            try:
                payload = json.dumps(dict(data), separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"event data is not JSON-serialisable: {exc}") from exc
        at = self._clock()
        async with self._write() as conn:
            if not await self._fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)):
                raise NotFound(f"no job {job_id}")
            cursor = await conn.execute(
                "INSERT INTO job_events (job_id, at, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                (job_id, at, kind, message, payload),
            )
            event_id = cursor.lastrowid
        assert event_id is not None  # an INSERT into a rowid table always has one
        # the JSON round trip, so that this equals what list_events will return
        stored = json.loads(payload) if payload is not None else {}
        return JobEvent(event_id, job_id, at, kind, message, stored)

    async def list_events(self, job_id: str) -> list[JobEvent]:
        """A job's events, oldest first; an empty list for an unknown job."""
        rows = await self._rows(
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

    # -- watch positions -----------------------------------------------------------
    async def set_position(self, job_id: str, seconds: float) -> None:
        """Remember where playback of a job is; ValueError unless finite and >= 0."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"position must be a number of seconds, not {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"position must be finite and not negative, not {seconds!r}")
        now = self._clock()
        async with self._write() as conn:
            if not await self._fetch(conn, "SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)):
                raise NotFound(f"no job {job_id}")
            await conn.execute(
                "INSERT INTO watch_positions (job_id, seconds, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE"
                " SET seconds = excluded.seconds, updated_at = excluded.updated_at",
                (job_id, float(seconds), now),
            )

    async def get_position(self, job_id: str) -> float | None:
        rows = await self._rows("SELECT seconds FROM watch_positions WHERE job_id = ?", (job_id,))
        return float(rows[0]["seconds"]) if rows else None

    async def recent_positions(self, limit: int = 20) -> list[Position]:
        """The most recently updated positions, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        rows = await self._rows(
            "SELECT job_id, seconds, updated_at FROM watch_positions"
            " ORDER BY updated_at DESC, job_id LIMIT ?",
            (limit,),
        )
        return [Position(row["job_id"], row["seconds"], row["updated_at"]) for row in rows]

    # -- http cache ----------------------------------------------------------------
    async def cache_get(self, key: str, now: float | None = None) -> bytes | None:
        """The cached bytes for ``key``, or None when absent or expired."""
        at = self._clock() if now is None else now
        rows = await self._rows(
            "SELECT value FROM http_cache WHERE key = ? AND expires_at > ?", (key, at)
        )
        return bytes(rows[0]["value"]) if rows else None

    async def cache_put(
        self, key: str, value: bytes, ttl_seconds: float, now: float | None = None
    ) -> None:
        """Cache ``value`` under ``key`` for ``ttl_seconds``, replacing what was there."""
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds!r}")
        at = self._clock() if now is None else now
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO http_cache (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value, expires_at = excluded.expires_at",
                (key, bytes(value), at + ttl_seconds),
            )

    async def cache_purge(self, now: float | None = None) -> int:
        """Drop expired entries; returns how many went."""
        at = self._clock() if now is None else now
        async with self._write() as conn:
            cursor = await conn.execute("DELETE FROM http_cache WHERE expires_at <= ?", (at,))
            return cursor.rowcount

    # -- sessions ------------------------------------------------------------------
    async def create_session(self, session_id: str, data: str, expires_at: float) -> Session:
        now = self._clock()
        async with self._write() as conn:
            if await self._fetch(
                conn, "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ):
                raise AlreadyExists("that session id exists already")
            await conn.execute(
                "INSERT INTO sessions (session_id, data, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (session_id, data, now, expires_at),
            )
        return Session(session_id, data, now, float(expires_at))

    async def get_session(self, session_id: str, now: float | None = None) -> Session | None:
        """The session, or None when unknown or expired."""
        at = self._clock() if now is None else now
        rows = await self._rows(
            "SELECT session_id, data, created_at, expires_at FROM sessions"
            " WHERE session_id = ? AND expires_at > ?",
            (session_id, at),
        )
        if not rows:
            return None
        row = rows[0]
        return Session(row["session_id"], row["data"], row["created_at"], row["expires_at"])

    async def delete_session(self, session_id: str) -> bool:
        """Forget a session (log out); False if there was none."""
        async with self._write() as conn:
            cursor = await conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            return cursor.rowcount > 0

    async def purge_sessions(self, now: float | None = None) -> int:
        """Drop expired sessions; returns how many went."""
        at = self._clock() if now is None else now
        async with self._write() as conn:
            cursor = await conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (at,))
            return cursor.rowcount


# --------------------------------------------------------------------------- opening


async def _prepare(conn: aiosqlite.Connection, path: Path, busy_ms: int) -> None:
    """Check that the file is ours and not from the future, then configure and migrate it."""
    # PRAGMA takes no parameters; busy_ms is an int we computed
    await conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    try:
        version = int(await _scalar(conn, "PRAGMA user_version"))
        app_id = int(await _scalar(conn, "PRAGMA application_id"))
        objects = int(await _scalar(conn, "SELECT count(*) FROM sqlite_schema"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a SQLite database, or it is corrupt: {exc}") from exc
    if (version > 0 and app_id != APPLICATION_ID) or (version == 0 and objects > 0):
        raise StoreError(f"{path} is a SQLite database of another program, not Matinee's")
    latest = len(MIGRATIONS)
    if version > latest:
        raise StoreError(
            f"{path} has schema version {version}, but this Matinee knows versions up to "
            f"{latest}: it was written by a newer Matinee; upgrade Matinee to open it"
        )
    mode = await _scalar(conn, "PRAGMA journal_mode = WAL")
    if str(mode).lower() != "wal":
        # e.g. a file system without shared memory; still correct, only reads wait on writes
        log.warning("%s: SQLite would not use WAL (journal_mode=%s)", path, mode)
    # NORMAL is durable in WAL mode except for the last commits before a power cut
    await conn.execute("PRAGMA synchronous = NORMAL")
    # per connection, and a no-op inside a transaction: set once here
    await conn.execute("PRAGMA foreign_keys = ON")
    for number in range(version + 1, latest + 1):
        await _migrate(conn, path, number)


async def _migrate(conn: aiosqlite.Connection, path: Path, number: int) -> None:
    """Apply migration ``number`` and record it, all in one transaction."""
    try:
        await conn.execute("BEGIN IMMEDIATE")
        # another process may have migrated while we waited for the write lock
        if int(await _scalar(conn, "PRAGMA user_version")) >= number:
            await conn.execute("ROLLBACK")
            return
        for statement in split_statements(MIGRATIONS[number - 1]):
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {int(number)}")
        await conn.execute("COMMIT")
    except BaseException as exc:
        await asyncio.shield(_rollback(conn))
        if isinstance(exc, sqlite3.Error | ValueError):
            raise StoreError(f"{path}: migration {number} failed: {exc}") from exc
        raise
    log.info("%s: applied schema migration %d", path, number)


@asynccontextmanager
async def store_context(path: Path, *, clock: Clock = time.time) -> AsyncIterator[Store]:
    """The store open for the duration of the block; for the app's cleanup context."""
    store = await Store.open(path, clock=clock)
    try:
        yield store
    finally:
        await store.close()
