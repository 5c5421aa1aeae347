"""Login sessions: a random id kept in SQLite (as its SHA-256, so a copy of the database does
not hold usable sessions) with a CSRF token and a sliding 30-day expiry. The browser holds it
in the ``matinee_session`` cookie, signed with the app secret.

The middleware that enforces sessions, API keys and media tokens is
``server.http.middleware.auth_middleware``; the login page is ``server.ui.login``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.http.forms import read_form
from server.keys import SECRET, SESSIONS, SETTINGS, STORE
from server.store.db import Store

log = logging.getLogger(__name__)

SESSION_COOKIE = "matinee_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSION_TTL = 30 * 24 * 3600
#: However often it is used, a session ends this long after the login that made it.
SESSION_MAX_AGE = 90 * 24 * 3600
#: A session used after this long since its last renewal is given a fresh SESSION_TTL.
RENEW_AFTER = 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class ActiveSession:
    session_id: str
    csrf: str
    expires_at: float
    #: The signed cookie value.
    cookie: str
    #: True when this request extended the session; the cookie is sent again.
    renewed: bool = False


def _storage_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Login sessions in the store, addressed by signed cookie values."""

    def __init__(
        self, store: Store, secret: bytes, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        # A key of its own, so that no media token can ever pass for a session cookie.
        self._key = hmac.new(secret, b"matinee session cookie", hashlib.sha256).digest()
        self.clock = clock
        # Renewal replaces the row (delete, then create): a lookup that misses waits for a
        # renewal in progress before it concludes the session is gone.
        self._renewing = asyncio.Lock()

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self._key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def unsign(self, cookie: str) -> str | None:
        session_id, _, mac = cookie.rpartition(".")
        if not session_id or len(cookie) > 200:
            return None
        valid = hmac.compare_digest(mac.encode(), self._mac(session_id).encode())
        return session_id if valid else None

    async def create(self) -> ActiveSession:
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + SESSION_TTL
        data = json.dumps({"csrf": csrf, "born": now})  # "born" survives renewals
        await self._store.sessions.create(_storage_key(session_id), data, expires_at)
        return ActiveSession(session_id, csrf, expires_at, f"{session_id}.{self._mac(session_id)}")

    async def load(self, cookie: str) -> ActiveSession | None:
        """The live session a cookie names, renewed when due; None for anything else."""
        session_id = self.unsign(cookie)
        if session_id is None:
            return None
        key = _storage_key(session_id)
        row = await self._store.sessions.get(key, now=self.clock())
        if row is None:
            async with self._renewing:
                row = await self._store.sessions.get(key, now=self.clock())
        if row is None:
            return None
        data = _session_data(row.data)
        csrf, born = data.get("csrf"), data.get("born")
        if not isinstance(csrf, str) or not isinstance(born, int | float):
            return None
        if self.clock() - born >= SESSION_MAX_AGE:
            await self._store.sessions.delete(key)  # renewed all along, but too old now
            return None
        session = ActiveSession(session_id, csrf, row.expires_at, cookie)
        if self.clock() + SESSION_TTL - row.expires_at < RENEW_AFTER:
            return session
        async with self._renewing:
            now = self.clock()
            current = await self._store.sessions.get(key, now=now)
            if current is None:
                return None
            expires_at = current.expires_at
            if now + SESSION_TTL - expires_at >= RENEW_AFTER:
                expires_at = now + SESSION_TTL
                await self._store.sessions.delete(key)
                await self._store.sessions.create(key, current.data, expires_at)
        return ActiveSession(session_id, csrf, expires_at, cookie, renewed=True)

    async def end(self, session_id: str) -> None:
        await self._store.sessions.delete(_storage_key(session_id))

    async def purge(self) -> int:
        return await self._store.sessions.purge(now=self.clock())


def _session_data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def base_path(request: web.Request) -> str:
    return request.config_dict[SETTINGS].server.base_path


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, session: ActiveSession
) -> None:
    max_age = max(round(session.expires_at - request.config_dict[SESSIONS].clock()), 0)
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie,
        max_age=max_age,
        path=base_path(request),
        secure=request.secure,
        httponly=True,
        samesite="Lax",
    )


async def session_for(request: web.Request) -> ActiveSession | None:
    """The session the request's cookie names, if it is valid."""
    cookie = request.cookies.get(SESSION_COOKIE)
    sessions = request.config_dict.get(SESSIONS)
    if not cookie or sessions is None:
        return None
    return await sessions.load(cookie)


async def csrf_ok(request: web.Request, session: ActiveSession) -> bool:
    """The session's token in the X-CSRF-Token header, or in the ``csrf`` field of a
    urlencoded form (multipart bodies are not read here: send the header with them)."""
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.content_type == "application/x-www-form-urlencoded":
        value = (await read_form(request)).get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    return offered is not None and hmac.compare_digest(offered.encode(), session.csrf.encode())


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    sessions = Sessions(app[STORE], app[SECRET])
    app[SESSIONS] = sessions
    purged = await sessions.purge()
    if purged:
        log.info("dropped %d expired login sessions", purged)
    yield


def setup(app: web.Application) -> None:
    """Login sessions, after the store in the cleanup contexts."""
    app.cleanup_ctx.append(_sessions_ctx)
