"""The login page: the household's password for a session cookie, within the login limits
(``server.http.login_limit``); and, on the first run, the page where a browser at home
chooses that password. Sessions themselves are ``server.http.sessions``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from server.http.errors import error_response
from server.http.forms import read_form
from server.http.forwarded import is_trusted, parse_address
from server.http.login_limit import LoginLimiter, Overloaded
from server.http.passwords import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    hash_password,
    hash_state,
    verify_password,
)
from server.http.sessions import (
    CSRF_FIELD,
    SESSION_COOKIE,
    base_path,
    session_for,
    set_session_cookie,
)
from server.keys import CREDENTIALS, LOGIN_LIMITER, SESSION, SESSIONS, SETTINGS
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
        "password_state": request.config_dict[CREDENTIALS].state,
        # The first run: a household browser may choose the password, once.
        "may_choose_password": request.config_dict[CREDENTIALS].state != "set"
        and from_household(request),
        "min_password": MIN_PASSWORD,
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


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a password was not even checked, or was wrong: what the page says."""

    status: int
    code: str
    error: str
    headers: dict[str, str] | None = None


async def check_password(request: web.Request, offered: str) -> Refusal | None:
    """The household's password, checked within the login limits (per client and for
    everybody); None when it is right."""
    watch = request.config_dict[CREDENTIALS]
    limiter = request.config_dict[LOGIN_LIMITER]
    client = client_address(request)
    if wait := limiter.retry_after(client):
        minutes = math.ceil(wait / 60)
        plural = "s" if minutes != 1 else ""
        error = f"Too many failed attempts. Try again in {minutes} minute{plural}."
        return Refusal(429, "RATE_LIMITED", error, {"Retry-After": str(math.ceil(wait))})
    try:
        turn = await limiter.slow_lane()
    except Overloaded as exc:
        log.warning("login from %s refused: too many failed logins from everywhere", client)
        error = "Too many failed logins from everywhere lately. Try again in a minute."
        return Refusal(429, "RATE_LIMITED", error, {"Retry-After": str(math.ceil(exc.retry_after))})
    async with turn:
        limiter.failed(client)
        encoded = watch.current.password_hash
        right = encoded is not None and await asyncio.to_thread(verify_password, offered, encoded)
    if not right:
        log.warning("failed login from %s", client)
        return Refusal(401, "UNAUTHORIZED", "Wrong password.")
    limiter.reset(client)
    return None


def login_form_ok(request: web.Request, form: Mapping[str, object]) -> bool:
    """The login form's double-submit token: the field matches the cookie."""
    token, expected = form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return (
        isinstance(token, str)
        and _LOGIN_TOKEN.fullmatch(expected) is not None
        and hmac.compare_digest(token.encode(), expected.encode())
    )


async def logged_in(request: web.Request, next_url: str) -> web.Response:
    """A new session for this browser, and on to where it was going."""
    sessions = request.config_dict[SESSIONS]
    session = await sessions.create()
    await sessions.purge()
    log.info("login from %s", client_address(request))
    response = web.Response(status=303, headers={"Location": next_url})
    set_session_cookie(response, request, session)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=base_path(request))
    return response


EXPIRED_FORM = "The login form expired or came from another site. Please try again."


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    next_value, password = form.get("next"), form.get("password")
    next_url = safe_next(next_value if isinstance(next_value, str) else None, base_path(request))
    if not login_form_ok(request, form):
        return _login_page(
            request, next_url=next_url, status=403, code="FORBIDDEN", error=EXPIRED_FORM
        )
    state = request.config_dict[CREDENTIALS].state
    if state != "set":
        why = "No password is set" if state == "unset" else "The stored password hash is broken"
        return _login_page(
            request,
            next_url=next_url,
            status=403,
            code="FORBIDDEN",
            error=f"{why}: choose one below, or run `matinee set-password` on the server.",
        )
    refused = await check_password(request, password if isinstance(password, str) else "")
    if refused is not None:
        return _login_page(
            request,
            next_url=next_url,
            status=refused.status,
            code=refused.code,
            error=refused.error,
            headers=refused.headers,
        )
    return await logged_in(request, next_url)


def new_password_problem(password: object, again: object) -> str | None:
    """What is wrong with a new password as typed twice; None when it will do."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"The password needs at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"The password may have at most {MAX_PASSWORD} characters."
    if password != again:
        return "The two passwords differ."
    return None


def from_household(request: web.Request) -> bool:
    """The request comes from this machine or the household's own networks."""
    address = parse_address(request.remote or "")
    networks = request.config_dict[SETTINGS].server.lan_networks
    return address is not None and is_trusted(address, networks)


async def first_password(request: web.Request) -> web.StreamResponse:
    """The first run: while no password is set, a browser at home may choose it, once."""
    form = await read_form(request)
    next_value = form.get("next")
    next_url = safe_next(next_value if isinstance(next_value, str) else None, base_path(request))
    if not login_form_ok(request, form):
        return _login_page(
            request, next_url=next_url, status=403, code="FORBIDDEN", error=EXPIRED_FORM
        )
    watch = request.config_dict[CREDENTIALS]
    await watch.refresh()  # another process may have set it a moment ago
    if watch.state == "set":
        return _login_page(
            request,
            next_url=next_url,
            status=403,
            code="FORBIDDEN",
            error="A password is set already: log in with it.",
        )
    if not from_household(request):
        log.warning("first password refused: %s is not on a household network", request.remote)
        return _login_page(
            request,
            next_url=next_url,
            status=403,
            code="FORBIDDEN",
            error="The first password can only be chosen from this machine or your home"
            " network ([server] lan_networks), or with `matinee set-password`.",
        )
    problem = new_password_problem(form.get("password"), form.get("password_again"))
    if problem is not None:
        return _login_page(
            request, next_url=next_url, status=400, code="INVALID_INPUT", error=problem
        )
    encoded = await asyncio.to_thread(hash_password, str(form.get("password")))
    async with watch.changing():
        if hash_state((await watch.refresh()).password_hash) == "set":
            return _login_page(
                request,
                next_url=next_url,
                status=403,
                code="FORBIDDEN",
                error="A password is set already: log in with it.",
            )
        await watch.set_password(encoded)
    log.info("the first password was chosen from %s", request.remote)
    return await logged_in(request, next_url)


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
    app.router.add_post(f"{base}login/first-password", first_password, name="first-password")
    app.router.add_post(f"{base}logout", logout, name="logout")
    app.on_startup.append(_say_how_to_log_in)


async def _say_how_to_log_in(app: web.Application) -> None:
    state = app[CREDENTIALS].state
    if state == "unset":
        log.warning(
            "no password is set yet: open Matinee in a browser on this machine or your home"
            " network to choose one, or run `matinee set-password`"
        )
    elif state == "invalid":
        log.error("the stored password hash is not valid: run `matinee set-password` again")
