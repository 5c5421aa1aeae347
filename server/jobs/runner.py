"""One job's run, from its NZB (or the release auto mode chooses for it) to a ready movie:
download, the moment it can play, repair and preparation, the next release when auto mode
gives up on one, and the failure a person reads when nothing works. ``JobManager`` owns
the jobs and starts one run per job (``server.jobs.manager``); the run reads and changes
the job only through it and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nntp.download import Download, DownloadError
from nntp.errors import NntpError
from nntp.fetch import FetchOutcome, finish_download
from nntp.health import check_release
from nntp.media import MediaView
from nntp.nzb import Nzb, NzbError, parse_nzb
from server.discovery.service import preference_of
from server.errors import (
    IndexerError,
    MatineeError,
    StorageError,
    TmdbError,
)
from server.jobs.disk import free_bytes
from server.jobs.failures import os_reason
from server.jobs.lifecycle import (
    Failure,
    MirrorState,
    Mode,
    Status,
)
from server.jobs.media import (
    FILES_DIR,
    NZB_FILE,
    MediaError,
    MediaPlan,
    find_media,
    prepare_media,
    tidy_files,
)
from server.jobs.readers import Movie
from server.store.events import Note
from server.store.jobs import Job, Media
from transcode.capabilities import (
    FAMILY_CAPABILITIES,
    BrowserFamily,
    Capabilities,
    CapabilitiesError,
    parse_capabilities,
)

if TYPE_CHECKING:
    from server.jobs.manager import JobManager


log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # releases tried in auto mode before a job gives up
DISK_FULL_POLL = 5.0  # seconds between looks at the free space of a full disk
DISK_FULL_HEADROOM = 64 * 1024 * 1024  # what a stalled download needs at least to go on
TICK = 1.0  # seconds between progress writes


@dataclass(eq=False)
class Live:
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


class JobRunner:
    """Runs jobs for ``jobs`` (one ``run`` per job, each in its own task)."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs

    async def run(self, job_id: str) -> None:
        """The job until it is ready or failed (a cancel stops it where it is)."""
        live = self.jobs.live_jobs[job_id]
        try:
            async with self.jobs.slots:
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
                job_id, f"cannot write the download: {os_reason(exc)}", Failure.STORAGE
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
        folder = self.jobs.settings.downloads.dir
        message = (
            f"disk full: the download waits for free space on the downloads' disk"
            f" (at least {self.jobs.settings.downloads.min_free_gb:g} GB); it goes on by itself"
        )
        log.warning("job %s: %s", job_id, message)
        try:  # the database may be on the full disk too: then the log line is what there is
            self.jobs.changed(await self.jobs.store.jobs.stall(job_id, message))
            await self.jobs.store.events.add(job_id, "disk_full", message)
        except Exception as exc:
            log.warning("job %s: cannot record the full disk: %s", job_id, exc)
        floor = max(self.jobs.settings.downloads.min_free_gb * 1e9, DISK_FULL_HEADROOM)
        # Polled: nothing tells a process that another freed space on a disk.
        while await asyncio.to_thread(free_bytes, folder) < floor:  # noqa: ASYNC110
            await asyncio.sleep(DISK_FULL_POLL)
        self.jobs.changed(await self.jobs.store.jobs.stall(job_id, None))
        await self.jobs.store.events.add(job_id, "disk_space", "there is room again: resuming")

    async def _run_once(self, job_id: str, live: Live) -> bool:
        """One release, from NZB to ready. False when auto mode should try another."""
        job = await self.jobs.get(job_id)
        folder = Path(job.dir)
        if job.status == Status.QUEUED and not (folder / NZB_FILE).exists():
            self.jobs.line.warm(self.jobs.servers)  # logged in by the time the search is over
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
            if self.jobs.make_room is not None:
                await self.jobs.make_room(job_id, nzb.bytes)
            if job.mode == Mode.AUTO:
                health = await check_release(nzb, self.jobs.servers, self.jobs.line)
                if health.hopeless:
                    return await self._give_up_release(
                        job, live, f"its articles are gone ({health.describe()})", Failure.USENET
                    )
            job = self.jobs.changed(await self.jobs.store.jobs.start_download(job_id))
            await self.jobs.store.events.add(job_id, "downloading", "download started")
        if job.status == Status.DOWNLOADING:
            outcome = await self._download(job, nzb, folder / FILES_DIR, live)
            if not outcome.complete:
                return await self._give_up_release(job, live, _explain(outcome), Failure.USENET)
            job = self.jobs.changed(await self.jobs.store.jobs.start_preparing(job_id))
            await self.jobs.store.events.add(
                job_id,
                "preparing",
                "repaired with PAR2" if outcome.repaired else "download complete",
            )
        if job.status == Status.PREPARING:
            await self._prepare(job, folder / FILES_DIR, live, nzb.password)
        return True

    async def _choose_release(self, job: Job) -> Job:
        """Search, rank and fetch the NZB of the release this job should download."""
        if self.jobs.releases is None or job.movie_id is None:
            await self._fail(
                job.job_id, "this job has no NZB and no way to find one", Failure.RELEASE
            )
            return await self.jobs.get(job.job_id)
        events = await self.jobs.store.events.list(job.job_id)
        requested = next((e.data for e in events if e.kind == "requested"), {})
        tried = {e.data.get("release_id") for e in events if e.kind == "release"}
        tried.update(requested.get("skip") or ())
        found = await self.jobs.releases.releases(
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
                return await self.jobs.get(job.job_id)
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
                return await self.jobs.get(job.job_id)
            choice = fresh[0]
        data, filename = await self.jobs.releases.nzb(choice)
        await asyncio.to_thread((Path(job.dir) / NZB_FILE).write_bytes, data)
        reason = choice.reasons[0] if choice.reasons else f"score {choice.score}"
        await self.jobs.store.events.add(
            job.job_id,
            "release",
            f"chose {choice.title} from {choice.indexer} ({reason})",
            {"release_id": choice.release_id, "score": choice.score},
        )
        return self.jobs.changed(
            await self.jobs.store.jobs.choose_release(
                job.job_id,
                release_id=choice.release_id,
                title=choice.title,
                nzb_name=filename,
                size=choice.size or 0,
            )
        )

    async def _give_up_release(self, job: Job, live: Live, problem: str, failure: Failure) -> bool:
        """A release that cannot complete: in auto mode, clean up and try the next one
        (the lifecycle's retry edge, straight back to queued: never through error)."""
        retry = (
            job.mode == Mode.AUTO
            and job.attempt < MAX_ATTEMPTS
            and self.jobs.releases is not None
            and job.movie_id is not None
        )
        if not retry:
            await self._fail(job.job_id, problem, failure)
            return True
        await self.jobs.store.events.add(
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
        self.jobs.changed(await self.jobs.store.jobs.retry(job.job_id))
        return False

    async def _download(self, job: Job, nzb: Nzb, files_dir: Path, live: Live) -> FetchOutcome:
        dl = Download(nzb, files_dir, self.jobs.servers, line=self.jobs.line)
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

    async def _find_media(self, job_id: str, dl: Download, live: Live) -> None:
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
            await self.jobs.store.events.add(job_id, "not_streamable", live.note)
            return
        if plan.view is None:
            live.note = plan.reason
            await self.jobs.store.events.add(job_id, "not_streamable", plan.reason)
            return
        live.movie.swap(plan.view)
        assert plan.kind is not None  # a view comes with its kind
        media = Media(plan.view.name, plan.kind, plan.view.content_type, plan.view.size)
        started = await self.jobs.store.jobs.get(job_id)
        if started is not None and not live.playable_counted:
            self.jobs.metrics.to_playable.observe(max(0.0, self.jobs.clock() - started.created_at))
            live.playable_counted = True
        self.jobs.changed(
            await self.jobs.store.jobs.mark_playable(job_id, media, Note("playable", plan.reason))
        )

    async def _tick(self, job_id: str, dl: Download) -> None:
        while True:
            await asyncio.sleep(TICK)
            rate = dl.rate()
            p = dl.progress
            left = max(0, p.bytes_total - p.bytes_done)
            job = await self.jobs.store.jobs.record_progress(
                job_id,
                bytes_done=p.bytes_done,
                bytes_total=p.bytes_total,
                speed_bps=round(rate),
                eta_seconds=round(left / rate, 1) if rate > 0 else None,
            )
            self.jobs.changed(job)

    async def _prepare(self, job: Job, files_dir: Path, live: Live, password: str | None) -> None:
        """The finished movie (read in place where it can be); then ready, with its
        retention timer. Responses reading the downloading files move on to it."""

        async def room(needed: int) -> None:  # an extraction's, as for a download
            if self.jobs.make_room is not None:
                await self.jobs.make_room(job.job_id, needed)

        try:
            result = await prepare_media(
                files_dir, job, password=password, playing=live.movie.view, room=room
            )
        except MediaError as exc:
            await self._fail(job.job_id, str(exc), Failure.MEDIA)
            return
        live.superseded = live.movie.swap(result.view)
        live.tidy = True
        now = self.jobs.clock()
        view = result.view
        media = Media(view.name, result.kind, view.content_type, view.size)
        expires = now + self.jobs.settings.retention.ready_hours * 3600
        ready = await self.jobs.store.jobs.get(job.job_id)
        self.jobs.changed(
            await self.jobs.store.jobs.mark_ready(
                job.job_id,
                media,
                ready_at=now,
                expires_at=expires,
                # the mirror (server.mirror) uploads it from here
                mirror=MirrorState.PENDING if self.jobs.settings.r2.enabled else None,
                note=Note("ready", result.reason),
            )
        )
        if ready is not None and not ready.playable and not live.playable_counted:
            # It could not play before it was ready.
            self.jobs.metrics.to_playable.observe(max(0.0, now - ready.created_at))

    async def _tidy(self, job_id: str, live: Live) -> None:
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
            job = await self.jobs.get(job_id)
            await asyncio.to_thread(tidy_files, Path(job.dir) / FILES_DIR, view)
        except Exception:  # the job is ready all the same; the next start tidies again
            log.exception("job %s: cannot delete the download's leftovers", job_id)

    async def _fail(self, job_id: str, message: str, failure: Failure) -> None:
        log.warning("job %s: %s", job_id, message)
        live = self.jobs.live_jobs.get(job_id)
        if live is not None:
            live.movie.swap(None)  # what it read may be gone; responses end
        try:
            expires = self.jobs.clock() + self.jobs.settings.retention.failed_hours * 3600
            note = Note("error", message, {"failure": failure.value})
            self.jobs.changed(
                await self.jobs.store.jobs.fail(
                    job_id, message, failure, expires_at=expires, note=note
                )
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


def _read_nzb(folder: Path, filename: str | None) -> Nzb:
    return parse_nzb((folder / NZB_FILE).read_bytes(), filename=filename)


def _explain(outcome: FetchOutcome) -> str:
    problem = outcome.problem or "the download is incomplete"
    errors = "; ".join(f"{k}: {v}" for k, v in outcome.result.server_errors.items())
    return f"{problem}. {errors}".strip() if errors else problem


def _ranked_for(browser: object) -> Capabilities | BrowserFamily:
    """The browser a job's pick ranks for, from its request (Chrome for jobs from before it
    was kept, and for a report that no longer reads)."""
    if isinstance(browser, str) and browser in FAMILY_CAPABILITIES:
        return browser
    if isinstance(browser, str):
        with contextlib.suppress(CapabilitiesError):
            return parse_capabilities(browser)
    return "chrome"
