"""Storage limits: room for a download on the disk, and for an upload in the bucket.

Before a download starts, its size (from the NZB) must fit under ``[downloads] min_free_gb``
(free space kept) and ``max_disk_gb`` (all downloads together), counting what the downloads
already running will still write. When it does not, finished movies make room, least
recently watched first, as far as retention allows: a movie being watched (a position saved
in the last `WATCHING` seconds) is never taken, and one that R2 holds only loses its local
copy (it plays from R2). The plan is made first: if even all candidates would not make
enough room, nothing is deleted and the download is refused with how much is missing.

``[r2] max_gb`` is the same for the bucket: before an upload, R2 copies of other movies
that still have their local copy go, least recently watched first; otherwise the movie is
not mirrored (its local copy stays).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from server.config.settings import Settings
from server.errors import StorageError
from server.jobs.disk import free_bytes
from server.jobs.lifecycle import ACTIVE, Expiry, MirrorState, Status
from server.jobs.manager import JobManager
from server.metrics import Metrics
from server.mirror.service import Mirror
from server.store.db import Store
from server.store.jobs import Job

log = logging.getLogger(__name__)

GB = 1e9
#: A movie whose position was saved this recently is being watched: never deleted for room.
WATCHING = 15 * 60.0


@dataclass(frozen=True, slots=True)
class Candidate:
    job: Job
    frees: int  # bytes
    last_watched: float


def disk_bytes(folder: Path) -> int:
    """Bytes a folder really takes on disk (sparse downloads count what is written), without
    following links."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _gb(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.0f} MB"


class Space:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        jobs: JobManager,
        mirror: Mirror,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.mirror = mirror
        self.metrics = metrics
        self._lock = asyncio.Lock()  # two checks must not count the same free bytes

    # -- the disk ----------------------------------------------------------------------
    async def make_room(self, job_id: str | None, needed: int) -> None:
        """Return once a download of ``needed`` bytes fits; StorageError if it cannot."""
        async with self._lock:
            await self._make_room(job_id, needed)

    async def _make_room(self, job_id: str | None, needed: int) -> None:
        limits = self.settings.downloads
        root = limits.dir
        jobs = await self.store.jobs.list()
        # What the other running downloads will still write is spoken for.
        pending = sum(
            max(0, j.bytes_total - j.bytes_done)
            for j in jobs
            if j.status in ACTIVE and j.job_id != job_id and j.status != Status.QUEUED
        )
        free = await asyncio.to_thread(free_bytes, root)
        short = needed + pending + limits.min_free_gb * GB - free
        used = 0
        if limits.max_disk_gb:
            used = await asyncio.to_thread(disk_bytes, root) if root.exists() else 0
            short = max(short, used + needed + pending - limits.max_disk_gb * GB)
        if short <= 0:
            return
        plan, freed = [], 0
        for candidate in await self._disk_candidates(jobs, job_id):
            if freed >= short:
                break
            plan.append(candidate)
            freed += candidate.frees
        if freed < short:
            limit = (
                f", at most {limits.max_disk_gb:g} GB for downloads ({_gb(used)} used)"
                if limits.max_disk_gb
                else ""
            )
            raise StorageError(
                f"not enough disk space for this download: it needs {_gb(needed)}"
                f" and {_gb(short - freed)} more must be freed ({_gb(free)} free,"
                f" {limits.min_free_gb:g} GB kept free{limit}); delete finished movies or"
                " make room on the downloads' disk"
            )
        for candidate in plan:
            await self._free(candidate, needed)

    async def _disk_candidates(self, jobs: list[Job], job_id: str | None) -> list[Candidate]:
        watched = await self.store.positions.last_watched()
        now = self.jobs.clock()
        found = []
        for job in jobs:
            if job.job_id == job_id or not job.has_local:
                continue
            if job.status not in (Status.READY, Status.ERROR):
                continue
            last = watched.get(job.job_id, job.ready_at or job.updated_at)
            if job.job_id in watched and now - last < WATCHING:
                continue  # somebody is watching it
            frees = await asyncio.to_thread(disk_bytes, Path(job.dir))
            found.append(Candidate(job, frees, last))
        # Failed jobs' leftovers first, then finished movies least recently watched first.
        found.sort(key=lambda c: (c.job.status == Status.READY, c.last_watched))
        return found

    async def _free(self, candidate: Candidate, needed: int) -> None:
        job = candidate.job
        why = f"deleted to make room for a download of {_gb(needed)} (least recently watched)"
        data = {"reason": Expiry.SPACE.value}
        self.metrics.deleted.labels(reason=Expiry.SPACE.value).inc()
        log.info("space: %s for %s", why, job.job_id)
        if job.status == Status.READY and job.mirror == MirrorState.MIRRORED:
            await self.jobs.drop_local(job.job_id, "local copy " + why + "; it plays from R2", data)
        else:
            await self.jobs.delete(job.job_id, why, data)

    # -- the bucket --------------------------------------------------------------------
    async def make_room_in_r2(self, job_id: str, size: int) -> None:
        limit = self.settings.r2.max_gb * GB
        if not limit:
            return
        async with self._lock:
            jobs = await self.store.jobs.list()
            held = [
                j
                for j in jobs
                if j.job_id != job_id
                and j.status != Status.DELETED
                and j.mirror in (MirrorState.MIRRORED, MirrorState.MIRRORING)
            ]
            used = sum(j.media_size or 0 for j in held)
            short = used + size - limit
            if short <= 0:
                return
            watched = await self.store.positions.last_watched()
            now = self.jobs.clock()
            candidates = sorted(
                (
                    j
                    for j in held
                    if j.mirror == MirrorState.MIRRORED
                    and j.has_local
                    and now - watched.get(j.job_id, 0.0) >= WATCHING
                ),
                key=lambda j: watched.get(j.job_id, j.ready_at or 0.0),
            )
            plan, freed = [], 0
            for job in candidates:
                if freed >= short:
                    break
                plan.append(job)
                freed += job.media_size or 0
            if freed < short:
                raise StorageError(
                    f"R2 is full: this movie needs {_gb(size)} and {_gb(short - freed)} more"
                    f" than [r2] max_gb ({self.settings.r2.max_gb:g} GB, {_gb(used)} used)"
                    " allows"
                )
            for job in plan:
                await self.mirror.remove_remote(
                    job, f"removed from R2 to make room for another movie ({_gb(size)})"
                )
