"""Who may use Matinee: one household password for the web UI, API keys for programs.

* Passwords are stored as one scrypt string, ``scrypt$n=16384,r=8,p=1$<salt>$<key>``
  (base64 without padding), written into the config file by ``matinee set-password``.
* A successful login creates a random session id kept in SQLite (as its SHA-256, so a copy
  of the database does not hold usable sessions) with a CSRF token and a sliding 30-day
  expiry. The browser holds it in the ``matinee_session`` cookie, signed with the app secret.
* Failed logins are counted per client address (after trusted X-Forwarded-For handling) in
  memory: the count starts empty at each start and is per process, which is all Matinee runs.

The middleware that enforces all of this is ``server.http.middleware.auth_middleware``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import stat
import tempfile
import time
import tomllib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from server.config.settings import Settings
from server.errors import Unauthorized
from server.keys import LOGIN_LIMITER, SECRET, SESSION, SESSIONS, SETTINGS, STORE
from server.store.db import Store
from server.ui.templates import render

log = logging.getLogger(__name__)

SESSION_COOKIE = "matinee_session"
#: Double-submit token of the login form (there is no session yet to hold one).
LOGIN_CSRF_COOKIE = "matinee_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSION_TTL = 30 * 24 * 3600
#: A session used after this long since its last renewal is given a fresh SESSION_TTL.
RENEW_AFTER = 24 * 3600
MIN_PASSWORD = 8
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_LOGIN_FAILURES = 5
LOGIN_WINDOW = 300.0


class Forbidden(Unauthorized):
    """Authenticated, but the request is not acceptable (a missing or wrong CSRF token)."""

    status = 403


# --------------------------------------------------------------------------- passwords

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_HASH = re.compile(
    r"scrypt\$n=(?P<n>\d{1,8}),r=(?P<r>\d{1,3}),p=(?P<p>\d{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]{16,88})\$(?P<key>[A-Za-z0-9+/]{16,88})"
)
#: A memory bound for hashes found in a config file; the default parameters need 16 MiB.
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL needs about 128 * r * (n + p + 2) bytes; the default limit (32 MiB) is too tight.
    maxmem = 2 * 128 * r * (n + p + 2)
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


@dataclass(frozen=True, slots=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The scrypt string stored as ``[auth] password_hash``; a new random salt each time."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, _KEY_BYTES)
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def parse_password_hash(encoded: str) -> ScryptHash:
    """Raises ValueError, saying what is wrong, for anything but a usable scrypt string."""
    match = _HASH.fullmatch(encoded.strip())
    if match is None:
        raise ValueError("not a scrypt hash written by `matinee set-password`")
    n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError("the scrypt parameters are out of range")
    if 128 * r * n > _MAX_SCRYPT_MEMORY:
        raise ValueError("the scrypt parameters need too much memory")
    try:
        salt, key = _unb64(match["salt"]), _unb64(match["key"])
    except ValueError:
        raise ValueError("the salt or key is not valid base64") from None
    return ScryptHash(n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; constant time in the comparison. Raises ValueError
    when ``encoded`` is not a valid hash. Takes tens of milliseconds: call it in a thread."""
    stored = parse_password_hash(encoded)
    derived = _scrypt(password, stored.salt, stored.n, stored.r, stored.p, len(stored.key))
    return hmac.compare_digest(derived, stored.key)


PasswordState = Literal["set", "unset", "invalid"]


def password_state(settings: Settings) -> PasswordState:
    encoded = settings.auth.password_hash
    if not encoded:
        return "unset"
    try:
        parse_password_hash(encoded)
    except ValueError:
        return "invalid"
    return "set"


# --------------------------------------------------------------------------- set-password

_TABLE_HEADER = re.compile(r"\s*\[(?!\[)\s*(?P<name>[^\]]*?)\s*\]\s*(?:#.*)?")
_ARRAY_HEADER = re.compile(r"\s*\[\[.*")
_HASH_KEY = re.compile(
    r"(?P<indent>\s*)(?:password_hash|\"password_hash\"|'password_hash')\s*=\s*(?P<rest>.*)"
)
_STRING_AND_COMMENT = re.compile(r"(?:\"(?:[^\"\\]|\\.)*\"|'[^']*')(?P<comment>\s*#.*)?")


def with_password_hash(text: str, encoded: str) -> tuple[str, str]:
    """The config file ``text`` with ``[auth] password_hash`` set to ``encoded``, every other
    line and comment untouched; and "replaced" or "added". Raises ValueError when the file is
    not TOML or is written in a way this line-based edit cannot change safely."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    line_for = f'password_hash = "{encoded}"'
    lines = text.splitlines(keepends=True)
    section: str | None = ""
    auth_header: int | None = None
    action = "added"
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if _ARRAY_HEADER.fullmatch(body):
            section = None
            continue
        if header := _TABLE_HEADER.fullmatch(body):
            section = header["name"].strip("\"'")
            if section == "auth":
                auth_header = i
            continue
        if section == "auth" and (key := _HASH_KEY.fullmatch(body)):
            value = _STRING_AND_COMMENT.fullmatch(key["rest"].rstrip())
            comment = (value["comment"] or "") if value else ""
            lines[i] = key["indent"] + line_for + comment + line[len(body) :]
            action = "replaced"
            break
    else:
        if auth_header is not None:
            lines.insert(auth_header + 1, line_for + newline)
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += newline
            lines.append(f"{newline if lines else ''}[auth]{newline}{line_for}{newline}")
    result = "".join(lines)
    # The edit is line based; check with a real parser that it did exactly what it should.
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = {}
    auth_after = after.get("auth", {})
    if not isinstance(auth_after, dict) or auth_after.get("password_hash") != encoded:
        raise ValueError(
            "cannot find where to put the hash; add this line to the [auth] section: " + line_for
        )
    auth_after.pop("password_hash")
    auth_before = before.get("auth")
    if isinstance(auth_before, dict):
        auth_before.pop("password_hash", None)
    if not auth_after and "auth" not in before:
        after.pop("auth")
    if after != before:
        raise ValueError("editing the file would change more than password_hash")
    return result, action


def write_password_hash(path: Path, encoded: str) -> str:
    """Set ``[auth] password_hash`` in the config file at ``path`` (created when missing),
    replacing the file atomically; returns "replaced", "added" or "created"."""
    target = path.resolve()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text, action, mode = "", "created", 0o600
    else:
        action, mode = "", stat.S_IMODE(target.stat().st_mode)
    new_text, edit = with_password_hash(text, encoded)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(new_text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return action or edit


# --------------------------------------------------------------------------- login limiter


class LoginLimiter:
    """At most ``max_failures`` failed logins per client address per ``window`` seconds.

    In memory, per process: enough for one household behind one Matinee process, and a
    restart forgets the counts. The number of addresses tracked is bounded.
    """

    def __init__(
        self,
        max_failures: int = MAX_LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.max_failures:
            return 0.0
        return max(failures[0] + self.window - self.clock(), 0.001)

    def failed(self, client: str) -> None:
        """Count an attempt as failed; called before the password is checked, so that
        parallel guesses cannot all pass while the first ones are still being verified."""
        failures = self._recent(client)
        if failures is None:
            if len(self._failures) >= self._max_clients:
                self._forget_expired()
            if len(self._failures) >= self._max_clients:
                del self._failures[next(iter(self._failures))]
            failures = self._failures[client] = deque(maxlen=self.max_failures)
        failures.append(self.clock())

    def reset(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def _forget_expired(self) -> None:
        horizon = self.clock() - self.window
        for client in [c for c, f in self._failures.items() if not f or f[-1] <= horizon]:
            del self._failures[client]


# --------------------------------------------------------------------------- sessions


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
        expires_at = self.clock() + SESSION_TTL
        await self._store.create_session(
            _storage_key(session_id), json.dumps({"csrf": csrf}), expires_at
        )
        return ActiveSession(session_id, csrf, expires_at, f"{session_id}.{self._mac(session_id)}")

    async def load(self, cookie: str) -> ActiveSession | None:
        """The live session a cookie names, renewed when due; None for anything else."""
        session_id = self.unsign(cookie)
        if session_id is None:
            return None
        key = _storage_key(session_id)
        row = await self._store.get_session(key, now=self.clock())
        if row is None:
            async with self._renewing:
                row = await self._store.get_session(key, now=self.clock())
        if row is None:
            return None
        data = _session_data(row.data)
        csrf = data.get("csrf")
        if not isinstance(csrf, str):
            return None
        session = ActiveSession(session_id, csrf, row.expires_at, cookie)
        if self.clock() + SESSION_TTL - row.expires_at < RENEW_AFTER:
            return session
        async with self._renewing:
            now = self.clock()
            current = await self._store.get_session(key, now=now)
            if current is None:
                return None
            expires_at = current.expires_at
            if now + SESSION_TTL - expires_at >= RENEW_AFTER:
                expires_at = now + SESSION_TTL
                await self._store.delete_session(key)
                await self._store.create_session(key, current.data, expires_at)
        return ActiveSession(session_id, csrf, expires_at, cookie, renewed=True)

    async def end(self, session_id: str) -> None:
        await self._store.delete_session(_storage_key(session_id))

    async def purge(self) -> int:
        return await self._store.purge_sessions(now=self.clock())


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
        value = (await request.post()).get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    return offered is not None and hmac.compare_digest(offered.encode(), session.csrf.encode())


# --------------------------------------------------------------------------- redirects


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
        return web.json_response({"error": error, "code": code}, status=status, headers=headers)
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
            error="The login form expired or came from another site. Please try again.",
        )
    state = password_state(settings)
    if state != "set":
        why = "No password is set" if state == "unset" else "The configured password hash is broken"
        return _login_page(
            request,
            next_url=next_url,
            status=403,
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
    limiter.failed(client)
    assert settings.auth.password_hash is not None  # password_state said so
    offered = password if isinstance(password, str) else ""
    if not await asyncio.to_thread(verify_password, offered, settings.auth.password_hash):
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


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    sessions = Sessions(app[STORE], app[SECRET])
    app[SESSIONS] = sessions
    purged = await sessions.purge()
    if purged:
        log.info("dropped %d expired login sessions", purged)
    yield


def setup_auth(app: web.Application) -> None:
    """The login and logout routes, the login limiter, and the sessions (after the store
    in the cleanup contexts, so call this after the store's context is added)."""
    settings = app[SETTINGS]
    base = settings.server.base_path
    app[LOGIN_LIMITER] = LoginLimiter()
    app.cleanup_ctx.append(_sessions_ctx)
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
