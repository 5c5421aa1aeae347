"""Authentication: which requests may pass, and with what.

Installed inside the error middleware (``server.ui.errors``) and the forwarded-headers one
(``server.http.forwarded``), so that an auth failure is shaped like every other error and
auth sees the client's address and scheme as the trusted reverse proxy reported them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from server.errors import Forbidden, Unauthorized
from server.http.forwarded import is_trusted, parse_address
from server.http.sessions import SAFE_METHODS, csrf_ok, session_for, set_session_cookie
from server.http.tokens import verify
from server.keys import CALLER, CREDENTIALS, CSRF_TOKEN, SESSION, SETTINGS

log = logging.getLogger(__name__)

# Reachable without credentials: the routes of the main app named "login" and
# "first-password" (ui/login.py: the first run has no session yet; the handler itself lets
# only household addresses choose, and only once), "health", "static", and "favicon"
# (browsers ask before login). Decided by the route matched, not by the path's text, so
# that no spelling of a path (%2e%2e, //) reaches anything else.
PUBLIC_ROUTES = frozenset({"login", "first-password", "health", "ready", "static", "favicon"})
# Without credentials these answer 401; every other path is a page and redirects to login.
API_PREFIXES = ("api/", "media/", "hls/")
#: {base}metrics: a key or a session (or, when configured, the household's networks).
API_PATHS = frozenset({"metrics"})


def relative_path(path: str, base: str) -> str | None:
    """``path`` below the base path, without it; None when it is outside the base path."""
    return path[len(base) :] if path.startswith(base) else None


def is_public(request: web.Request) -> bool:
    match = request.match_info
    resource = match.route.resource
    return (
        resource is not None
        and resource.name in PUBLIC_ROUTES
        and len(match.apps) == 1  # a route of the main app, not of a sub-app
    )


def is_api(rel: str | None) -> bool:
    return rel is not None and (rel in API_PATHS or rel.startswith(API_PREFIXES))


def _media_token_ok(request: web.Request, rel: str | None) -> bool:
    """/media/{job_id}/... and /hls/{job_id}/... may carry ?token= signed for that job
    (players, hls.js and <track> elements send no headers)."""
    if rel is None or not rel.startswith(("media/", "hls/")):
        return False
    job_id = rel.split("/", 2)[1]
    token = request.query.get("token", "")
    key = request.config_dict[CREDENTIALS].media_key()  # changes with the password
    return bool(job_id and token) and verify(key, job_id, token, time.time())


def _metrics_from_lan(request: web.Request) -> bool:
    """{base}metrics without a key, when configured so, for the household's own networks."""
    resource = request.match_info.route.resource
    settings = request.config_dict[SETTINGS]
    if resource is None or resource.name != "metrics" or not settings.metrics.lan_without_key:
        return False
    address = parse_address(request.remote or "")
    return address is not None and is_trusted(address, settings.server.lan_networks)


def _api_key_ok(request: web.Request) -> bool:
    offered = request.headers.get("X-Api-Key", "")
    keys = request.config_dict[SETTINGS].auth.api_keys
    # Every key is compared, so the time taken does not tell which one nearly matched.
    matches = [hmac.compare_digest(offered.encode(), key.encode()) for key in keys]
    return bool(offered) and any(matches)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Public paths pass; then an API key, a signed media token, or a session cookie (with
    its CSRF token for anything but GET/HEAD/OPTIONS). Without one: 401 for the API, a
    redirect to the login page for pages."""
    base = request.config_dict[SETTINGS].server.base_path
    rel = relative_path(request.path, base)
    if is_public(request) or _media_token_ok(request, rel) or _metrics_from_lan(request):
        return await handler(request)
    if _api_key_ok(request):
        # Who is asking, for the limits on what costs: one caller per key.
        key = request.headers["X-Api-Key"].encode()
        request[CALLER] = "key:" + hashlib.sha256(key).hexdigest()[:16]
        return await handler(request)
    session = await session_for(request)
    if session is not None:
        request[CALLER] = "session:" + hashlib.sha256(session.session_id.encode()).hexdigest()[:16]
        # API keys are exempt: a page on another site cannot make a browser send one.
        if request.method not in SAFE_METHODS and not await csrf_ok(request, session):
            raise Forbidden(
                "this request needs the session's CSRF token (X-CSRF-Token header or csrf field)"
            )
        request[SESSION] = session
        request[CSRF_TOKEN] = session.csrf
        response = await handler(request)
        if session.renewed and not response.prepared:
            set_session_cookie(response, request, session)
        return response
    if is_api(rel) or "X-Api-Key" in request.headers:
        raise Unauthorized("log in, or send an API key in the X-Api-Key header")
    login = URL(f"{base}login").with_query(next=str(request.rel_url))
    raise web.HTTPSeeOther(str(login))
