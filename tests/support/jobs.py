"""Job rows in any status, made the way the runner makes them: created, then moved along the
lifecycle by the store's named changes (no test writes a status the runner could not)."""

from __future__ import annotations

from typing import Any

from server.jobs.lifecycle import Failure, MediaKind, Mode, Source, Status
from server.store.db import Store
from server.store.jobs import Job, Media, new_job_id

#: Reaching each status from 'queued' along the lifecycle.
PATHS: dict[Status, list[Status]] = {
    Status.QUEUED: [],
    Status.DOWNLOADING: [Status.DOWNLOADING],
    Status.PREPARING: [Status.DOWNLOADING, Status.PREPARING],
    Status.READY: [Status.DOWNLOADING, Status.PREPARING, Status.READY],
    Status.ERROR: [Status.ERROR],
    Status.DELETED: [Status.DELETED],
}
MOVIE = Media("movie.mkv", MediaKind.FILE, "video/x-matroska", 1_000_000)


def new_job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": new_job_id(),
        "mode": Mode.NZB,
        "source": Source.UPLOAD,
        "dir": "/srv/matinee/downloads/x",
    }
    values.update(fields)
    return Job(**values)


async def step(store: Store, job: Job, status: Status, *, now: float = 0.0) -> Job:
    """One change of ``job`` to ``status`` by the store's name for it (queued: a retry)."""
    jobs = store.jobs
    if status == Status.QUEUED:
        return await jobs.retry(job.job_id)
    if status == Status.DOWNLOADING:
        return await jobs.start_download(job.job_id)
    if status == Status.PREPARING:
        return await jobs.start_preparing(job.job_id)
    if status == Status.READY:
        media = job.media or MOVIE
        return await jobs.mark_ready(job.job_id, media, ready_at=now, expires_at=job.expires_at)
    if status == Status.ERROR:
        return await jobs.fail(job.job_id, job.error_message or "it failed", Failure.USENET)
    return await jobs.mark_deleted(job.job_id)


async def job_in(store: Store, status: Status | str, **fields: Any) -> Job:
    """A new job (with ``fields`` as created) moved to ``status`` along the lifecycle."""
    job = await store.jobs.create(new_job(**fields))
    for each in PATHS[Status(status)]:
        job = await step(store, job, each)
    return job
