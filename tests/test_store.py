"""server.store: every table's queries, the job lifecycle, concurrency, persistence, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server import errors
from server.errors import AlreadyExists, InvalidTransition, NotFound, StoreError
from server.http.errors import status_and_code
from server.jobs import lifecycle
from server.jobs.lifecycle import MediaKind, Status
from server.store import migrations
from server.store.db import Store, store_context
from server.store.db import backup as store_mod_backup
from server.store.events import Note
from server.store.jobs import Job, Media, new_job_id
from server.store.migrations import split_statements
from server.store.positions import Position
from tests.support.jobs import PATHS, job_in, new_job, step

T0 = 1_700_000_000.0


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "matinee.sqlite3"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    async with store_context(db_path, clock=clock) as opened:
        yield opened


async def progress(store: Store, job_id: str, done: int) -> Job:
    """A progress write: ``done`` bytes of 100 (so progress is ``done`` per cent, up to 100)."""
    return await store.jobs.record_progress(
        job_id, bytes_done=done, bytes_total=100, speed_bps=0.0, eta_seconds=None
    )


def pragma(path: Path, name: str) -> Any:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


# The lifecycle as the issue states it, written out independently of the module's table:
# forward, the retry edge back to queued (never through error), failing, and deleting.
ALLOWED: set[tuple[str, str]] = {
    ("queued", "downloading"),
    ("downloading", "preparing"),
    ("preparing", "ready"),
    ("downloading", "queued"),
    ("preparing", "queued"),
    *((old, "error") for old in ("queued", "downloading", "preparing")),
    *((old, "deleted") for old in ("queued", "downloading", "preparing", "ready", "error")),
}


# --------------------------------------------------------------------------- job ids


def test_new_job_id_format_and_uniqueness() -> None:
    assert re.fullmatch(r"job_1700000000123_[0-9a-f]{8}", new_job_id(1_700_000_000.123))
    assert re.fullmatch(r"job_\d{13}_[0-9a-f]{8}", new_job_id())
    assert len({new_job_id(T0) for _ in range(1000)}) == 1000


# --------------------------------------------------------------------------- jobs


async def test_create_and_get_round_trip_every_field(store: Store, clock: FakeClock) -> None:
    job = new_job(
        movie_id=603,
        progress=12.5,
        playable=True,
        bytes_done=1_000,
        bytes_total=8_000_000_000,
        speed_bps=1.5e7,
        eta_seconds=42.0,
        error_message="none yet",
        release_title="The.Matrix.1999.1080p.BluRay.x264-GROUP",
        release_id="guid-1",
        mode="auto",
        attempt=2,
        source="fetch",
        nzb_name="matrix.nzb",
        media_name="The.Matrix.mkv",
        media_kind="rar",
        content_type="video/x-matroska",
        media_size=7_900_000_000,
        ready_at=T0 + 5,
        expires_at=T0 + 86_400,
    )
    created = await store.jobs.create(job)
    # zero timestamps mean "now" by the store's clock; everything else is kept as given
    assert created == dataclasses.replace(job, created_at=T0, updated_at=T0)
    assert await store.jobs.get(job.job_id) == created
    assert isinstance(created.playable, bool)
    assert await store.jobs.get("job_0_00000000") is None


async def test_create_job_keeps_given_timestamps(store: Store) -> None:
    created = await store.jobs.create(new_job(created_at=T0 - 60, updated_at=T0 - 30))
    assert (created.created_at, created.updated_at) == (T0 - 60, T0 - 30)


async def test_create_job_refuses_duplicates_and_bad_values(store: Store) -> None:
    job = await store.jobs.create(new_job())
    with pytest.raises(AlreadyExists, match=job.job_id) as caught:
        await store.jobs.create(new_job(job_id=job.job_id, dir="/elsewhere"))
    assert status_and_code(caught.value)[0] == 409
    assert (await store.jobs.get(job.job_id)) == job

    bad: list[dict[str, Any]] = [
        {"status": "ready"},  # a job starts queued
        {"status": "paused"},
        {"mode": "magic"},
        {"source": "carrier-pigeon"},
        {"media_kind": "zip"},
        {"progress": 100.5},
        {"progress": -1.0},
        {"progress": math.nan},
        {"playable": 1},
        {"bytes_done": -5},
        {"bytes_total": 1.5},
        {"movie_id": "603"},
        {"movie_id": True},
        {"attempt": 0},
        {"eta_seconds": math.inf},
        {"dir": ""},
    ]
    for fields in bad:
        candidate = new_job(**fields)
        with pytest.raises(ValueError):
            await store.jobs.create(candidate)
        assert await store.jobs.get(candidate.job_id) is None, fields


async def test_list_jobs_newest_updated_first_and_by_status(store: Store, clock: FakeClock) -> None:
    first = await store.jobs.create(new_job())
    clock.advance()
    second = await store.jobs.create(new_job())
    clock.advance()
    third = await store.jobs.create(new_job())
    clock.advance()
    first = await store.jobs.start_download(first.job_id)

    assert [j.job_id for j in await store.jobs.list()] == [
        first.job_id,
        third.job_id,
        second.job_id,
    ]
    assert [j.job_id for j in await store.jobs.list(Status.QUEUED)] == [third.job_id, second.job_id]
    assert await store.jobs.list(Status.DOWNLOADING) == [first]
    assert await store.jobs.list(Status.READY) == []
    with pytest.raises(ValueError, match="nonsense"):
        await store.jobs.list("nonsense")  # type: ignore[arg-type]


async def test_the_schema_checks_exactly_the_lifecycle_vocabulary(db_path: Path) -> None:
    # The CHECK constraints are literal SQL in append-only migrations; the lifecycle module
    # owns the words. A status, mode or failure added there needs a migration here.
    async with store_context(db_path):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'jobs'").fetchone()

    def allowed(column: str) -> set[str]:
        found = re.search(rf"{column}\s+TEXT[^,]*?CHECK \({column} IN\s*\(([^)]*)\)", sql)
        assert found is not None, column
        return set(re.findall(r"'([a-z_]+)'", found[1]))

    assert allowed("status") == {s.value for s in lifecycle.Status}
    assert allowed("mode") == {m.value for m in lifecycle.Mode}
    assert allowed("source") == {s.value for s in lifecycle.Source}
    assert allowed("media_kind") == {k.value for k in lifecycle.MediaKind}
    assert allowed("failure") == {f.value for f in lifecycle.Failure}
    assert allowed("mirror") == {m.value for m in lifecycle.MirrorState}


async def test_named_changes_set_their_fields_and_stamp_updated_at(
    store: Store, clock: FakeClock
) -> None:
    job = await store.jobs.create(new_job())
    clock.advance(7)
    started = await store.jobs.start_download(job.job_id)
    progressed = await store.jobs.record_progress(
        job.job_id, bytes_done=4_000, bytes_total=8_000, speed_bps=2_000, eta_seconds=None
    )
    media = Media("movie.mkv", MediaKind.FILE, "video/x-matroska", 8_000)
    playable = await store.jobs.mark_playable(job.job_id, media)
    assert started == dataclasses.replace(job, status=Status.DOWNLOADING, updated_at=T0 + 7)
    assert playable == dataclasses.replace(
        job,
        status=Status.DOWNLOADING,
        progress=50.0,
        bytes_done=4_000,
        bytes_total=8_000,
        speed_bps=2_000.0,
        playable=True,
        media_name="movie.mkv",
        media_kind=MediaKind.FILE,
        content_type="video/x-matroska",
        media_size=8_000,
        updated_at=T0 + 7,
    )
    assert progressed.progress == 50.0 and playable.created_at == T0
    assert await store.jobs.get(job.job_id) == playable


async def test_a_retry_goes_back_to_queued_and_forgets_the_last_release(
    store: Store, clock: FakeClock
) -> None:
    job = await job_in(store, "downloading", release_title="First.Try.2020")
    await store.jobs.record_progress(
        job.job_id, bytes_done=10, bytes_total=100, speed_bps=5.0, eta_seconds=18.0
    )
    retried = await store.jobs.retry(job.job_id)
    assert (retried.status, retried.attempt, retried.progress) == ("queued", 2, 0.0)
    assert (retried.playable, retried.bytes_done, retried.eta_seconds) == (False, 0, None)
    assert retried.error_message is None and retried.failure is None
    # a job that failed or is ready does not go back by the retry edge
    for status in ("error", "ready", "deleted"):
        other = await job_in(store, status)
        with pytest.raises(InvalidTransition):
            await store.jobs.retry(other.job_id)


async def test_named_changes_refuse_bad_values_and_write_nothing(store: Store) -> None:
    job = await store.jobs.create(new_job())
    with pytest.raises(ValueError, match=r"bytes_done|progress"):
        await store.jobs.record_progress(
            job.job_id, bytes_done=-1, bytes_total=10, speed_bps=0.0, eta_seconds=None
        )
    with pytest.raises(ValueError, match="eta_seconds"):
        await store.jobs.record_progress(
            job.job_id, bytes_done=1, bytes_total=10, speed_bps=0.0, eta_seconds=math.nan
        )
    bad_kind = Media("movie.iso", "iso", "application/octet-stream", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="media_kind"):
        await store.jobs.mark_playable(job.job_id, bad_kind)
    assert await store.jobs.get(job.job_id) == job


async def test_update_job_unknown_id_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        await store.jobs.start_download("job_1_00000000")
    # a 404 when it reaches the API
    assert isinstance(caught.value, errors.NotFound)
    assert status_and_code(caught.value)[0] == 404
    assert str(caught.value) == "no job job_1_00000000"


async def test_status_transitions_follow_the_lifecycle(store: Store) -> None:
    statuses = list(PATHS)
    for old in statuses:
        for new in statuses:
            if old == new:
                continue
            job = await job_in(store, old)
            if (old, new) in ALLOWED:
                assert (await step(store, job, Status(new))).status == new
            else:
                with pytest.raises(InvalidTransition) as caught:
                    await step(store, job, Status(new))
                message = str(caught.value)
                assert f"{old.value!r}" in message and f"{new.value!r}" in message, message
                assert status_and_code(caught.value)[0] == 409
                assert await store.jobs.get(job.job_id) == job  # nothing of it was written


async def test_same_status_update_is_not_a_transition(store: Store) -> None:
    job = await job_in(store, "error", error_message="first")
    again = await store.jobs.fail(job.job_id, "second", job.failure or "usenet")  # type: ignore[arg-type]
    assert again.error_message == "second"
    deleted = await job_in(store, "deleted")
    assert (await store.jobs.mark_deleted(deleted.job_id)).status == "deleted"


async def test_a_change_and_its_event_are_written_together(store: Store) -> None:
    job = await job_in(store, "preparing")
    media = Media("Film.mkv", MediaKind.FILE, "video/x-matroska", 10)
    note = Note("ready", "Film.mkv is ready", {"size": 10})
    ready = await store.jobs.mark_ready(job.job_id, media, ready_at=1.0, expires_at=2.0, note=note)
    events = await store.events.list(job.job_id)
    assert [(e.kind, e.message, e.data) for e in events] == [
        ("ready", "Film.mkv is ready", {"size": 10})
    ]
    assert events[0].at == ready.updated_at
    # A change the lifecycle refuses writes neither the change nor its event.
    deleted = await job_in(store, "deleted")
    with pytest.raises(InvalidTransition):
        await store.jobs.fail(
            deleted.job_id, "late", lifecycle.Failure.USENET, note=Note("error", "late")
        )
    assert await store.events.list(deleted.job_id) == []


async def test_active_job_for_movie(store: Store, clock: FakeClock) -> None:
    await job_in(store, "deleted", movie_id=603)
    await job_in(store, "error", movie_id=603)
    await job_in(store, "queued", movie_id=604)
    assert await store.jobs.current_for_movie(603) is None
    assert await store.jobs.current_for_movie(999) is None

    for status in ("queued", "downloading", "preparing", "ready"):
        clock.advance()
        job = await job_in(store, status, movie_id=700)
        assert await store.jobs.current_for_movie(700) == job
        await store.jobs.mark_deleted(job.job_id)
    assert await store.jobs.current_for_movie(700) is None


async def test_unfinished_jobs_are_what_resumes(store: Store, clock: FakeClock) -> None:
    made: dict[str, Job] = {}
    for status in ("ready", "preparing", "error", "queued", "deleted", "downloading"):
        clock.advance()
        made[status] = await job_in(store, status)
    unfinished = await store.jobs.unfinished()
    assert [j.job_id for j in unfinished] == [
        made["preparing"].job_id,
        made["queued"].job_id,
        made["downloading"].job_id,
    ]


async def test_expired_jobs(store: Store, clock: FakeClock) -> None:
    ready = await job_in(store, "ready")
    ready = await store.jobs.set_expiry(ready.job_id, T0 + 100)
    failed = await job_in(store, "error")
    failed = await store.jobs.set_expiry(failed.job_id, T0 + 50)
    gone = await job_in(store, "deleted")
    await store.jobs.set_expiry(gone.job_id, T0 + 10)
    later = await job_in(store, "ready")
    await store.jobs.set_expiry(later.job_id, T0 + 1_000)
    await job_in(store, "ready")  # no timer at all

    assert await store.jobs.expired(T0 + 49) == []
    assert await store.jobs.expired(T0 + 100) == [failed, ready]
    clock.now = T0 + 60
    assert await store.jobs.expired() == [failed]


async def test_purge_job_cascades_to_events_and_position(store: Store) -> None:
    job = await store.jobs.create(new_job())
    keep = await store.jobs.create(new_job())
    for j in (job, keep):
        await store.events.add(j.job_id, "queued", "queued")
        await store.positions.set(j.job_id, 30.0)
    assert await store.jobs.purge(job.job_id) is True
    assert await store.jobs.get(job.job_id) is None
    assert await store.events.list(job.job_id) == []
    assert await store.positions.get(job.job_id) is None
    assert await store.jobs.purge(job.job_id) is False
    assert len(await store.events.list(keep.job_id)) == 1
    assert await store.positions.get(keep.job_id) == 30.0


# --------------------------------------------------------------------------- job events


async def test_events_oldest_first_with_data(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    other = await store.jobs.create(new_job())
    first = await store.events.add(job.job_id, "queued", "queued from upload")
    clock.advance()
    await store.events.add(other.job_id, "queued", "someone else's")
    clock.advance()
    second = await store.events.add(
        job.job_id, "playable", "head and tail on disk", {"kind": "file", "bytes": (1, 2)}
    )
    assert (first.kind, first.message, first.data, first.at) == (
        "queued",
        "queued from upload",
        {},
        T0,
    )
    assert second.data == {"kind": "file", "bytes": [1, 2]}
    assert await store.events.list(job.job_id) == [first, second]
    assert first.id < second.id
    assert await store.events.list("job_1_00000000") == []


async def test_add_event_refuses_unknown_job_and_bad_data(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.events.add("job_1_00000000", "queued", "nobody")
    job = await store.jobs.create(new_job())
    with pytest.raises(ValueError, match="JSON"):
        await store.events.add(job.job_id, "x", "y", {"when": object()})
    with pytest.raises(ValueError, match="JSON"):
        await store.events.add(job.job_id, "x", "y", {"rate": math.nan})
    assert await store.events.list(job.job_id) == []


# --------------------------------------------------------------------------- positions


async def test_watch_positions(store: Store, clock: FakeClock) -> None:
    a = await store.jobs.create(new_job())
    b = await store.jobs.create(new_job())
    c = await store.jobs.create(new_job())
    assert await store.positions.get(a.job_id) is None
    await store.positions.set(a.job_id, 10.0)
    clock.advance()
    await store.positions.set(b.job_id, 20)
    clock.advance()
    await store.positions.set(c.job_id, 30.5)
    clock.advance()
    await store.positions.set(a.job_id, 1234.25)  # moves a to the front

    assert await store.positions.get(a.job_id) == 1234.25
    recent = await store.positions.recent(2)
    assert recent == [Position(a.job_id, 1234.25, T0 + 3), Position(c.job_id, 30.5, T0 + 2)]
    job_id, seconds, updated_at = recent[0]
    assert (job_id, seconds, updated_at) == (a.job_id, 1234.25, T0 + 3)
    assert [p.job_id for p in await store.positions.recent(10)] == [a.job_id, c.job_id, b.job_id]

    with pytest.raises(NotFound):
        await store.positions.set("job_1_00000000", 1.0)
    for wrong in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            await store.positions.set(a.job_id, wrong)
    with pytest.raises(ValueError):
        await store.positions.recent(0)
    assert await store.positions.get(a.job_id) == 1234.25


# --------------------------------------------------------------------------- http cache


async def test_http_cache(store: Store, clock: FakeClock) -> None:
    body = bytes(range(256)) * 4
    await store.cache.put("tmdb:/movie/603", body, 3600, T0)
    assert await store.cache.get("tmdb:/movie/603", T0 + 3599.9) == body
    assert await store.cache.get("tmdb:/movie/603", T0 + 3600) is None  # expired at the ttl
    assert await store.cache.get("tmdb:/movie/604", T0) is None

    # a put replaces value and lifetime; the store's clock is the default "now"
    await store.cache.put("tmdb:/movie/603", b"{}", 10)
    assert await store.cache.get("tmdb:/movie/603") == b"{}"
    clock.advance(10)
    assert await store.cache.get("tmdb:/movie/603") is None

    await store.cache.put("short", b"1", 5, T0)
    await store.cache.put("long", b"2", 500, T0)
    assert await store.cache.purge(T0 + 100) == 2  # "short" and the replaced 603
    assert await store.cache.get("long", T0 + 100) == b"2"
    assert await store.cache.purge(T0 + 100) == 0

    for ttl in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError):
            await store.cache.put("k", b"v", ttl, T0)


# --------------------------------------------------------------------------- sessions


async def test_sessions(store: Store, clock: FakeClock) -> None:
    created = await store.sessions.create("s1", '{"user": "home"}', T0 + 60)
    assert (created.session_id, created.data, created.created_at) == ("s1", '{"user": "home"}', T0)
    assert await store.sessions.get("s1", T0 + 59) == created
    assert await store.sessions.get("s1", T0 + 60) is None
    assert await store.sessions.get("nope", T0) is None
    with pytest.raises(AlreadyExists):
        await store.sessions.create("s1", "other", T0 + 999)

    await store.sessions.create("s2", "x", T0 + 10)
    await store.sessions.create("s3", "y", T0 + 1_000)
    assert await store.sessions.delete("s3") is True
    assert await store.sessions.delete("s3") is False
    assert await store.sessions.get("s3", T0) is None
    assert await store.sessions.purge(T0 + 100) == 2
    clock.advance(5)
    assert await store.sessions.get("s1") is None


# --------------------------------------------------------------------------- concurrency


async def test_fifty_concurrent_writes_all_land(store: Store) -> None:
    jobs = [await store.jobs.create(new_job()) for _ in range(50)]

    async def reader() -> None:
        for job in jobs[:10]:
            assert await store.jobs.get(job.job_id) is not None

    calls = [
        *(progress(store, j.job_id, i) for i, j in enumerate(jobs)),
        *(store.events.add(j.job_id, "tick", f"tick {i}", {"i": i}) for i, j in enumerate(jobs)),
        *(reader() for _ in range(5)),
    ]
    await asyncio.gather(*calls)

    for i, job in enumerate(jobs):
        stored = await store.jobs.get(job.job_id)
        assert stored is not None and (stored.bytes_done, stored.progress) == (i, float(i))
        events = await store.events.list(job.job_id)
        assert [(e.message, e.data) for e in events] == [(f"tick {i}", {"i": i})]


async def test_two_stores_on_one_file_write_concurrently(store: Store, db_path: Path) -> None:
    # a second process (say `matinee download` beside the server) also holds a writer:
    # BEGIN IMMEDIATE plus busy_timeout make them take turns instead of failing
    job = await store.jobs.create(new_job())
    async with store_context(db_path) as other:
        await asyncio.gather(
            *(store.events.add(job.job_id, "a", str(i)) for i in range(25)),
            *(other.events.add(job.job_id, "b", str(i)) for i in range(25)),
        )
        # each sees what the other committed
        seen = await other.events.list(job.job_id)
        assert len(seen) == 50 and sorted(e.kind for e in seen) == ["a"] * 25 + ["b"] * 25
        moved = await other.jobs.start_download(job.job_id)
        assert await store.jobs.get(job.job_id) == moved


async def test_reads_see_committed_writes(store: Store) -> None:
    job = await store.jobs.create(new_job())
    for i in range(20):
        updated = await progress(store, job.job_id, i)
        assert await store.jobs.get(job.job_id) == updated
    await store.positions.set(job.job_id, 5.0)
    assert await store.positions.get(job.job_id) == 5.0


async def test_a_cancelled_write_leaves_the_store_usable(store: Store) -> None:
    job = await store.jobs.create(new_job())
    # cancel update_job at every point it can be suspended; the next write must still work
    for steps in range(12):
        task = asyncio.create_task(progress(store, job.job_id, steps + 1000))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        done = await progress(store, job.job_id, steps)
        assert done.bytes_done == steps
        event = await store.events.add(job.job_id, "after", str(steps))
        assert event.message == str(steps)


# --------------------------------------------------------------------------- the file


async def test_everything_persists_across_reopen(db_path: Path, clock: FakeClock) -> None:
    async with store_context(db_path, clock=clock) as store:
        job = await job_in(store, "ready", movie_id=603)
        event = await store.events.add(job.job_id, "ready", "done", {"size": 5})
        await store.positions.set(job.job_id, 61.5)
        await store.cache.put("k", b"\x00value", 100, T0)
        session = await store.sessions.create("s", "data", T0 + 100)

    async with store_context(db_path, clock=clock) as store:
        assert await store.jobs.get(job.job_id) == job
        assert await store.jobs.current_for_movie(603) == job
        assert await store.events.list(job.job_id) == [event]
        assert await store.positions.get(job.job_id) == 61.5
        assert await store.cache.get("k", T0 + 1) == b"\x00value"
        assert await store.sessions.get("s", T0 + 1) == session
    # the file is in WAL mode and carries its schema version and our application id
    assert pragma(db_path, "journal_mode") == "wal"
    assert pragma(db_path, "user_version") == len(migrations.MIGRATIONS)
    assert pragma(db_path, "application_id") == migrations.APPLICATION_ID


async def test_closed_store_says_so(db_path: Path) -> None:
    async with store_context(db_path) as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        await store.jobs.get("job_1_00000000")
    with pytest.raises(StoreError, match="closed"):
        await store.jobs.create(new_job())
    await store.close()  # a second close is harmless


async def test_writes_racing_close_finish_or_say_closed(db_path: Path) -> None:
    store = await Store.open(db_path)
    job = await store.jobs.create(new_job())
    results = await asyncio.gather(
        progress(store, job.job_id, 1),
        store.close(),
        store.events.add(job.job_id, "late", "after close"),
        return_exceptions=True,
    )
    # the write that held the lock finished; the one queued behind close() is told why not
    assert isinstance(results[0], Job) and results[0].bytes_done == 1
    assert results[1] is None
    assert isinstance(results[2], StoreError) and "closed" in str(results[2])
    async with store_context(db_path) as reopened:
        assert await reopened.jobs.get(job.job_id) == results[0]


@pytest.fixture
def corrupt_file(db_path: Path) -> Path:
    db_path.write_bytes(random.Random(3).randbytes(64 * 1024))
    return db_path


async def test_corrupt_file_is_refused_naming_the_path(corrupt_file: Path) -> None:
    db_path = corrupt_file
    with pytest.raises(StoreError) as caught:
        await Store.open(db_path)
    assert str(db_path) in str(caught.value)
    assert "not a SQLite database" in str(caught.value)


async def test_unopenable_path_is_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "matinee.sqlite3"
    with pytest.raises(StoreError, match=re.escape(str(missing))):
        await Store.open(missing)


async def test_another_programs_database_is_refused(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
        conn.commit()
    with pytest.raises(StoreError, match="another program") as caught:
        await Store.open(db_path)
    assert str(db_path) in str(caught.value)
    assert pragma(db_path, "user_version") == 0  # left as it was


# --------------------------------------------------------------------------- migrations


async def test_an_existing_database_gets_later_migrations_only(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", real[:1])
    async with store_context(db_path):
        pass
    assert pragma(db_path, "user_version") == 1
    # a row as a Matinee of schema version 1 wrote it
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO jobs (job_id, status, mode, source, dir, created_at, updated_at)"
            " VALUES ('job_1_00000001', 'queued', 'nzb', 'upload', '/x', ?, ?)",
            (T0, T0),
        )
    job = new_job(job_id="job_1_00000001", dir="/x", created_at=T0, updated_at=T0)

    # v2 copies what v1 created; if v1 ran again its CREATE TABLE would fail the open
    extra = """
        CREATE TABLE job_notes (job_id TEXT PRIMARY KEY REFERENCES jobs (job_id), note TEXT);
        INSERT INTO job_notes (job_id, note) SELECT job_id, 'migrated; kept' FROM jobs;
    """
    monkeypatch.setattr(migrations, "MIGRATIONS", (*real, extra))
    async with store_context(db_path) as store:
        assert await store.jobs.get(job.job_id) == job
    assert pragma(db_path, "user_version") == len(real) + 1
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        notes = conn.execute("SELECT job_id, note FROM job_notes").fetchall()
    assert notes == [(job.job_id, "migrated; kept")]

    # opening again at the same version applies nothing
    async with store_context(db_path) as store:
        assert await store.jobs.get(job.job_id) == job


async def test_a_failed_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store_context(db_path) as store:
        job = await store.jobs.create(new_job())
    real = migrations.MIGRATIONS
    broken = "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(migrations, "MIGRATIONS", (*real, broken))
    with pytest.raises(StoreError, match=f"migration {len(real) + 1} failed") as caught:
        await Store.open(db_path)
    assert str(db_path) in str(caught.value)
    assert pragma(db_path, "user_version") == len(real)
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
    assert "half_done" not in tables

    monkeypatch.setattr(migrations, "MIGRATIONS", real)
    async with store_context(db_path) as store:
        assert await store.jobs.get(job.job_id) == job


async def test_a_database_from_a_newer_matinee_is_refused(db_path: Path) -> None:
    async with store_context(db_path) as store:
        await store.jobs.create(new_job())
    newer = len(migrations.MIGRATIONS) + 3
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(StoreError) as caught:
        await Store.open(db_path)
    message = str(caught.value)
    assert str(db_path) in message
    assert f"version {newer}" in message and "newer Matinee" in message
    assert pragma(db_path, "user_version") == newer  # not touched


def test_split_statements() -> None:
    script = """
        CREATE TABLE a (x TEXT DEFAULT ';');
        -- a comment; with a semicolon
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'y;z'; DELETE FROM a WHERE x = ';';
        END;
        INSERT INTO a VALUES ('1'); INSERT INTO a VALUES ('2');
        -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[0] == "CREATE TABLE a (x TEXT DEFAULT ';');"
    # a comment sticks to the statement after it; the trigger body stays whole
    assert statements[1].startswith("-- a comment") and statements[1].endswith("END;")
    assert statements[2:] == ["INSERT INTO a VALUES ('1');", "INSERT INTO a VALUES ('2');"]
    with pytest.raises(ValueError, match="without ';'"):
        split_statements("CREATE TABLE a (x); CREATE TABLE b (y)")
    # the shipped migrations split cleanly, and each piece is one complete statement
    for migration in migrations.MIGRATIONS:
        assert all(sqlite3.complete_statement(s) for s in split_statements(migration))


async def test_a_damaged_database_is_refused_at_start_saying_what_to_do(db_path: Path) -> None:
    async with store_context(db_path) as store:
        for _ in range(200):  # enough rows for several pages
            await store.jobs.create(new_job(error_message="x" * 500))

    def damage() -> None:  # a disk error in the middle of the file
        with db_path.open("r+b") as f:
            f.seek(db_path.stat().st_size // 2)
            f.write(bytes(range(256)) * 16)

    await asyncio.to_thread(damage)
    with pytest.raises(StoreError) as caught:
        async with store_context(db_path):
            pass
    message = str(caught.value)
    assert str(db_path) in message and "damaged" in message
    assert "backup" in message


async def test_backup_while_the_store_is_in_use(db_path: Path, tmp_path: Path) -> None:
    async with store_context(db_path) as store:
        job = await job_in(store, "ready", release_title="Kept.2020")
        await store.events.add(job.job_id, "ready", "done")
        copy = tmp_path / "backup.sqlite3"
        writes = asyncio.gather(*(store.events.add(job.job_id, "tick", str(i)) for i in range(50)))
        await store_mod_backup(db_path, copy)
        await writes
    assert copy.stat().st_mode & 0o777 == 0o600
    async with store_context(copy) as restored:  # a valid Matinee database, whole
        assert (await restored.jobs.get(job.job_id)) == job
        assert [e.kind for e in await restored.events.list(job.job_id)][:1] == ["ready"]
