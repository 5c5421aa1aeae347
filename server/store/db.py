"""Matinee's state in one SQLite file, and the `Store` that groups its queries per table.

One write connection runs every write inside ``BEGIN IMMEDIATE``, serialised by an
``asyncio.Lock``; a second connection only reads, so reads never queue behind writes (WAL).
The schema is applied at open from ``server.store.migrations``. Queries are literal SQL with
``?`` parameters in one module per table (jobs, events, positions, cache, sessions,
preferences), and
return frozen dataclasses; no row objects leave the package. Time comes from arguments or
from the clock given at open, never from sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import web

from server.errors import StoreError
from server.keys import SETTINGS, STORE
from server.store import migrations
from server.store.cache import CacheTable
from server.store.credentials import CredentialsTable
from server.store.events import EventsTable
from server.store.jobs import JobsTable
from server.store.migrations import APPLICATION_ID, split_statements
from server.store.positions import PositionsTable
from server.store.preferences import PreferencesTable
from server.store.sessions import SessionsTable
from server.store.uploads import UploadsTable

log = logging.getLogger(__name__)

Clock = Callable[[], float]
FILE_NAME = "matinee.sqlite3"


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


class Database:
    """The open file: one write connection, one read connection, and the clock. The tables'
    query classes share one; make it with `Database.open`, close it once."""

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
        self.clock = clock
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock = time.time, busy_timeout: float = 5.0
    ) -> Database:
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
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
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
                for callback in self._after_commit:
                    callback()
            except BaseException as exc:
                # Shielded so that a cancelled caller still queues its ROLLBACK; aiosqlite
                # runs statements in order, so the next writer's BEGIN comes after it.
                await asyncio.shield(_rollback(conn))
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {exc}") from exc
                raise
            finally:
                self._after_commit.clear()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Inside a write: call ``callback`` once the transaction has committed (readers see
        its changes by then); forgotten when it rolls back."""
        self._after_commit.append(callback)

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    @staticmethod
    async def fetch(
        conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await conn.execute_fetchall(sql, tuple(params)))


class Store:
    """The open database, its queries grouped per table: ``store.jobs.get(...)``,
    ``store.events.add(...)``, ``store.positions``, ``store.cache``, ``store.sessions``,
    ``store.credentials``, ``store.preferences``, ``store.uploads``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.path = db.path
        self.jobs = JobsTable(db)
        self.events = EventsTable(db)
        self.positions = PositionsTable(db)
        self.cache = CacheTable(db)
        self.sessions = SessionsTable(db)
        self.credentials = CredentialsTable(db)
        self.uploads = UploadsTable(db)
        self.preferences = PreferencesTable(db)

    @classmethod
    async def open(cls, path: Path, *, clock: Clock = time.time) -> Store:
        """Open (or create) the database at ``path``; see `Database.open`."""
        return cls(await Database.open(path, clock=clock))

    async def close(self) -> None:
        await self.db.close()


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
    if version > 0:
        await _check_integrity(conn, path)
    latest = len(migrations.MIGRATIONS)
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


async def _check_integrity(conn: aiosqlite.Connection, path: Path) -> None:
    """A damaged file is refused at start-up, saying what to do, rather than failing on some
    later query (quick_check: every page and index, without cross-checking contents)."""
    try:
        rows = list(await conn.execute_fetchall("PRAGMA quick_check(5)"))
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    else:
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
    if problems:
        raise StoreError(
            f"{path} is damaged ({'; '.join(problems)[:300]}). Stop Matinee, move the file"
            " aside and put a backup in its place (`matinee backup` makes one), or move it"
            " aside and start afresh: downloads and settings in the file are then lost"
        )


async def backup(source: Path, target: Path) -> None:
    """A consistent copy of the database at ``target`` while it may be in use (SQLite's
    online backup; the WAL's committed pages included)."""

    def copy() -> None:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            partial = target.with_name(target.name + ".part")
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
            finally:
                dst.close()
            os.chmod(partial, 0o600)
            os.replace(partial, target)
        finally:
            src.close()

    await asyncio.to_thread(copy)


async def _migrate(conn: aiosqlite.Connection, path: Path, number: int) -> None:
    """Apply migration ``number`` and record it, all in one transaction."""
    try:
        await conn.execute("BEGIN IMMEDIATE")
        # another process may have migrated while we waited for the write lock
        if int(await _scalar(conn, "PRAGMA user_version")) >= number:
            await conn.execute("ROLLBACK")
            return
        for statement in split_statements(migrations.MIGRATIONS[number - 1]):
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
    store = Store(await Database.open(path, clock=clock))
    try:
        yield store
    finally:
        await store.close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    data_dir = app[SETTINGS].server.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # secrets and the database
    async with store_context(data_dir / FILE_NAME) as store:
        app[STORE] = store
        yield


def setup(app: web.Application) -> None:
    """The store for the app's lifetime; every other service's context comes after it."""
    app.cleanup_ctx.append(_store_ctx)
