"""A failed job's failure as the error it answers with when asked to play (the stream, an
HLS playlist): its kind chooses the error, its message is the job's own. And the words a
failure of the disk is told in."""

from __future__ import annotations

from server.errors import (
    IndexerError,
    JobError,
    MatineeError,
    StorageError,
    TmdbError,
    UsenetError,
)
from server.jobs.lifecycle import Failure
from server.store.jobs import Job

FAILURE_ERRORS: dict[Failure, type[MatineeError]] = {
    Failure.USENET: UsenetError,
    Failure.STORAGE: StorageError,
    Failure.INDEXER: IndexerError,
    Failure.TMDB: TmdbError,
    Failure.RELEASE: JobError,
    Failure.MEDIA: JobError,
    Failure.INTERNAL: JobError,
}


def failure_error(job: Job) -> MatineeError:
    """A failed job's failure as the error the API answers with."""
    cls = FAILURE_ERRORS.get(job.failure, JobError) if job.failure else JobError
    return cls(job.error_message or "the job failed")


def os_reason(exc: OSError) -> str:
    """What went wrong with a file, in the system's words (never a path)."""
    return exc.strerror or type(exc).__name__
