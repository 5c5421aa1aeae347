"""The login page: the household's password for a session cookie, limited per client.

Failed logins are counted per client address (after trusted X-Forwarded-For handling) in
memory (``server.http.login_limit``); sessions themselves are ``server.http.sessions``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from server.http.errors import error_response
from server.http.login_limit import LoginLimiter, Overloaded
from server.http.passwords import password_state, verify_password
from server.http.sessions import (
    CSRF_FIELD,
    SESSION_COOKIE,
    base_path,
    session_for,
    set_session_cookie,
)
from server.keys import LOGIN_LIMITER, SESSION, SESSIONS, SETTINGS
from server.ui.templates import render

log = logging.getLogger(__name__)

#: Double-submit token of the login form (there is no session yet to hold one).
LOGIN_CSRF_COOKIE = "matinee_login_csrf"


def safe_next(value: str | None, base: str) -> str:
    """Where to go after logging in: ``value`` when it is a local path under ``base``,
    otherwise ``base``. Refuses anything a browser could read as another site."""
    if not value or not value.startswith(base) or value.startswith(("//", "/\\")):
        return base
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return base
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in (f"{base}login", f"{base}logout"):
        return base
    return value


# --------------------------------------------------------------------------- handlers


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


_LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


def _login_page(
    request: web.Request,
    *,
    next_url: str,
    status: int = 200,
    error: str | None = None,
    code: str = "UNAUTHORIZED",
    headers: dict[str, str] | None = None,
) -> web.Response:
    if error is not None and not _wants_html(request):
        return error_response(status, code, error, headers)
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    fresh = not _LOGIN_TOKEN.fullmatch(token)
    if fresh:
        token = secrets.token_urlsafe(32)
    context = {
        "error": error,
        "next": next_url,
        "login_csrf": token,
        "password_state": password_state(request.config_dict[SETTINGS]),
    }
    response = render(request, "login.html", context, status=status)
    response.headers["Cache-Control"] = "no-store"  # it holds a one-off token
    if headers:
        response.headers.update(headers)
    if fresh:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path=base_path(request),
            secure=request.secure,
            httponly=True,
            samesite="Lax",
        )
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    next_url = safe_next(request.query.get("next"), base_path(request))
    if await session_for(request) is not None:
        raise web.HTTPFound(next_url)
    return _login_page(request, next_url=next_url)


async def login_post(request: web.Request) -> web.StreamResponse:
    settings = request.config_dict[SETTINGS]
    form = await request.post()
    next_value, password, token = form.get("next"), form.get("password"), form.get(CSRF_FIELD)
    next_url = safe_next(next_value if isinstance(next_value, str) else None, base_path(request))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (
        isinstance(token, str)
        and _LOGIN_TOKEN.fullmatch(expected)
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return _login_page(
            request,
            next_url=next_url,
            status=403,
            code="FORBIDDEN",
            error="The login form expired or came from another site. Please try again.",
        )
    state = password_state(settings)
    if state != "set":
        why = "No password is set" if state == "unset" else "The configured password hash is broken"
        return _login_page(
            request,
            next_url=next_url,
            status=403,
            code="FORBIDDEN",
            error=f"{why}: run `matinee set-password` on the server, then restart Matinee.",
        )
    limiter = request.config_dict[LOGIN_LIMITER]
    client = client_address(request)
    if wait := limiter.retry_after(client):
        minutes = math.ceil(wait / 60)
        return _login_page(
            request,
            next_url=next_url,
            status=429,
            code="RATE_LIMITED",
            error=f"Too many failed attempts. Try again in {minutes} minute"
            + ("s." if minutes != 1 else "."),
            headers={"Retry-After": str(math.ceil(wait))},
        )
    try:
        turn = await limiter.slow_lane()
    except Overloaded as exc:
        log.warning("login from %s refused: too many failed logins from everywhere", client)
        return _login_page(
            request,
            next_url=next_url,
            status=429,
            code="RATE_LIMITED",
            error="Too many failed logins from everywhere lately. Try again in a minute.",
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        )
    async with turn:
        limiter.failed(client)
        assert settings.auth.password_hash is not None  # password_state said so
        offered = password if isinstance(password, str) else ""
        right = await asyncio.to_thread(verify_password, offered, settings.auth.password_hash)
    if not right:
        log.warning("failed login from %s", client)
        return _login_page(request, next_url=next_url, status=401, error="Wrong password.")
    limiter.reset(client)
    sessions = request.config_dict[SESSIONS]
    session = await sessions.create()
    await sessions.purge()
    log.info("login from %s", client)
    response = web.Response(status=303, headers={"Location": next_url})
    set_session_cookie(response, request, session)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=base_path(request))
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Reached only with a session and its CSRF token (the middleware sees to both)."""
    session = request.get(SESSION)
    if session is not None:
        await request.config_dict[SESSIONS].end(session.session_id)
    base = base_path(request)
    response = web.Response(status=303, headers={"Location": f"{base}login"})
    response.del_cookie(
        SESSION_COOKIE, path=base, secure=request.secure, httponly=True, samesite="Lax"
    )
    return response


# --------------------------------------------------------------------------- setup


def setup(app: web.Application) -> None:
    """The login and logout pages and the login limiter."""
    settings = app[SETTINGS]
    base = settings.server.base_path
    app[LOGIN_LIMITER] = LoginLimiter()
    login = app.router.add_resource(f"{base}login", name="login")
    login.add_route("GET", login_get)
    login.add_route("HEAD", login_get)
    login.add_route("POST", login_post)
    app.router.add_post(f"{base}logout", logout, name="logout")
    state = password_state(settings)
    if state == "unset":
        log.warning("no UI password is set: run `matinee set-password` to log in from a browser")
    elif state == "invalid":
        log.error("[auth] password_hash is not a valid hash: run `matinee set-password` again")
