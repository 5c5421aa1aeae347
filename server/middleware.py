"""Request middlewares: error shaping and API-key authentication.

Installed in this order (outermost first): errors, then auth, so that an auth failure is
shaped like every other error.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.errors import ApiError, NotFound, Unauthorized
from server.keys import SETTINGS

log = logging.getLogger(__name__)

# Reachable without credentials: liveness checks and static assets.
PUBLIC_PATHS = frozenset({"/api/health"})
PUBLIC_PREFIXES = ("/static/",)


def error_body(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_body(exc.status, exc.code, exc.message)
    except web.HTTPNotFound:
        exc2 = NotFound(f"nothing at {request.path}")
        return error_body(exc2.status, exc2.code, exc2.message)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_body(500, "INTERNAL_ERROR", "internal error; the server log has details")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rel = "/" + request.path[len(request.app[SETTINGS].server.base_path) :].lstrip("/")
    if rel in PUBLIC_PATHS or rel.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    offered = request.headers.get("X-Api-Key", "")
    keys = request.config_dict[SETTINGS].auth.api_keys
    if offered and any(hmac.compare_digest(offered, k) for k in keys):
        return await handler(request)
    raise Unauthorized("an API key (X-Api-Key header) is required")
