"""API errors: each class carries its HTTP status and stable code; one middleware shapes them."""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ApiError):
    status, code = 400, "INVALID_INPUT"


class Unauthorized(ApiError):
    status, code = 401, "UNAUTHORIZED"


class NotFound(ApiError):
    status, code = 404, "NOT_FOUND"


class Conflict(ApiError):
    status, code = 409, "CONFLICT"


class RateLimited(ApiError):
    status, code = 429, "RATE_LIMITED"


class JobError(ApiError):
    status, code = 500, "JOB_ERROR"


class TmdbError(ApiError):
    status, code = 502, "TMDB_ERROR"


class IndexerError(ApiError):
    """Any newznab indexer (the contract's code predates supporting more than NZBGeek)."""

    status, code = 502, "NZBGEEK_ERROR"


class UsenetError(ApiError):
    status, code = 502, "USENET_ERROR"


class StorageError(ApiError):
    status, code = 502, "STORAGE_ERROR"
