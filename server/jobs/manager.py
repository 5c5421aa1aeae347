"""Jobs: one movie download from NZB to a playable, then ready, file.

The statuses and the changes between them are ``server.jobs.lifecycle``'s. Every change is
written to SQLite first (through the store's named changes), so a restart resumes unfinished
jobs where the engine's own state file says they were. Each job is one owned task; none is
fire and forget. ``playable`` turns true as soon as the head and tail of the video are on
disk and the container is known, long before the download ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from nntp.connection import ServerSpec
from nntp.download import Download, DownloadError
from nntp.errors import NntpError
from nntp.fetch import FetchOutcome, finish_download
from nntp.health import check_release
from nntp.line import Line
from nntp.media import MediaView
from nntp.nzb import Nzb, NzbError, parse_nzb
from server.config.settings import Settings
from server.discovery.service import ReleaseSource, preference_of
from server.errors import (
    Conflict,
    IndexerError,
    InvalidInput,
    MatineeError,
    NotFound,
    StorageError,
    TmdbError,
)
from server.jobs.lifecycle import (
    ACTIVE,
    Failure,
    MirrorState,
    Mode,
    Source,
    Status,
    at_rest,
)
from server.jobs.media import (
    FILES_DIR,
    NZB_FILE,
    MediaError,
    MediaPlan,
    find_media,
    prepare_media,
    static_view,
    tidy_files,
)
from server.jobs.readers import Movie, Reading
from server.jobs.servers import specs_from_settings
from server.keys import DISCOVERY, JOBS, METRICS, SETTINGS, STORE
from server.metrics import Metrics
from server.store.db import Store
from server.store.events import Note
from server.store.jobs import Job, Media, new_job_id
from transcode.capabilities import (
    FAMILY_CAPABILITIES,
    BrowserFamily,
    Capabilities,
    CapabilitiesError,
    parse_capabilities,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # releases tried in auto mode before a job gives up
HOUSEKEEPING = 60.0  # seconds between purges of expired cache entries, sessions, old rows
DELETED_ROWS_KEPT = 30 * 86400.0  # a deleted job's row and history stay this long
DISK_FULL_POLL = 5.0  # seconds between looks at the free space of a full disk
DISK_FULL_HEADROOM = 64 * 1024 * 1024  # what a stalled download needs at least to go on
TICK = 1.0  # seconds between progress writes


@dataclass(eq=False)
class _Live:
    """What a running job holds in memory beside its row."""

    task: asyncio.Task[None] | None = None
    download: Download | None = None
    movie: Movie = field(default_factory=Movie)  # the view responses read, and its readers
    # At ready: the download's leftovers are to go, once no response reads the view of the
    # downloading files (``superseded``, when the job was playable before).
    tidy: bool = False
    superseded: MediaView | None = None
    note: str | None = None  # why it cannot play yet, in a person's words
    # Its Watch-to-playable time was observed (before the row said so: a runner cancelled
    # between the two must not leave the moment uncounted).
    playable_counted: bool = False
    nzb: Nzb | None = None  # parsed at submit, so the runner need not parse it again
    watchers: set[asyncio.Queue[Job]] = field(default_factory=set)


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
        self._slots = asyncio.Semaphore(max(1, settings.downloads.max_active))
        # The household's line: every job's download shares its budget (the job being
        # watched first) and its warm connections.
        self.line = Line()
        self.metrics.count_servers(lambda: list(self.line.stats.values()))
        self._live: dict[str, _Live] = {}
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
                self._live.setdefault(job.job_id, _Live()).movie.swap(view)
                # Left over when the server stopped before they went; nobody reads them now.
                await asyncio.to_thread(tidy_files, Path(job.dir) / FILES_DIR, view)
        self._reaper = asyncio.create_task(self._housekeeping(), name="housekeeping")

    async def close(self) -> None:
        """Stop every job task; downloads persist their state and resume at next start."""
        self._closing = True
        tasks = [live.task for live in self._live.values() if live.task is not None]
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
            raise StorageError(f"cannot store the NZB in {self.root}: {_os_reason(exc)}") from exc
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
        self._live.setdefault(job_id, _Live()).nzb = nzb
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
                    f"cannot create the download folder in {self.root}: {_os_reason(exc)}"
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
        live = self._live.pop(job_id, None)
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
        live = self._live.get(job_id)
        if live is not None:
            live.movie.swap(None)
        for hook in self.on_files_gone:
            await hook(job_id)
        await asyncio.to_thread(shutil.rmtree, job.dir, True)
        note = Note("local_deleted", why, data)
        return self._changed(await self.store.jobs.local_dropped(job_id, self.clock(), note))

    def publish(self, job: Job) -> Job:
        """Tell the job's watchers (event streams) and listeners about a change made by
        another part (the mirror) through the store; returns the job."""
        return self._changed(job)

    async def get(self, job_id: str) -> Job:
        job = await self.store.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def speed(self) -> float:
        """Bytes per second all running downloads fetch now, together."""
        return sum(
            live.download.progress.speed_bps
            for live in self._live.values()
            if live.download is not None
        )

    def view(self, job_id: str) -> MediaView | None:
        live = self._live.get(job_id)
        return live.movie.view if live is not None else None

    def reading(self, job_id: str, name: str) -> Reading | None:
        """A response's hold on the job's movie named ``name`` (release it when done)."""
        live = self._live.get(job_id)
        return live.movie.read(name) if live is not None else None

    def download(self, job_id: str) -> Download | None:
        """The running download of a job (its files: subtitles beside the movie)."""
        live = self._live.get(job_id)
        return live.download if live is not None else None

    def note(self, job_id: str) -> str | None:
        """Why a running job cannot play before it is ready, when that is known."""
        live = self._live.get(job_id)
        return live.note if live is not None else None

    async def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """Job snapshots as they change, starting with the current one; ends at a final state."""
        job = await self.get(job_id)
        live = self._live.setdefault(job_id, _Live())
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
        live = self._live.setdefault(job_id, _Live())
        live.task = asyncio.create_task(self._run(job_id), name=f"job {job_id}")

    def _changed(self, job: Job) -> Job:
        """Tell the job's watchers about a change the store made; returns the job."""
        live = self._live.get(job.job_id)
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
    def _publish(live: _Live, job: Job) -> None:
        for queue in list(live.watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(job)

    async def _run(self, job_id: str) -> None:
        live = self._live[job_id]
        try:
            async with self._slots:
                while True:
                    try:
                        if await self._run_once(job_id, live):
                            break
                        # else auto mode moved on to another release
                    except (DownloadError, OSError) as exc:
                        if not _disk_full(exc):
                            raise
                        await self._wait_for_space(job_id)  # then the download goes on
            await self._tidy(job_id, live)
        except asyncio.CancelledError:
            raise
        except TmdbError as exc:  # while choosing a release
            await self._fail(job_id, exc.message, Failure.TMDB)
        except IndexerError as exc:
            await self._fail(job_id, exc.message, Failure.INDEXER)
        except StorageError as exc:  # no room for the download
            await self._fail(job_id, exc.message, Failure.STORAGE)
        except MatineeError as exc:
            await self._fail(job_id, exc.message, Failure.INTERNAL)
        except (NntpError, DownloadError) as exc:
            await self._fail(job_id, f"Usenet download failed: {exc}", Failure.USENET)
        except OSError as exc:
            await self._fail(
                job_id, f"cannot write the download: {_os_reason(exc)}", Failure.STORAGE
            )
        except Exception:
            log.exception("job %s failed", job_id)
            await self._fail(
                job_id, "internal error; the server log has the details", Failure.INTERNAL
            )
        finally:
            live.download = None

    async def _wait_for_space(self, job_id: str) -> None:
        """The disk is full: the job says so and waits, its download state kept, until there
        is room again (somebody deleted something, or a retention timer did); then it goes
        on where it stopped. Nothing else is affected: a stall, not a failure."""
        folder = self.settings.downloads.dir
        message = (
            f"disk full: the download waits for free space on the downloads' disk"
            f" (at least {self.settings.downloads.min_free_gb:g} GB); it goes on by itself"
        )
        log.warning("job %s: %s", job_id, message)
        try:  # the database may be on the full disk too: then the log line is what there is
            self._changed(await self.store.jobs.stall(job_id, message))
            await self.store.events.add(job_id, "disk_full", message)
        except Exception as exc:
            log.warning("job %s: cannot record the full disk: %s", job_id, exc)
        floor = max(self.settings.downloads.min_free_gb * 1e9, DISK_FULL_HEADROOM)
        # Polled: nothing tells a process that another freed space on a disk.
        while await asyncio.to_thread(_free_bytes, folder) < floor:  # noqa: ASYNC110
            await asyncio.sleep(DISK_FULL_POLL)
        self._changed(await self.store.jobs.stall(job_id, None))
        await self.store.events.add(job_id, "disk_space", "there is room again: resuming")

    async def _run_once(self, job_id: str, live: _Live) -> bool:
        """One release, from NZB to ready. False when auto mode should try another."""
        job = await self.get(job_id)
        folder = Path(job.dir)
        if job.status == Status.QUEUED and not (folder / NZB_FILE).exists():
            self.line.warm(self.servers)  # logged in by the time the search is over
            job = await self._choose_release(job)
            if job.status == Status.ERROR:
                return True
        nzb, live.nzb = live.nzb, None
        try:
            if nzb is None:
                nzb = await asyncio.to_thread(_read_nzb, folder, job.nzb_name)
        except NzbError as exc:
            return await self._give_up_release(
                job, live, f"the indexer's NZB is not usable: {exc}", Failure.INDEXER
            )
        if job.status == Status.QUEUED:
            if self.make_room is not None:
                await self.make_room(job_id, nzb.bytes)
            if job.mode == Mode.AUTO:
                health = await check_release(nzb, self.servers, self.line)
                if health.hopeless:
                    return await self._give_up_release(
                        job, live, f"its articles are gone ({health.describe()})", Failure.USENET
                    )
            job = self._changed(await self.store.jobs.start_download(job_id))
            await self.store.events.add(job_id, "downloading", "download started")
        if job.status == Status.DOWNLOADING:
            outcome = await self._download(job, nzb, folder / FILES_DIR, live)
            if not outcome.complete:
                return await self._give_up_release(job, live, _explain(outcome), Failure.USENET)
            job = self._changed(await self.store.jobs.start_preparing(job_id))
            await self.store.events.add(
                job_id,
                "preparing",
                "repaired with PAR2" if outcome.repaired else "download complete",
            )
        if job.status == Status.PREPARING:
            await self._prepare(job, folder / FILES_DIR, live, nzb.password)
        return True

    async def _choose_release(self, job: Job) -> Job:
        """Search, rank and fetch the NZB of the release this job should download."""
        if self.releases is None or job.movie_id is None:
            await self._fail(
                job.job_id, "this job has no NZB and no way to find one", Failure.RELEASE
            )
            return await self.get(job.job_id)
        events = await self.store.events.list(job.job_id)
        requested = next((e.data for e in events if e.kind == "requested"), {})
        tried = {e.data.get("release_id") for e in events if e.kind == "release"}
        tried.update(requested.get("skip") or ())
        found = await self.releases.releases(
            job.movie_id,
            preference_of(requested.get("preference")),
            _ranked_for(requested.get("browser")),
        )
        if job.mode == Mode.MANUAL:
            choice = next((r for r in found.releases if r.release_id == job.release_id), None)
            if choice is None:
                await self._fail(
                    job.job_id,
                    "the chosen release is no longer offered by the indexers",
                    Failure.RELEASE,
                )
                return await self.get(job.job_id)
        else:
            fresh = [r for r in found.releases if not r.excluded and r.release_id not in tried]
            if not fresh:
                last = next((e.data for e in reversed(events) if e.kind == "retry"), None)
                if last and last.get("problem"):
                    # Say what actually went wrong, not only that nothing is left to try.
                    why = f"{last.get('title') or 'the release'} failed: {last['problem']}"
                    why += "; no other release to try"
                else:
                    why = "no more releases to try" if tried else "no suitable release was found"
                if found.errors:
                    why += " (" + "; ".join(f"{k}: {v}" for k, v in found.errors.items()) + ")"
                await self._fail(job.job_id, why, Failure.RELEASE)
                return await self.get(job.job_id)
            choice = fresh[0]
        data, filename = await self.releases.nzb(choice)
        await asyncio.to_thread((Path(job.dir) / NZB_FILE).write_bytes, data)
        reason = choice.reasons[0] if choice.reasons else f"score {choice.score}"
        await self.store.events.add(
            job.job_id,
            "release",
            f"chose {choice.title} from {choice.indexer} ({reason})",
            {"release_id": choice.release_id, "score": choice.score},
        )
        return self._changed(
            await self.store.jobs.choose_release(
                job.job_id,
                release_id=choice.release_id,
                title=choice.title,
                nzb_name=filename,
                size=choice.size or 0,
            )
        )

    async def _give_up_release(self, job: Job, live: _Live, problem: str, failure: Failure) -> bool:
        """A release that cannot complete: in auto mode, clean up and try the next one
        (the lifecycle's retry edge, straight back to queued: never through error)."""
        retry = (
            job.mode == Mode.AUTO
            and job.attempt < MAX_ATTEMPTS
            and self.releases is not None
            and job.movie_id is not None
        )
        if not retry:
            await self._fail(job.job_id, problem, failure)
            return True
        await self.store.events.add(
            job.job_id,
            "retry",
            f"{job.release_title or 'the release'} failed: {problem}; trying the next-best release",
            {"title": job.release_title, "problem": problem},
        )
        live.movie.swap(None)
        live.note = None
        folder = Path(job.dir)
        await asyncio.to_thread(shutil.rmtree, folder / FILES_DIR, True)
        await asyncio.to_thread((folder / NZB_FILE).unlink, True)
        self._changed(await self.store.jobs.retry(job.job_id))
        return False

    async def _download(self, job: Job, nzb: Nzb, files_dir: Path, live: _Live) -> FetchOutcome:
        dl = Download(nzb, files_dir, self.servers, line=self.line)
        await dl.start()
        live.download = dl
        finder = asyncio.create_task(self._find_media(job.job_id, dl, live))
        ticker = asyncio.create_task(self._tick(job.job_id, dl))
        try:
            # Real names of obfuscated files come as second names: a response may be
            # reading the posted ones.
            return await finish_download(dl, keep_posted_names=True)
        finally:
            for task in (ticker, finder):
                task.cancel()
            await asyncio.gather(ticker, finder, return_exceptions=True)

    async def _find_media(self, job_id: str, dl: Download, live: _Live) -> None:
        """Make the job playable as soon as the video's head and tail are on disk."""
        try:
            plan: MediaPlan = await find_media(dl, job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the download goes on; playback waits for "ready"
            log.warning("job %s: cannot play while downloading: %s", job_id, exc, exc_info=True)
            # The engine's own errors say what is wrong; anything else is for the log only.
            why = str(exc) if isinstance(exc, NntpError) else "the server log has the details"
            live.note = f"it plays once downloaded ({why})"
            await self.store.events.add(job_id, "not_streamable", live.note)
            return
        if plan.view is None:
            live.note = plan.reason
            await self.store.events.add(job_id, "not_streamable", plan.reason)
            return
        live.movie.swap(plan.view)
        assert plan.kind is not None  # a view comes with its kind
        media = Media(plan.view.name, plan.kind, plan.view.content_type, plan.view.size)
        started = await self.store.jobs.get(job_id)
        if started is not None and not live.playable_counted:
            self.metrics.to_playable.observe(max(0.0, self.clock() - started.created_at))
            live.playable_counted = True
        self._changed(
            await self.store.jobs.mark_playable(job_id, media, Note("playable", plan.reason))
        )

    async def _tick(self, job_id: str, dl: Download) -> None:
        while True:
            await asyncio.sleep(TICK)
            rate = dl.rate()
            p = dl.progress
            left = max(0, p.bytes_total - p.bytes_done)
            job = await self.store.jobs.record_progress(
                job_id,
                bytes_done=p.bytes_done,
                bytes_total=p.bytes_total,
                speed_bps=round(rate),
                eta_seconds=round(left / rate, 1) if rate > 0 else None,
            )
            self._changed(job)

    async def _prepare(self, job: Job, files_dir: Path, live: _Live, password: str | None) -> None:
        """The finished movie (read in place where it can be); then ready, with its
        retention timer. Responses reading the downloading files move on to it."""
        try:
            result = await prepare_media(files_dir, job, password=password, playing=live.movie.view)
        except MediaError as exc:
            await self._fail(job.job_id, str(exc), Failure.MEDIA)
            return
        live.superseded = live.movie.swap(result.view)
        live.tidy = True
        now = self.clock()
        view = result.view
        media = Media(view.name, result.kind, view.content_type, view.size)
        expires = now + self.settings.retention.ready_hours * 3600
        ready = await self.store.jobs.get(job.job_id)
        self._changed(
            await self.store.jobs.mark_ready(
                job.job_id,
                media,
                ready_at=now,
                expires_at=expires,
                # the mirror (server.mirror) uploads it from here
                mirror=MirrorState.PENDING if self.settings.r2.enabled else None,
                note=Note("ready", result.reason),
            )
        )
        if ready is not None and not ready.playable and not live.playable_counted:
            # It could not play before it was ready.
            self.metrics.to_playable.observe(max(0.0, now - ready.created_at))

    async def _tidy(self, job_id: str, live: _Live) -> None:
        """Once no response reads the view of the downloading files any more, delete the
        files the finished view does not read. Runs after the job gave up its download
        slot: a paused player may hold its response for long."""
        view = live.movie.view
        if not live.tidy or view is None:
            return
        if live.superseded is not None:
            await live.movie.idle(live.superseded)
        live.tidy, live.superseded = False, None
        try:
            job = await self.get(job_id)
            await asyncio.to_thread(tidy_files, Path(job.dir) / FILES_DIR, view)
        except Exception:  # the job is ready all the same; the next start tidies again
            log.exception("job %s: cannot delete the download's leftovers", job_id)

    async def _fail(self, job_id: str, message: str, failure: Failure) -> None:
        log.warning("job %s: %s", job_id, message)
        live = self._live.get(job_id)
        if live is not None:
            live.movie.swap(None)  # what it read may be gone; responses end
        try:
            expires = self.clock() + self.settings.retention.failed_hours * 3600
            note = Note("error", message, {"failure": failure.value})
            self._changed(
                await self.store.jobs.fail(job_id, message, failure, expires_at=expires, note=note)
            )
        except Exception:  # the store is closing or broken: the log line above is all we can do
            log.exception("job %s: cannot record the failure", job_id)


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the disk being full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _free_bytes(folder: Path) -> int:
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _write_nzb(folder: Path, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=False)
    (folder / NZB_FILE).write_bytes(data)


def _read_nzb(folder: Path, filename: str | None) -> Nzb:
    return parse_nzb((folder / NZB_FILE).read_bytes(), filename=filename)


def _title_of(nzb: Nzb, filename: str | None) -> str | None:
    if nzb.title:
        return nzb.title
    if filename:
        return filename.rsplit(".nzb", 1)[0]
    return None


def _explain(outcome: FetchOutcome) -> str:
    problem = outcome.problem or "the download is incomplete"
    errors = "; ".join(f"{k}: {v}" for k, v in outcome.result.server_errors.items())
    return f"{problem}. {errors}".strip() if errors else problem


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


def _ranked_for(browser: object) -> Capabilities | BrowserFamily:
    """The browser a job's pick ranks for, from its request (Chrome for jobs from before it
    was kept, and for a report that no longer reads)."""
    if isinstance(browser, str) and browser in FAMILY_CAPABILITIES:
        return browser
    if isinstance(browser, str):
        with contextlib.suppress(CapabilitiesError):
            return parse_capabilities(browser)
    return "chrome"
