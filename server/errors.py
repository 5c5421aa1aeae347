"""Matinee's own errors: one root, and each class says when it is raised.

::

    MatineeError                 root; also what an unexpected failure is reported as
    ├── ConfigError              the configuration is unusable (start-up, check-config)
    ├── InvalidInput             a request that cannot succeed as it was asked
    ├── Unauthorized             no valid credentials came with the request
    ├── Forbidden                credentials, but not for this (e.g. no CSRF token)
    ├── NotFound                 no such movie, job, file or route
    ├── Conflict                 the request contradicts the current state
    │   ├── AlreadyExists        a row with that key exists (store)
    │   └── InvalidTransition    a status change the job lifecycle does not allow
    ├── RateLimited              too many attempts; ``retry_after`` says when to try again
    ├── JobError                 a job failed, or cannot do what was asked of it
    │   └── PlaybackError        a stream for a browser could not be made (ffmpeg, ffprobe)
    ├── StoreError               the database cannot be opened or used
    └── ServiceError             something Matinee depends on failed
        ├── TmdbError            TMDB refused, failed or answered nonsense
        │   └── TmdbUnreachable  TMDB could not be reached at all (the network, a timeout)
        ├── IndexerError         a newznab indexer did
        ├── UsenetError          every Usenet server refused or failed
        └── StorageError         the disk (or the R2 store) failed or is full

These are domain errors: none knows about HTTP. ``server.http.errors`` maps each class to
a status and a stable code, once, at the edge. ``message`` is always safe to show a person:
it never holds a secret, and an unexpected exception's own text never becomes one.
"""

from __future__ import annotations


class MatineeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(MatineeError):
    """``errors`` holds one "key.path: problem" line per problem found."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


class InvalidInput(MatineeError):
    pass


class Unauthorized(MatineeError):
    pass


class Forbidden(MatineeError):
    pass


class NotFound(MatineeError):
    pass


class Conflict(MatineeError):
    pass


class AlreadyExists(Conflict):
    pass


class InvalidTransition(Conflict):
    pass


class RateLimited(MatineeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobError(MatineeError):
    pass


class PlaybackError(JobError):
    """ffprobe could not read the movie or ffmpeg could not make a segment of it; the message
    says why in a person's words (the player shows it)."""


class StoreError(MatineeError):
    pass


class ServiceError(MatineeError):
    pass


class TmdbError(ServiceError):
    pass


class TmdbUnreachable(TmdbError):
    pass


class IndexerError(ServiceError):
    pass


class UsenetError(ServiceError):
    pass


class StorageError(ServiceError):
    pass
