"""Errors at the HTTP edge: each of Matinee's errors mapped once to a status and a stable code,
the one builder of the error body ``{"error": message, "code": CODE}``, and the middleware
that gives the JSON API (and every path under it) that shape.

Pages get HTML error pages instead: ``server.ui.errors``, which uses the same mapping.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.errors import (
    Conflict,
    Forbidden,
    IndexerError,
    InvalidInput,
    JobError,
    MatineeError,
    NotFound,
    RateLimited,
    StorageError,
    TmdbError,
    TmdbUnreachable,
    Unauthorized,
    UsenetError,
)

log = logging.getLogger(__name__)

#: Most specific first; the first class an error is an instance of decides.
_MAPPING: tuple[tuple[type[MatineeError], int, str], ...] = (
    (InvalidInput, 400, "INVALID_INPUT"),
    (Unauthorized, 401, "UNAUTHORIZED"),
    (Forbidden, 403, "FORBIDDEN"),
    (NotFound, 404, "NOT_FOUND"),
    (Conflict, 409, "CONFLICT"),
    (RateLimited, 429, "RATE_LIMITED"),
    (JobError, 500, "JOB_ERROR"),
    # The contract: TMDB out of reach is Matinee's own trouble (500); an answer from TMDB
    # that is an error is TMDB's (502).
    (TmdbUnreachable, 500, "INTERNAL_ERROR"),
    (TmdbError, 502, "TMDB_ERROR"),
    (IndexerError, 502, "NZBGEEK_ERROR"),  # any indexer: the code predates several
    (UsenetError, 502, "USENET_ERROR"),
    (StorageError, 502, "STORAGE_ERROR"),
)
INTERNAL = (500, "INTERNAL_ERROR")
#: Every code a response can carry, for the OpenAPI document.
ERROR_CODES: tuple[str, ...] = (*(code for _, _, code in _MAPPING), INTERNAL[1])
#: What a person is told about a failure nobody foresaw; the log has the details.
UNEXPECTED = "internal error; the server log has the details"


def status_and_code(exc: MatineeError) -> tuple[int, str]:
    for cls, status, code in _MAPPING:
        if isinstance(exc, cls):
            return status, code
    return INTERNAL


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The one error body of the API."""
    return web.json_response({"error": message, "code": code}, status=status, headers=headers)


def retry_headers(exc: MatineeError) -> dict[str, str] | None:
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return None


def response_for(exc: MatineeError) -> web.Response:
    status, code = status_and_code(exc)
    return error_response(status, code, exc.message, retry_headers(exc))


def from_http_exception(
    exc: web.HTTPException, request: web.Request
) -> tuple[int, str, str] | None:
    """(status, code, message) for aiohttp's own errors that are a client's mistake; None
    for those that are not errors (redirects) or keep their own response."""
    if isinstance(exc, web.HTTPNotFound):
        return 404, "NOT_FOUND", f"nothing at {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return 405, "INVALID_INPUT", f"{request.method} is not allowed here"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return 413, "INVALID_INPUT", "the request body is too large"
    if isinstance(exc, web.HTTPClientError) and exc.status not in (401, 403, 429):
        return exc.status, "INVALID_INPUT", exc.reason
    return None


Respond = Callable[[web.Request, int, str, str, "dict[str, str] | None"], web.Response]


def errors_middleware(respond: Respond) -> Middleware:
    """A middleware that turns every failure into ``respond(request, status, code, message,
    headers)``: our errors by the mapping, aiohttp's client errors as INVALID_INPUT or
    NOT_FOUND, anything unexpected as INTERNAL_ERROR (logged, never shown)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except MatineeError as exc:
            status, code = status_and_code(exc)
            return respond(request, status, code, exc.message, retry_headers(exc))
        except web.HTTPException as exc:
            shaped = from_http_exception(exc, request)
            if shaped is None:
                raise
            return respond(request, *shaped, None)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return respond(request, *INTERNAL, UNEXPECTED, None)

    return middleware


def _json(
    request: web.Request, status: int, code: str, message: str, headers: dict[str, str] | None
) -> web.Response:
    return error_response(status, code, message, headers)


#: Every failure as the API's error body: the API sub-app's only error middleware.
json_errors = errors_middleware(_json)
