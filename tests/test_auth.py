"""Logging in and staying logged in: the password, `matinee set-password`, session cookies,
CSRF, the login rate limit and logging out, as a browser and a script see them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.cli import main as cli
from server.config.load import parse_config
from server.config.settings import Settings
from server.http.login_limit import LoginLimiter
from server.http.passwords import hash_password, parse_password_hash, verify_password
from server.http.sessions import SESSION_COOKIE
from server.keys import CREDENTIALS, LOGIN_LIMITER, SESSIONS
from server.ui.login import LOGIN_CSRF_COOKIE, safe_next
from server.ui.templates import render
from tests.support.app import wait_for

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
KEY = "test-api-key-0123456789"
BASE = "/movies/"
API = f"{BASE}api/movies-on-demand"
PAGE = f"{BASE}test-page"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
DAY = 24 * 3600.0

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def settings_for(
    tmp: Path, password_hash: str | None = None, *, trusted: list[str] | None = None
) -> Settings:
    raw: dict[str, Any] = {
        "server": {
            "data_dir": str(tmp / "data"),
            "base_path": BASE,
            "trusted_proxies": trusted or [],
        },
        "auth": {"api_keys": [KEY], "password_hash": password_hash or ""},
    }
    return parse_config(raw, base_dir=tmp, env={})


async def page_handler(request: web.Request) -> web.Response:
    """Stands in for the UI's pages: base.html as a logged-in user gets it."""
    return render(request, "base.html", {})


def app_with_page(settings: Settings) -> web.Application:
    app = create_app(settings)
    app.router.add_get(PAGE, page_handler)
    return app


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    clients: list[Client] = []

    async def start(settings: Settings) -> Client:
        # No cookie jar: every cookie a test sends is written out, so none is sent by accident.
        client = TestClient(
            TestServer(app_with_page(settings)), cookie_jar=aiohttp.DummyCookieJar()
        )
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, Morsel[str]]:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


def raw_set_cookie(resp: aiohttp.ClientResponse, name: str) -> str:
    found = [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]
    assert len(found) == 1, resp.headers.getall("Set-Cookie", [])
    return found[0]


async def post_login(
    client: Client,
    password: str,
    *,
    next_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """Open the login page and submit its form, as a browser does."""
    extra = headers or {}
    page = await client.get(f"{BASE}login", headers={**HTML, **extra})
    assert page.status == 200
    html = await page.text()
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html
    form = {"password": password, "csrf": match[1]}
    if next_url is not None:
        form["next"] = next_url
    cookie = set_cookies(page)[LOGIN_CSRF_COOKIE].value
    return await client.post(
        f"{BASE}login",
        data=form,
        headers={**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}", **extra},
        allow_redirects=False,
    )


async def log_in(client: Client) -> str:
    resp = await post_login(client, PASSWORD)
    assert resp.status == 303, await resp.text()
    return set_cookies(resp)[SESSION_COOKIE].value


def with_session(cookie: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={cookie}", **headers}


async def csrf_of_page(client: Client, cookie: str) -> str:
    """The CSRF token as the UI gets it: from a page it renders for the session."""
    resp = await client.get(PAGE, headers=with_session(cookie, **HTML))
    assert resp.status == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', await resp.text())
    assert match is not None
    return match[1]


# --------------------------------------------------------------------------- passwords


def test_hash_and_verify() -> None:
    encoded = hash_password(PASSWORD)
    assert re.fullmatch(r"scrypt\$n=16384,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", encoded)
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + " ", encoded)
    assert not verify_password("", encoded)
    # a fresh salt every time
    assert hash_password(PASSWORD) != encoded
    # other parameters are read from the string
    cheap = hash_password("pässwörd ✓", n=1024, r=4, p=2)
    assert cheap.startswith("scrypt$n=1024,r=4,p=2$")
    assert verify_password("pässwörd ✓", cheap)
    assert not verify_password("passwörd ✓", cheap)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "hunter2",
        "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0",  # bcrypt
        "scrypt$n=16384,r=8,p=1$c2FsdHNhbHRzYWx0$",
        "scrypt$n=16385,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$n=1048576,r=64,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$n=16384,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a",
    ],
)
def test_malformed_hashes_are_refused(encoded: str) -> None:
    with pytest.raises(ValueError):
        parse_password_hash(encoded)
    with pytest.raises(ValueError):
        verify_password(PASSWORD, encoded)


# --------------------------------------------------------------------------- set-password


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = cli.main(["set-password", *args])
    out, err = capsys.readouterr()
    return status, out, err


def config_for(tmp_path: Path, password_hash: str | None = None) -> Path:
    """A config file naming the data dir the test's app uses (settings_for's)."""
    config = tmp_path / "config.toml"
    line = f'password_hash = "{password_hash}"\n' if password_hash else ""
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[auth]\n{line}')
    return config


async def test_set_password_takes_effect_at_once_and_ends_every_session(
    start: Start,
    tmp_path: Path,
    password_hash: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    cookie = await log_in(client)
    config = config_for(tmp_path, password_hash)
    assert client.app is not None
    before = client.app[CREDENTIALS].current.epoch
    status, out, err = await asyncio.to_thread(
        run_cli, monkeypatch, capsys, "a new password\n", "--config", str(config), "--stdin"
    )
    assert (status, err) == (0, ""), err
    assert "uses it at once" in out
    # No restart: the running server knows within seconds; the old session is over.
    resp = await client.get(f"{API}/jobs", headers=with_session(cookie))
    assert resp.status == 401
    # The running server notices the change within its poll (2 s), without a restart.
    await wait_for(lambda: client.app[CREDENTIALS].current.epoch > before, within=10)
    assert await _logs_in(client, "a new password")
    resp = await post_login(client, PASSWORD)
    assert resp.status == 401
    # The config file's old hash is ignored from now on (and the log says why).
    assert "password_hash" in config.read_text()


async def _logs_in(client: Client, password: str) -> bool:
    resp = await post_login(client, password)
    resp.release()
    return resp.status == 303


def test_set_password_prompts_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path)
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["set-password", "--config", str(config)]) == 1
    assert "the passwords differ; nothing changed" in capsys.readouterr().err
    assert stored_hash(tmp_path) is None

    answers = iter([PASSWORD, PASSWORD])
    assert cli.main(["set-password", "--config", str(config)]) == 0
    assert "The password is set" in capsys.readouterr().out
    encoded = stored_hash(tmp_path)
    assert encoded is not None and verify_password(PASSWORD, encoded)


def stored_hash(tmp_path: Path) -> str | None:
    path = tmp_path / "data" / "matinee.sqlite3"
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT password_hash FROM credentials").fetchone()
    return None if row is None else row[0]


def test_set_password_refuses_short_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path)
    for given in ["short12\n", "", "\n"]:
        status, _, err = run_cli(monkeypatch, capsys, given, "--config", str(config), "--stdin")
        assert status == 1
        assert "at least 8 characters" in err and "nothing changed" in err
    assert stored_hash(tmp_path) is None


def test_set_password_says_what_is_wrong_with_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1\n")
    status, _, err = run_cli(monkeypatch, capsys, PASSWORD, "--config", str(broken), "--stdin")
    assert status == 2
    assert f"{broken}: not valid TOML" in err
    assert broken.read_text() == "[server\nport = 1\n"


# --------------------------------------------------------------------------- login


async def test_login_page_without_a_password_says_how_to_set_one(
    start: Start, tmp_path: Path
) -> None:
    # Seen from outside the household (behind a proxy, from a public address): no form to
    # choose the password, only how to set it.
    client = await start(settings_for(tmp_path, trusted=["127.0.0.1"]))
    outside = {"X-Forwarded-For": "203.0.113.9"}
    resp = await client.get(f"{BASE}login", headers={**HTML, **outside})
    assert resp.status == 200
    html = await resp.text()
    assert "No password is set yet" in html and 'id="first-password-form"' not in html
    assert "matinee set-password" in html
    resp = await post_login(client, "anything at all", headers=outside)
    assert resp.status == 403
    assert SESSION_COOKIE not in set_cookies(resp)
    assert "run `matinee set-password` on the server" in await resp.text()
    # API keys work all the same
    assert (await client.get(f"{API}/jobs", headers={"X-Api-Key": KEY})).status == 200


async def test_login_success_and_failure(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    page = await client.get(f"{BASE}login?next={BASE}jobs", headers=HTML)
    html = await page.text()
    assert 'type="password"' in html
    assert f'name="next" value="{BASE}jobs"' in html
    assert "No password is set" not in html
    assert f'href="{BASE}static/matinee.css?v=' in html  # cache-busted, under the base path
    assert f'action="{BASE}login"' in html

    wrong = await post_login(client, "not the password")
    assert wrong.status == 401
    assert "Wrong password." in await wrong.text()
    assert SESSION_COOKIE not in set_cookies(wrong)

    right = await post_login(client, PASSWORD, next_url=f"{BASE}jobs?status=ready")
    assert right.status == 303
    assert right.headers["Location"] == f"{BASE}jobs?status=ready"
    cookie = set_cookies(right)[SESSION_COOKIE].value
    resp = await client.get(f"{API}/jobs", headers=with_session(cookie))
    assert resp.status == 200
    assert await resp.json() == {"jobs": []}
    # already logged in: the login page sends you on
    again = await client.get(
        f"{BASE}login?next={BASE}x", headers=with_session(cookie), allow_redirects=False
    )
    assert (again.status, again.headers["Location"]) == (302, f"{BASE}x")


async def test_login_form_needs_its_token(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    page = await client.get(f"{BASE}login", headers=HTML)
    cookie = set_cookies(page)[LOGIN_CSRF_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None and token[1] == cookie.value
    # a form posted from another site has neither the cookie nor the matching value
    for headers, form in [
        (HTML, {"password": PASSWORD, "csrf": token[1]}),
        ({**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie.value}"}, {"password": PASSWORD}),
        (
            {**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie.value}"},
            {"password": PASSWORD, "csrf": "x" * 43},
        ),
    ]:
        resp = await client.post(f"{BASE}login", data=form, headers=headers)
        assert resp.status == 403
        assert "The login form expired" in await resp.text()
        assert SESSION_COOKIE not in set_cookies(resp)


async def test_session_cookie_attributes(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    resp = await post_login(client, PASSWORD)
    header = raw_set_cookie(resp, SESSION_COOKIE)
    cookie = set_cookies(resp)[SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == BASE
    assert cookie["max-age"] == str(30 * 24 * 3600)
    assert "Secure" not in header  # plain http, no proxy
    # the login form's token is dropped once used
    assert set_cookies(resp)[LOGIN_CSRF_COOKIE]["max-age"] == "0"


@pytest.mark.parametrize(
    ("trusted", "headers", "secure"),
    [
        (["127.0.0.1"], {"X-Forwarded-Proto": "https"}, True),
        (["127.0.0.0/8"], {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, True),
        (["127.0.0.1"], {"X-Forwarded-Proto": "http"}, False),
        # anyone can send the header; only a trusted proxy is believed
        (["10.0.0.0/8"], {"X-Forwarded-Proto": "https"}, False),
        ([], {"X-Forwarded-Proto": "https"}, False),
    ],
)
async def test_cookie_is_secure_when_the_client_used_https(
    start: Start,
    tmp_path: Path,
    password_hash: str,
    trusted: list[str],
    headers: dict[str, str],
    secure: bool,
) -> None:
    client = await start(settings_for(tmp_path, password_hash, trusted=trusted))
    resp = await post_login(client, PASSWORD, headers=headers)
    assert resp.status == 303
    assert ("; Secure" in raw_set_cookie(resp, SESSION_COOKIE)) is secure


NEXT_CASES = [
    (None, BASE),
    (f"{BASE}jobs", f"{BASE}jobs"),
    (f"{BASE}movies/603?tab=cast#top", f"{BASE}movies/603?tab=cast#top"),
    ("//evil.com", BASE),
    ("//evil.com/movies/", BASE),
    ("https://evil.com", BASE),
    (f"https://evil.com{BASE}", BASE),
    ("/\\evil.com", BASE),
    ("\\\\evil.com", BASE),
    (f"{BASE}\\..\\\\evil.com", BASE),
    (f"/\t/evil.com{BASE}", BASE),
    (f"{BASE}\n//evil.com", BASE),
    ("javascript:alert(1)", BASE),
    ("/elsewhere/", BASE),  # outside the base path
    (f"{BASE}login", BASE),
    (f"{BASE}logout", BASE),
    ("", BASE),
]


@pytest.mark.parametrize(("given", "expected"), NEXT_CASES)
def test_safe_next(given: str | None, expected: str) -> None:
    assert safe_next(given, BASE) == expected


async def test_login_never_redirects_off_site(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    for given, expected in NEXT_CASES:
        resp = await post_login(client, PASSWORD, next_url=given)
        assert resp.status == 303
        assert resp.headers["Location"] == expected, given
    # the page does not put a foreign next into its form either
    page = await client.get(f"{BASE}login", params={"next": "//evil.com"}, headers=HTML)
    assert f'name="next" value="{BASE}"' in await page.text()


async def test_login_rate_limit(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    for _ in range(5):
        assert (await post_login(client, "guess")).status == 401
    limited = await post_login(client, "guess")
    assert limited.status == 429
    assert 290 <= int(limited.headers["Retry-After"]) <= 300
    assert "Too many failed attempts. Try again in 5 minutes." in await limited.text()
    # not even the right password gets through now
    right = await post_login(client, PASSWORD)
    assert right.status == 429
    assert SESSION_COOKIE not in set_cookies(right)
    # a script (no text/html) gets the API's error shape
    token_page = await client.get(f"{BASE}login", headers=HTML)
    token = set_cookies(token_page)[LOGIN_CSRF_COOKIE].value
    resp = await client.post(
        f"{BASE}login",
        data={"password": PASSWORD, "csrf": token},
        headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={token}", "Accept": "application/json"},
    )
    assert resp.status == 429
    assert "Retry-After" in resp.headers
    assert (await resp.json())["code"] == "RATE_LIMITED"


async def test_successful_login_resets_the_count(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    for _ in range(4):
        assert (await post_login(client, "guess")).status == 401
    assert (await post_login(client, PASSWORD)).status == 303
    for _ in range(4):
        assert (await post_login(client, "guess")).status == 401
    assert (await post_login(client, PASSWORD)).status == 303


async def test_rate_limit_is_per_client_behind_a_trusted_proxy(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    client = await start(settings_for(tmp_path, password_hash, trusted=["127.0.0.1"]))
    alice = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(5):
        assert (await post_login(client, "guess", headers=alice)).status == 401
    assert (await post_login(client, "guess", headers=alice)).status == 429
    # another household member behind the same proxy is not locked out
    bob = {"X-Forwarded-For": "198.51.100.8, 127.0.0.1"}
    assert (await post_login(client, PASSWORD, headers=bob)).status == 303


async def test_rate_limit_cannot_be_dodged_with_forged_headers(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    # the peer (127.0.0.1) is not a trusted proxy, so X-Forwarded-For is ignored
    client = await start(settings_for(tmp_path, password_hash, trusted=["10.0.0.0/8"]))
    for i in range(5):
        forged = {"X-Forwarded-For": f"203.0.113.{i}"}
        assert (await post_login(client, "guess", headers=forged)).status == 401
    forged = {"X-Forwarded-For": "203.0.113.200"}
    assert (await post_login(client, "guess", headers=forged)).status == 429


def test_login_limiter_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(3, 60, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") == 60
    now[0] += 59
    assert limiter.retry_after("a") == pytest.approx(1)
    now[0] += 1
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    limiter.reset("a")
    assert limiter.retry_after("a") == 0
    # bounded memory: the oldest address is forgotten first
    for client in ["b", "c", "d"]:
        for _ in range(3):
            limiter.failed(client)
    assert limiter.retry_after("b") == 0
    assert limiter.retry_after("d") > 0


# --------------------------------------------------------------------------- sessions


async def test_logout(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    cookie = await log_in(client)
    csrf = await csrf_of_page(client, cookie)
    page = await (await client.get(PAGE, headers=with_session(cookie, **HTML))).text()
    assert f'action="{BASE}logout"' in page and f'name="csrf" value="{csrf}"' in page

    # the logout form needs its token
    refused = await client.post(f"{BASE}logout", headers=with_session(cookie))
    assert refused.status == 403
    assert (await client.get(f"{API}/jobs", headers=with_session(cookie))).status == 200

    resp = await client.post(
        f"{BASE}logout", data={"csrf": csrf}, headers=with_session(cookie), allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"{BASE}login"
    gone = set_cookies(resp)[SESSION_COOKIE]
    assert (gone.value, gone["max-age"], gone["path"]) == ("", "0", BASE)
    # the cookie a thief copied before is worthless now
    resp = await client.get(f"{API}/jobs", headers=with_session(cookie))
    assert resp.status == 401
    assert (await resp.json())["code"] == "UNAUTHORIZED"


async def test_pages_carry_the_csrf_token_only_for_sessions(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    by_key = await client.get(PAGE, headers={"X-Api-Key": KEY})
    assert by_key.status == 200
    html = await by_key.text()
    assert "csrf" not in html and "Log out" not in html
    cookie = await log_in(client)
    assert await csrf_of_page(client, cookie) == await csrf_of_page(client, cookie)
    other = await log_in(client)
    assert await csrf_of_page(client, other) != await csrf_of_page(client, cookie)


async def test_csrf_for_cookie_requests_that_change_state(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    cookie = await log_in(client)
    csrf = await csrf_of_page(client, cookie)
    job = f"{API}/jobs/job_1700000000000_abcdef"

    for method, url in [("DELETE", job), ("POST", f"{API}/jobs"), ("PUT", f"{job}/position")]:
        resp = await client.request(method, url, headers=with_session(cookie))
        assert resp.status == 403, (method, url)
        body = await resp.json()
        assert body["code"] == "FORBIDDEN"
        assert "CSRF" in body["error"]
        wrong = await client.request(
            method, url, headers=with_session(cookie, **{"X-CSRF-Token": csrf[:-1] + "x"})
        )
        assert wrong.status == 403
        # with the token the request reaches the API (which then has its own say)
        ok = await client.request(
            method, url, headers=with_session(cookie, **{"X-CSRF-Token": csrf})
        )
        assert ok.status in (400, 404), (method, url, await ok.text())
        # programs with an API key need no token
        keyed = await client.request(method, url, headers={"X-Api-Key": KEY})
        assert keyed.status in (400, 404)

    # reading needs no token
    assert (await client.get(f"{API}/jobs", headers=with_session(cookie))).status == 200
    # a form field works as well as the header
    resp = await client.post(
        f"{API}/jobs", data={"csrf": csrf, "nzb_url": "x"}, headers=with_session(cookie)
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "INVALID_INPUT"


async def test_sessions_survive_a_restart(start: Start, tmp_path: Path, password_hash: str) -> None:
    settings = settings_for(tmp_path, password_hash)
    first = await start(settings)
    cookie = await log_in(first)
    await first.close()
    second = await start(settings)
    assert (await second.get(f"{API}/jobs", headers=with_session(cookie))).status == 200
    # a different secret (e.g. a new session_secret) signs differently: logged out
    raw = {
        "server": {"data_dir": str(tmp_path / "data"), "base_path": BASE},
        "auth": {"password_hash": password_hash, "session_secret": "s" * 40},
    }
    third = await start(parse_config(raw, base_dir=tmp_path, env={}))
    assert (await third.get(f"{API}/jobs", headers=with_session(cookie))).status == 401


async def test_sessions_slide_and_expire(start: Start, tmp_path: Path, password_hash: str) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    cookie = await log_in(client)
    assert client.app is not None
    sessions = client.app[SESSIONS]
    real = time.time()
    offset = [0.0]
    sessions.clock = lambda: real + offset[0]

    def get(url: str = f"{API}/jobs") -> Awaitable[aiohttp.ClientResponse]:
        return client.get(url, headers=with_session(cookie, **HTML), allow_redirects=False)

    fresh = await get()
    assert fresh.status == 200
    assert SESSION_COOKIE not in set_cookies(fresh)  # nothing to renew yet

    offset[0] = 2 * DAY  # used again after two days: thirty more days from now
    renewed = await get()
    assert renewed.status == 200
    again = set_cookies(renewed)[SESSION_COOKIE]
    assert again.value == cookie
    assert again["max-age"] == str(30 * 24 * 3600)
    assert again["httponly"] and again["samesite"] == "Lax" and again["path"] == BASE

    offset[0] = 31 * DAY  # past the first expiry, within the renewed one
    assert (await get()).status == 200

    offset[0] = 62 * DAY  # a month of silence later (renewed at day 31): gone
    expired = await get()
    assert expired.status == 401
    page = await get(PAGE)
    assert page.status == 303
    assert page.headers["Location"] == f"{BASE}login?next={BASE}test-page"


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: "not-a-session",
        lambda c: c.rsplit(".", 1)[0],  # the id without its signature
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature altered
        lambda c: "x" + c,  # id altered
        lambda c: c + "." + c,
        lambda c: "",
    ],
)
async def test_forged_cookies_are_refused(
    start: Start, tmp_path: Path, password_hash: str, forge: Callable[[str], str]
) -> None:
    client = await start(settings_for(tmp_path, password_hash))
    cookie = forge(await log_in(client))
    resp = await client.get(f"{API}/jobs", headers=with_session(cookie))
    assert resp.status == 401
    assert (await resp.json())["code"] == "UNAUTHORIZED"
    page = await client.get(PAGE, headers=with_session(cookie, **HTML), allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"].startswith(f"{BASE}login?next=")


async def test_wrong_api_keys_get_401_even_on_pages(start: Start, tmp_path: Path) -> None:
    client = await start(settings_for(tmp_path))
    for headers in [{"X-Api-Key": "wrong"}, {"X-Api-Key": KEY + "x"}, {"X-Api-Key": KEY[:-1]}]:
        resp = await client.get(PAGE, headers=headers, allow_redirects=False)
        assert resp.status == 401, headers
        assert (await resp.json())["code"] == "UNAUTHORIZED"


def test_url_helper_finds_routes_of_sub_apps_under_the_base_path(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path))
    api = web.Application()
    api.router.add_get("/demo/{id}", page_handler, name="demo")
    app.add_subapp(f"{BASE}extra", api)
    env = aiohttp_jinja2.get_env(app)
    template = env.from_string(
        "{{ url('demo', id=5) }} {{ url('login', query_={'next': '/a b'}) }}"
        " {{ url('static', filename='matinee.css') }}"
    )
    demo, login, css = template.render().split()
    assert demo == f"{BASE}extra/demo/5"
    assert login == f"{BASE}login?next=/a+b"
    assert css.startswith(f"{BASE}static/matinee.css?v=")
    with pytest.raises(LookupError, match="no route is named 'nope'"):
        env.from_string("{{ url('nope') }}").render()


def test_ipv6_clients_are_counted_by_their_64() -> None:
    limiter = LoginLimiter(3, 60, clock=lambda: 0.0)
    # An attacker owns a /64 and picks a new address for every guess: still one client.
    for i in range(3):
        limiter.failed(f"2001:db8:1:2::{i + 1:x}")
    assert limiter.retry_after("2001:db8:1:2:ffff::9") > 0
    assert limiter.retry_after("2001:db8:1:3::1") == 0  # the next /64 is somebody else
    # IPv4 stays per address, also when it comes IPv4-mapped.
    for _ in range(3):
        limiter.failed("::ffff:192.0.2.7")
    assert limiter.retry_after("192.0.2.7") > 0 and limiter.retry_after("192.0.2.8") == 0


async def test_many_addresses_cannot_guess_without_limit_but_the_household_gets_in(
    start: Start, tmp_path: Path, password_hash: str
) -> None:
    # Behind a proxy that is trusted but (wrongly) lets clients choose their address: every
    # guess comes "from" a new address, so no client's own limit ever applies.
    client = await start(settings_for(tmp_path, password_hash, trusted=["127.0.0.1"]))
    limiter = client.app[LOGIN_LIMITER]
    limiter.global_budget, limiter.backoff, limiter.max_queue = 10, 0.2, 1.0

    async def attempt(address: str, password: str) -> int:
        resp = await post_login(client, password, headers={"X-Forwarded-For": address})
        resp.release()
        return resp.status

    spent = [await attempt(f"203.0.113.{i}", "guess") for i in range(11)]
    assert spent == [401] * 11  # the budget for everybody, used up
    # Now twenty guesses at once from twenty new addresses: checked one at a time, 0.2 s
    # apart, and only as many as fit in a second of waiting; the others are turned away.
    started = asyncio.get_running_loop().time()
    burst = await asyncio.gather(*(attempt(f"198.51.100.{i}", "guess") for i in range(20)))
    took = asyncio.get_running_loop().time() - started
    checked = burst.count(401)
    assert burst.count(429) == 20 - checked and 1 <= checked <= 6, burst
    assert took >= checked * 0.2 * 0.9, (took, checked)  # spaced, not all at once
    # A household member on another address, with the right password, still gets in.
    assert await attempt("192.0.2.50", PASSWORD) == 303
