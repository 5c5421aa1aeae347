"""The retention timers: one owned task that sleeps until the next deadline of any job and
acts on it. Deadlines live in the job's row (``expires_at``: ready or failed; ``idle_expires_at``;
``local_expires_at``), so they survive restarts; the store wakes the task whenever one changes
(``store.jobs.deadlines_changed``), so nothing polls per job.

* ready / failed / idle: the whole job goes (local files and R2 objects) and ends ``deleted``;
* local: only the local copy goes; the job stays ready and plays from R2.

Each deletion is a job event whose data says the reason (`server.jobs.lifecycle.Expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from server.config.settings import Settings
from server.errors import Conflict
from server.jobs.lifecycle import ACTIVE, Expiry, MirrorState, Status
from server.jobs.manager import JobManager
from server.metrics import Metrics
from server.store.db import Store
from server.store.jobs import Job

log = logging.getLogger(__name__)

#: The longest sleep: a wall clock that jumps (suspend, NTP) is noticed within this.
MAX_SLEEP = 300.0
#: After a failed pass, the next one comes this soon.
RETRY_AFTER = 30.0
#: "Keep 24 h longer".
KEEP_SECONDS = 24 * 3600.0

WHY = {
    Expiry.READY: "{h:g} h after it was ready ([retention] ready_hours)",
    Expiry.FAILED: "{h:g} h after it failed ([retention] failed_hours)",
    Expiry.IDLE: "{h:g} h after it was last watched ([retention] idle_hours)",
    Expiry.LOCAL: "{h:g} h after it was mirrored ([retention] local_hours); it plays from R2",
}


class Retention:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        jobs: JobManager,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.metrics = metrics
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        changed = self.store.jobs.deadlines_changed
        while True:
            changed.clear()  # before reading: a change from now on wakes the next sleep
            try:
                upcoming = await self.run_due()
            except Exception:  # one failed pass must not stop the timers
                log.exception("retention: a pass failed")
                upcoming = self.clock() + RETRY_AFTER
            wait = MAX_SLEEP if upcoming is None else upcoming - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, min(wait, MAX_SLEEP)))

    async def run_due(self, now: float | None = None) -> float | None:
        """Act on every deadline that has passed; returns the next one (None: none left)."""
        at = self.clock() if now is None else now
        upcoming: float | None = None
        for job in await self.store.jobs.with_deadlines():
            reason = job.due(at)
            if reason is not None and not (reason == Expiry.IDLE and job.status in ACTIVE):
                try:
                    await self._expire(job, reason)
                except Exception:
                    log.exception("retention: %s (%s) failed", job.job_id, reason.value)
                    continue
                job = await self.jobs.get(job.job_id)
            for deadline in _deadlines(job):
                if deadline > at and (upcoming is None or deadline < upcoming):
                    upcoming = deadline
        return upcoming

    async def _expire(self, job: Job, reason: Expiry) -> None:
        hours = {
            Expiry.READY: self.settings.retention.ready_hours,
            Expiry.FAILED: self.settings.retention.failed_hours,
            Expiry.IDLE: self.settings.retention.idle_hours,
            Expiry.LOCAL: self.settings.retention.local_hours,
        }[reason]
        why = WHY[reason].format(h=hours)
        data = {"reason": reason.value}
        log.info("retention: %s %s: %s", job.job_id, job.release_title, why)
        self.metrics.deleted.labels(reason=reason.value).inc()
        if reason == Expiry.LOCAL:
            await self.jobs.drop_local(job.job_id, f"local copy deleted {why}", data)
        else:
            await self.jobs.delete(job.job_id, f"deleted {why}", data)

    # -- what people do --------------------------------------------------------------
    async def watched(self, job_id: str) -> Job:
        """A playback position was saved: the idle timer starts again."""
        hours = self.settings.retention.idle_hours
        job = await self.jobs.get(job_id)
        if not hours or job.status == Status.DELETED:
            return job
        return self.jobs.publish(await self.store.jobs.watched(job_id, self.clock() + hours * 3600))

    async def keep_longer(self, job_id: str, seconds: float = KEEP_SECONDS) -> Job:
        """Every deadline of the job moves ``seconds`` later ("keep 24 h longer")."""
        job = await self.jobs.get(job_id)
        if job.status == Status.DELETED:
            raise Conflict(f"job {job_id} was deleted: there is nothing to keep")
        job = self.jobs.publish(await self.store.jobs.extend(job_id, seconds, self.clock()))
        await self.store.events.add(
            job_id, "kept", f"kept {seconds / 3600:g} h longer", {"seconds": str(seconds)}
        )
        return job


def _deadlines(job: Job) -> list[float]:
    if job.status == Status.DELETED:
        return []
    found = [t for t in (job.expires_at, job.idle_expires_at) if t is not None]
    if job.local_expires_at is not None and job.has_local and job.mirror == MirrorState.MIRRORED:
        found.append(job.local_expires_at)
    return found
