"""Jobs: one movie download from NZB to a playable, then ready, file.

The statuses and the changes between them are ``server.jobs.lifecycle``'s. Every change is
written to SQLite first (through the store's named changes), so a restart resumes unfinished
jobs where the engine's own state file says they were. Each job is one owned task; none is
fire and forget; what one run does is ``server.jobs.runner``'s. ``playable`` turns true as
soon as the head and tail of the video are on disk and the container is known, long before
the download ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from nntp.connection import ServerSpec
from nntp.download import Download
from nntp.line import Line
from nntp.media import MediaView
from nntp.nzb import Nzb, NzbError, parse_nzb
from server.config.settings import Settings
from server.discovery.service import ReleaseSource
from server.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StorageError,
)
from server.jobs.failures import os_reason
from server.jobs.lifecycle import (
    ACTIVE,
    Mode,
    Source,
    Status,
    at_rest,
)
from server.jobs.media import (
    FILES_DIR,
    NZB_FILE,
    static_view,
    tidy_files,
)
from server.jobs.readers import Reading
from server.jobs.runner import JobRunner, Live
from server.jobs.servers import specs_from_settings
from server.keys import DISCOVERY, JOBS, METRICS, SETTINGS, STORE
from server.metrics import Metrics
from server.store.db import Store
from server.store.events import Note
from server.store.jobs import Job, new_job_id

log = logging.getLogger(__name__)

HOUSEKEEPING = 60.0  # seconds between purges of expired cache entries, sessions, old rows
DELETED_ROWS_KEPT = 30 * 86400.0  # a deleted job's row and history stay this long


class JobManager:
    """Owns every job task: submit, resume at start-up, cancel, and delete."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        servers: Sequence[ServerSpec] | None = None,
        releases: ReleaseSource | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.releases = releases
        self._submit_lock = asyncio.Lock()  # one active job per movie, even under races
        self.settings = settings
        self.servers = list(servers) if servers is not None else specs_from_settings(settings)
        self.root = settings.downloads.dir
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.slots = asyncio.Semaphore(max(1, settings.downloads.max_active))
        # The household's line: every job's download shares its budget (the job being
        # watched first) and its warm connections.
        self.line = Line()
        self.metrics.count_servers(lambda: list(self.line.stats.values()))
        self.live_jobs: dict[str, Live] = {}
        self._closing = False
        self._reaper: asyncio.Task[None] | None = None
        #: Called with a job's id before its files on this machine go, deleted or only their
        #: local copy dropped (playback stops the ffmpegs that read them there).
        self.on_files_gone: list[Callable[[str], Awaitable[None]]] = []
        #: Called with a job's id when the job is deleted, after ``on_files_gone`` (the
        #: mirror aborts its upload and deletes its objects in R2).
        self.on_delete: list[Callable[[str], Awaitable[None]]] = []
        # Hooks for the layers above (the mirror): told of every change of a job; asked to
        # make room before a download starts.
        self.listeners: list[Callable[[Job], None]] = []
        #: (the job's id or None before it exists, bytes it needs): returns once there is
        #: room, or raises StorageError saying how much is missing.
        self.make_room: Callable[[str | None, int], Awaitable[None]] | None = None

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for job in await self.store.jobs.unfinished():
            log.info("resuming %s (%s)", job.job_id, job.status)
            self._spawn(job.job_id)
        for job in await self.store.jobs.list(Status.READY):
            view = await asyncio.to_thread(static_view, job)
            if view is not None:
                self.live_jobs.setdefault(job.job_id, Live()).movie.swap(view)
                # Left over when the server stopped before they went; nobody reads them now.
                await asyncio.to_thread(tidy_files, Path(job.dir) / FILES_DIR, view)
        self._reaper = asyncio.create_task(self._housekeeping(), name="housekeeping")

    async def close(self) -> None:
        """Stop every job task; downloads persist their state and resume at next start."""
        self._closing = True
        tasks = [live.task for live in self.live_jobs.values() if live.task is not None]
        if self._reaper is not None:
            tasks.append(self._reaper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.line.close()

    async def housekeeping(self) -> None:
        """What nobody needs any more: expired HTTP cache entries and login sessions, and the
        rows of jobs deleted long ago. (Jobs whose retention ran out are the retention
        scheduler's, in ``server.mirror.retention``.)"""
        now = self.clock()
        await self.store.cache.purge(now)
        await self.store.sessions.purge(now)
        await self.store.jobs.purge_deleted(now - DELETED_ROWS_KEPT)

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.housekeeping()
            except Exception:  # a failed sweep must not stop later ones
                log.exception("housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING)

    # -- submitting --------------------------------------------------------------
    async def submit(
        self,
        nzb_data: bytes,
        *,
        filename: str | None,
        source: Source,
        movie_id: int | None = None,
        release_title: str | None = None,
        release_id: str | None = None,
        mode: Mode = Mode.NZB,
    ) -> Job:
        """Validate an NZB and queue a job for it; answers at once, never awaits the work."""
        try:
            nzb = await asyncio.to_thread(parse_nzb, nzb_data, filename=filename)
        except NzbError as exc:
            raise InvalidInput(f"not a usable NZB: {exc}") from exc
        if not self.servers:
            raise InvalidInput(
                "no Usenet server is configured: add [[usenet.servers]] to the configuration"
            )
        if movie_id is not None:
            active = await self.store.jobs.current_for_movie(movie_id)
            if active is not None and active.status in ACTIVE:
                raise Conflict(f"movie {movie_id} already has an active job {active.job_id}")
        if self.make_room is not None:  # refused now rather than failing later
            await self.make_room(None, nzb.bytes)
        job_id = new_job_id()
        folder = self.root / job_id
        try:
            await asyncio.to_thread(_write_nzb, folder, nzb_data)
        except OSError as exc:
            raise StorageError(f"cannot store the NZB in {self.root}: {os_reason(exc)}") from exc
        job = self._new_job(
            job_id,
            folder,
            movie_id=movie_id,
            mode=mode,
            source=source,
            release_id=release_id,
            release_title=release_title or _title_of(nzb, filename),
            filename=filename,
            size=int(nzb.bytes / 1.03),
        )
        job = await self.store.jobs.create(job)
        await self.store.events.add(job_id, "queued", f"queued from {source}")
        self.live_jobs.setdefault(job_id, Live()).nzb = nzb
        self._spawn(job_id)
        return job

    async def submit_movie(
        self,
        movie_id: int,
        *,
        mode: Mode,
        release_id: str | None = None,
        release_title: str | None = None,
        preference: str = "1080p",
        browser: str = "chrome",
    ) -> tuple[Job, bool]:
        """Queue a job that finds its own release; (job, False) when the movie already has
        an active one. The search and the NZB fetch happen in the job, not in the request.
        ``browser`` is what the pick ranks for: a browser family, or the capabilities JSON
        the player measured (kept with the job, so a retry or a restart ranks the same)."""
        if self.releases is None:
            raise InvalidInput("finding releases needs [tmdb] and [[indexers]] configured")
        if not self.servers:
            raise InvalidInput(
                "no Usenet server is configured: add [[usenet.servers]] to the configuration"
            )
        async with self._submit_lock:
            active = await self.store.jobs.current_for_movie(movie_id)
            if active is not None:
                return active, False
            # Releases that already failed for this movie are not tried again ("try another").
            failed = [
                j.release_id
                for j in await self.store.jobs.list(Status.ERROR)
                if j.movie_id == movie_id and j.release_id and mode == Mode.AUTO
            ]
            job_id = new_job_id()
            folder = self.root / job_id
            try:
                await asyncio.to_thread(folder.mkdir, parents=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the download folder in {self.root}: {os_reason(exc)}"
                ) from exc
            job = await self.store.jobs.create(
                self._new_job(
                    job_id,
                    folder,
                    movie_id=movie_id,
                    mode=mode,
                    source=Source.FETCH,
                    release_id=release_id,
                    release_title=None,
                    filename=None,
                    size=0,
                )
            )
            await self.store.events.add(
                job_id,
                "requested",
                f"{mode} release for movie {movie_id}",
                {
                    "preference": preference,
                    "release_id": release_id,
                    "skip": failed,
                    "browser": browser,
                },
            )
        self._spawn(job_id)
        return job, True

    def _new_job(
        self,
        job_id: str,
        folder: Path,
        *,
        movie_id: int | None,
        mode: Mode,
        source: Source,
        release_id: str | None,
        release_title: str | None,
        filename: str | None,
        size: int,
    ) -> Job:
        now = self.clock()
        return Job(
            job_id=job_id,
            movie_id=movie_id,
            status=Status.QUEUED,
            progress=0.0,
            playable=False,
            bytes_done=0,
            bytes_total=size,
            speed_bps=0.0,
            eta_seconds=None,
            error_message=None,
            release_title=release_title,
            release_id=release_id,
            mode=mode,
            attempt=1,
            source=source,
            nzb_name=filename,
            dir=str(folder),
            media_name=None,
            media_kind=None,
            content_type=None,
            media_size=None,
            created_at=now,
            updated_at=now,
            ready_at=None,
            expires_at=None,
        )

    async def delete(
        self,
        job_id: str,
        why: str = "cancelled and files deleted",
        data: dict[str, str] | None = None,
    ) -> Job:
        """Cancel a job, delete its files (and, through the hooks, its ffmpegs and its copy in
        R2), mark it deleted; ``why`` (and ``data``) go into the job's history."""
        job = await self.get(job_id)
        live = self.live_jobs.pop(job_id, None)
        if live is not None and live.task is not None:
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)
        if live is not None:
            live.movie.swap(None)
        for hook in (*self.on_files_gone, *self.on_delete):
            await hook(job_id)
        await asyncio.to_thread(shutil.rmtree, job.dir, True)
        if job.status != Status.DELETED:
            job = await self.store.jobs.mark_deleted(job_id, Note("deleted", why, data))
            self._tell(job)
        if live is not None:
            self._publish(live, job)
        return job

    async def drop_local(self, job_id: str, why: str, data: dict[str, str] | None = None) -> Job:
        """Delete the local copy of a ready job that R2 holds: it plays from R2 after this."""
        job = await self.get(job_id)
        live = self.live_jobs.get(job_id)
        if live is not None:
            live.movie.swap(None)
        for hook in self.on_files_gone:
            await hook(job_id)
        await asyncio.to_thread(shutil.rmtree, job.dir, True)
        note = Note("local_deleted", why, data)
        return self.changed(await self.store.jobs.local_dropped(job_id, self.clock(), note))

    def publish(self, job: Job) -> Job:
        """Tell the job's watchers (event streams) and listeners about a change made by
        another part (the mirror) through the store; returns the job."""
        return self.changed(job)

    async def get(self, job_id: str) -> Job:
        job = await self.store.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def speed(self) -> float:
        """Bytes per second all running downloads fetch now, together."""
        return sum(
            live.download.progress.speed_bps
            for live in self.live_jobs.values()
            if live.download is not None
        )

    def view(self, job_id: str) -> MediaView | None:
        live = self.live_jobs.get(job_id)
        return live.movie.view if live is not None else None

    def reading(self, job_id: str, name: str) -> Reading | None:
        """A response's hold on the job's movie named ``name`` (release it when done)."""
        live = self.live_jobs.get(job_id)
        return live.movie.read(name) if live is not None else None

    def download(self, job_id: str) -> Download | None:
        """The running download of a job (its files: subtitles beside the movie)."""
        live = self.live_jobs.get(job_id)
        return live.download if live is not None else None

    def note(self, job_id: str) -> str | None:
        """Why a running job cannot play before it is ready, when that is known."""
        live = self.live_jobs.get(job_id)
        return live.note if live is not None else None

    async def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """Job snapshots as they change, starting with the current one; ends at a final state."""
        job = await self.get(job_id)
        live = self.live_jobs.setdefault(job_id, Live())
        queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=64)
        live.watchers.add(queue)
        try:
            yield job
            while not at_rest(job.status, job.mirror):
                job = await queue.get()
                while not queue.empty():  # a slow reader gets the newest state, not a backlog
                    job = queue.get_nowait()
                yield job
        finally:
            live.watchers.discard(queue)

    # -- running -----------------------------------------------------------------
    def _spawn(self, job_id: str) -> None:
        live = self.live_jobs.setdefault(job_id, Live())
        live.task = asyncio.create_task(JobRunner(self).run(job_id), name=f"job {job_id}")

    def changed(self, job: Job) -> Job:
        """Tell the job's watchers about a change the store made; returns the job."""
        live = self.live_jobs.get(job.job_id)
        if live is not None:
            self._publish(live, job)
        self._tell(job)
        return job

    def _tell(self, job: Job) -> None:
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:  # a listener's bug must not stop the job
                log.exception("job %s: a listener failed", job.job_id)

    @staticmethod
    def _publish(live: Live, job: Job) -> None:
        for queue in list(live.watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(job)


def _write_nzb(folder: Path, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=False)
    (folder / NZB_FILE).write_bytes(data)


def _title_of(nzb: Nzb, filename: str | None) -> str | None:
    if nzb.title:
        return nzb.title
    if filename:
        return filename.rsplit(".nzb", 1)[0]
    return None


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    manager = JobManager(app[STORE], app[SETTINGS], releases=app[DISCOVERY], metrics=app[METRICS])
    app[JOBS] = manager
    await manager.start()
    try:
        yield
    finally:
        await manager.close()


def setup(app: web.Application) -> None:
    """The job runners; after the store and discovery, which they use."""
    app.cleanup_ctx.append(_jobs_ctx)
