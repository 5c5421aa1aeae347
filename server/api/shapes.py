"""What the API answers: jobs and job statuses as the contract's JSON objects."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.http.errors import status_and_code
from server.jobs.failures import failure_error
from server.store.events import JobEvent
from server.store.jobs import Job


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def job_json(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "movie_id": job.movie_id,
        "status": job.status.value,
        "progress": job.progress,
        "playable": job.playable,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "speed_bps": job.speed_bps,
        "eta_seconds": job.eta_seconds,
        "error_message": job.error_message,
        # The API's error code of a failed job's failure, so a program can act on it.
        "error_code": status_and_code(failure_error(job))[1] if job.failure else None,
        "release_title": job.release_title,
        "attempt": job.attempt,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "ready_at": iso(job.ready_at),
        # When the whole job goes (its ready, failed or idle timer, the soonest).
        "expires_at": iso(job.deletes_at),
        "mirror": mirror_json(job),
        # The local copy: whether it is there, and when it goes (it plays from R2 after).
        "local": job.has_local,
        "local_expires_at": iso(job.local_expires_at) if job.has_local else None,
    }


def mirror_json(job: Job) -> dict[str, Any] | None:
    """Where the job's copy in R2 stands; null while R2 has no part in it."""
    if job.mirror is None:
        return None
    return {
        "state": job.mirror.value,
        "bytes_done": job.mirror_bytes,
        "bytes_total": job.media_size or 0,
        "error": job.mirror_error,
        "mirrored_at": iso(job.mirrored_at),
    }


def job_status(job: Job | None) -> dict[str, Any] | None:
    """The short form a movie carries: its current job, or null."""
    if job is None:
        return None
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "progress": job.progress,
        "error_message": job.error_message,
    }


def event_json(event: JobEvent) -> dict[str, Any]:
    """One entry of a job's history: when, what kind, what happened in words, and data."""
    return {"at": iso(event.at), "kind": event.kind, "message": event.message, "data": event.data}
