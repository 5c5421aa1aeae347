"""Request middlewares: error shaping and authentication.

Installed in this order (outermost first): errors, then auth, so that an auth failure is
shaped like every other error.
"""

from __future__ import annotations

import hmac
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from server.errors import ApiError, NotFound, Unauthorized
from server.keys import SECRET, SETTINGS
from server.tokens import verify

log = logging.getLogger(__name__)

# Reachable without credentials: liveness checks and static assets.
PUBLIC_PATHS = frozenset({"api/health"})
PUBLIC_PREFIXES = ("static/",)


def error_body(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_body(exc.status, exc.code, exc.message)
    except web.HTTPNotFound:
        return error_body(404, NotFound.code, f"nothing at {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return error_body(405, "INVALID_INPUT", f"{request.method} is not allowed here: {exc.text}")
    except web.HTTPRequestEntityTooLarge:
        return error_body(413, "INVALID_INPUT", "the request body is too large")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_body(500, "INTERNAL_ERROR", "internal error; the server log has details")


def _media_token_ok(request: web.Request, rel: str) -> bool:
    """/media/{job_id}/... may carry ?token= signed for that job (players send no headers)."""
    if not rel.startswith("media/"):
        return False
    job_id = rel.split("/", 2)[1] if rel.count("/") >= 1 else ""
    token = request.query.get("token", "")
    return bool(job_id and token) and verify(request.app[SECRET], job_id, token, time.time())


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    base = request.config_dict[SETTINGS].server.base_path
    path = request.path
    rel = path[len(base) :] if path.startswith(base) else path.lstrip("/")
    if rel in PUBLIC_PATHS or rel.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    offered = request.headers.get("X-Api-Key", "")
    keys = request.config_dict[SETTINGS].auth.api_keys
    if offered and any(hmac.compare_digest(offered, k) for k in keys):
        return await handler(request)
    if _media_token_ok(request, rel):
        return await handler(request)
    raise Unauthorized("an API key (X-Api-Key header) is required")
