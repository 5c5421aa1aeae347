"""The household's password over its life: chosen in the browser on the first run (at home,
once), changed on the account page, "log out everywhere"; and what each change ends:
every other session, and every media link handed out before it."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config.load import parse_config
from server.config.settings import Settings
from server.http.passwords import hash_password
from server.http.sessions import SESSION_COOKIE, SESSION_MAX_AGE
from server.keys import SESSIONS
from server.ui.login import LOGIN_CSRF_COOKIE
from tests.support.app import API, KEY, Client, post_of, submit, until
from tests.support.fake_nntp import FakeNntpFactory

BASE = "/"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
OLD, NEW = "the old password", "the new password"


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[[Settings], Awaitable[Client]]]:
    """The app with no cookie jar: every cookie a test sends is written out."""
    clients: list[Client] = []

    async def start(settings: Settings) -> Client:
        client = TestClient(TestServer(create_app(settings)), cookie_jar=aiohttp.DummyCookieJar())
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def settings_for(tmp: Path, **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp / "data"), "trusted_proxies": ["127.0.0.1"]},
        "auth": {"api_keys": [KEY]},
        **extra,
    }
    return parse_config(raw, base_dir=tmp, env={})


def cookies_of(resp: aiohttp.ClientResponse) -> dict[str, str]:
    return {name: morsel.value for name, morsel in resp.cookies.items()}


async def login_form(client: Client, headers: dict[str, str]) -> tuple[str, str, str]:
    """The login page's HTML, its form token and the matching cookie."""
    resp = await client.get(f"{BASE}login", headers={**HTML, **headers})
    assert resp.status == 200
    html = await resp.text()
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return html, match[1], cookies_of(resp)[LOGIN_CSRF_COOKIE]


async def choose_first(
    client: Client, password: str, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    extra = headers or {}
    _, token, cookie = await login_form(client, extra)
    return await client.post(
        f"{BASE}login/first-password",
        data={"csrf": token, "password": password, "password_again": password},
        headers={**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}", **extra},
        allow_redirects=False,
    )


async def log_in(client: Client, password: str) -> aiohttp.ClientResponse:
    _, token, cookie = await login_form(client, {})
    return await client.post(
        f"{BASE}login",
        data={"csrf": token, "password": password},
        headers={**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"},
        allow_redirects=False,
    )


def session(cookie: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={cookie}", **headers}


async def csrf_of(client: Client, cookie: str) -> str:
    resp = await client.get(f"{BASE}account", headers=session(cookie, **HTML))
    assert resp.status == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', await resp.text())
    assert match is not None
    return match[1]


async def test_the_first_password_is_chosen_at_home_once(
    start_app: Callable[..., Any], tmp_path: Path
) -> None:
    client = await start_app(settings_for(tmp_path))
    outside = {"X-Forwarded-For": "203.0.113.7"}
    html, _, _ = await login_form(client, outside)
    assert 'id="first-password-form"' not in html
    refused = await choose_first(client, NEW, outside)
    assert refused.status == 403
    assert "home network" in await refused.text()

    html, _, _ = await login_form(client, {"X-Forwarded-For": "192.168.1.20"})
    assert 'id="first-password-form"' in html
    short = await choose_first(client, "short", {"X-Forwarded-For": "192.168.1.20"})
    assert short.status == 400
    chosen = await choose_first(client, NEW, {"X-Forwarded-For": "192.168.1.20"})
    assert chosen.status == 303 and SESSION_COOKIE in cookies_of(chosen)
    # Only once: now it is a password to log in with, not one to choose.
    again = await choose_first(client, "somebody else's", {"X-Forwarded-For": "192.168.1.21"})
    assert again.status == 403
    assert (await log_in(client, "somebody else's")).status == 401
    assert (await log_in(client, NEW)).status == 303


async def test_changing_the_password_ends_other_sessions_and_old_media_links(
    start_app: Callable[..., Any], tmp_path: Path, fake_nntp: FakeNntpFactory
) -> None:
    data = b"\x1aE\xdf\xa3" + bytes(300_000)  # enough of a file to be served
    nzb, arts = post_of(data, "Film.2020.mkv")
    srv = await fake_nntp(articles=arts)
    encoded = hash_password(OLD, n=2**4)
    settings = settings_for(
        tmp_path,
        auth={"api_keys": [KEY], "password_hash": encoded},
        usenet={"servers": [{"name": "f", "host": srv.host, "port": srv.port, "tls": False}]},
    )
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "ready")
    stream = await (
        await client.get(f"{API}/movies/{job_id}/stream", headers={"X-Api-Key": KEY})
    ).json()
    assert (await client.get(stream["url"])).status == 200  # the link works, no credentials

    phone = cookies_of(await log_in(client, OLD))[SESSION_COOKIE]
    laptop = cookies_of(await log_in(client, OLD))[SESSION_COOKIE]
    csrf = await csrf_of(client, laptop)
    wrong = await client.post(
        f"{BASE}account/password",
        data={"csrf": csrf, "current": "not it", "password": NEW, "password_again": NEW},
        headers=session(laptop, **HTML),
        allow_redirects=False,
    )
    assert wrong.status == 401
    changed = await client.post(
        f"{BASE}account/password",
        data={"csrf": csrf, "current": OLD, "password": NEW, "password_again": NEW},
        headers=session(laptop, **HTML),
        allow_redirects=False,
    )
    assert changed.status == 303
    laptop = cookies_of(changed)[SESSION_COOKIE]  # the browser that changed it stays in
    assert (await client.get(f"{BASE}account", headers=session(laptop, **HTML))).status == 200
    # Every other session and the media link handed out before the change are over.
    assert (await client.get(f"{API}/jobs", headers=session(phone))).status == 401
    assert (await client.get(stream["url"])).status == 401
    assert (await log_in(client, OLD)).status == 401
    assert (await log_in(client, NEW)).status == 303


async def test_log_out_everywhere(start_app: Callable[..., Any], tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, auth={"api_keys": [KEY], "password_hash": hash_password(OLD, n=2**4)}
    )
    client = await start_app(settings)
    one = cookies_of(await log_in(client, OLD))[SESSION_COOKIE]
    two = cookies_of(await log_in(client, OLD))[SESSION_COOKIE]
    resp = await client.post(
        f"{BASE}account/logout-everywhere",
        data={"csrf": await csrf_of(client, one)},
        headers=session(one, **HTML),
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == f"{BASE}login"
    for cookie in (one, two):
        assert (await client.get(f"{API}/jobs", headers=session(cookie))).status == 401
    assert (await log_in(client, OLD)).status == 303  # the password itself is unchanged


async def test_a_session_ends_90_days_after_its_login_however_much_it_is_used(
    start_app: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(
        tmp_path, auth={"api_keys": [KEY], "password_hash": hash_password(OLD, n=2**4)}
    )
    client = await start_app(settings)
    cookie = cookies_of(await log_in(client, OLD))[SESSION_COOKIE]
    sessions = client.app[SESSIONS]
    start = time.time()
    for day in range(1, 90, 7):  # used every week: the sliding expiry keeps moving
        sessions.clock = lambda d=day: start + d * 86400
        resp = await client.get(f"{API}/jobs", headers=session(cookie))
        assert resp.status == 200, day
    sessions.clock = lambda: start + SESSION_MAX_AGE + 1
    assert (await client.get(f"{API}/jobs", headers=session(cookie))).status == 401
