"""Every route of the real app, and of its sub-apps, is closed to anonymous callers except
the public ones (login, health, static files): a route added later without protection, or
an exception added to the auth middleware by mistake, fails here.

The app is the real one from create_app; one extra innermost middleware answers for the
handlers of protected routes ("reached"), so that the walk tests the gate, not what lies
behind it, and needs no TMDB, indexer or Usenet server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractResource

from server.app import create_app
from server.config.load import parse_config
from server.http.middleware import is_public
from server.http.sessions import SESSION_COOKIE
from server.keys import SESSIONS, SETTINGS
from tests.support.routes import walk

KEY = "route-walk-api-key-0123"
REACHED = "X-Test-Reached"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

Client = TestClient[web.Request, web.Application]


@web.middleware
async def reached(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost: stands in for the handler of every protected route."""
    if is_public(request):
        return await handler(request)
    return web.json_response({"reached": request.path}, headers={REACHED: "1"})


def public(base: str, method: str, path: str) -> bool:
    """The routes anyone may call, written out independently of the middleware."""
    read = method in {"GET", "HEAD"}
    return (
        (path == f"{base}login" and (read or method == "POST"))
        or (path == f"{base}login/first-password" and method == "POST")
        or (path == f"{base}api/health" and read)
        or (path == f"{base}api/ready" and read)
        or (path.startswith(f"{base}static/") and read)
        or (path == f"{base}favicon.ico" and read)
    )


def is_api(base: str, path: str) -> bool:
    rel = path[len(base) :]
    return rel.startswith(("api/", "media/", "hls/")) or rel == "metrics"


@pytest.fixture(params=["/", "/movies/"])
async def app_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    base = request.param
    settings = parse_config(
        {
            "server": {"data_dir": str(tmp_path / "data"), "base_path": base},
            "auth": {"api_keys": [KEY]},
            # nothing here is called (the walk stops at the gate), but never the real TMDB
            "tmdb": {"base_url": "http://127.0.0.1:9/3", "image_base_url": "http://127.0.0.1:9"},
        },
        base_dir=tmp_path,
        env={},
    )
    app = create_app(settings)
    app.middlewares.append(reached)
    client = TestClient(TestServer(app), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client
    await client.close()


def app_of(client: Client) -> web.Application:
    assert client.app is not None
    return client.app


def base_of(client: Client) -> str:
    return app_of(client)[SETTINGS].server.base_path


def routes_of(client: Client) -> list[tuple[str, str, AbstractResource]]:
    routes = list(walk(app_of(client)))
    base = base_of(client)
    paths = {path for _, path, _ in routes}
    # the walk sees what is known to exist (a sanity check of the walk itself)
    for expected in [
        f"{base}login",
        f"{base}logout",
        f"{base}api/health",
        f"{base}static/matinee.css",
        f"{base}media/job_1700000000000_abcdef/movie.mkv",
        f"{base}api/movies-on-demand/jobs",
        f"{base}api/movies-on-demand/jobs/job_1700000000000_abcdef",
    ]:
        assert expected in paths, expected
    return routes


async def call(
    client: Client, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    async with client.request(method, path, headers=headers, allow_redirects=False) as resp:
        body = "" if method == "HEAD" else await resp.text()
        return resp.status, dict(resp.headers), body


async def test_anonymous_callers_get_401_or_the_login_page(app_client: Client) -> None:
    base = base_of(app_client)
    checked = 0
    for method, path, resource in routes_of(app_client):
        status, headers, body = await call(app_client, method, path)
        where = f"{method} {path} ({resource!r})"
        assert REACHED not in headers, f"{where} is reachable without credentials"
        if public(base, method, path):
            assert status not in (401, 303), where
            continue
        if is_api(base, path):
            assert status == 401, where
            if method != "HEAD":
                assert '"code": "UNAUTHORIZED"' in body, where
        else:
            assert status == 303, where
            login = f"{base}login?next="
            assert headers["Location"].startswith(login), where
        checked += 1
    assert checked >= 10


async def test_public_routes_answer_anyone(app_client: Client) -> None:
    base = base_of(app_client)
    assert (await call(app_client, "GET", f"{base}api/health"))[0] == 200
    status, _, body = await call(app_client, "GET", f"{base}login")
    assert status == 200 and 'type="password"' in body
    status, headers, body = await call(app_client, "GET", f"{base}static/matinee.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    # nothing else is public, however the path is spelled
    for sneaky in [
        f"{base}static/../api/movies-on-demand/jobs",
        f"{base}static/%2e%2e/api/movies-on-demand/jobs",
        f"{base}api/health/../movies-on-demand/jobs",
        f"{base}login/../api/movies-on-demand/jobs",
        f"{base}api/movies-on-demand/../health",
    ]:
        status, headers, _ = await call(app_client, "GET", sneaky)
        assert REACHED not in headers, sneaky
        if status == 200:  # only when the path normalises to a public route
            assert "health" in sneaky, sneaky


async def test_an_api_key_opens_every_route(app_client: Client) -> None:
    for method, path, _ in routes_of(app_client):
        status, headers, _ = await call(app_client, method, path, {"X-Api-Key": KEY})
        assert status != 401, f"{method} {path}"
        if not public(base_of(app_client), method, path):
            assert REACHED in headers, f"{method} {path}"


async def test_a_session_opens_every_route(app_client: Client) -> None:
    sessions = app_of(app_client)[SESSIONS]
    session = await sessions.create()
    cookie = {"Cookie": f"{SESSION_COOKIE}={session.cookie}"}
    for method, path, _ in routes_of(app_client):
        if public(base_of(app_client), method, path):
            continue
        headers = {**cookie, "X-CSRF-Token": session.csrf} if method in UNSAFE else cookie
        status, seen, _ = await call(app_client, method, path, headers)
        assert status != 401 and REACHED in seen, f"{method} {path}"
        if method in UNSAFE:
            # the same without the CSRF token is refused
            status, seen, body = await call(app_client, method, path, cookie)
            assert status == 403 and REACHED not in seen, f"{method} {path}"
            assert '"code": "FORBIDDEN"' in body


async def test_forged_and_expired_cookies_open_nothing(app_client: Client) -> None:
    base = base_of(app_client)
    sessions = app_of(app_client)[SESSIONS]
    session = await sessions.create()
    session_id, _, mac = session.cookie.rpartition(".")
    forged = [
        "forged",
        session_id,
        f"{session_id}.{mac[::-1]}",
        f"{session_id[::-1]}.{mac}",
        f"{session.csrf}.{mac}",
    ]
    real = time.time()
    for label, value in [*(("forged", f) for f in forged), ("expired", session.cookie)]:
        if label == "expired":
            sessions.clock = lambda: real + 31 * 24 * 3600
        for method, path, _ in routes_of(app_client):
            if public(base, method, path):
                continue
            headers = {"Cookie": f"{SESSION_COOKIE}={value}", "X-CSRF-Token": session.csrf}
            status, seen, _ = await call(app_client, method, path, headers)
            assert REACHED not in seen, f"{label} cookie opened {method} {path}"
            assert status == (401 if is_api(base, path) else 303), f"{method} {path}"
