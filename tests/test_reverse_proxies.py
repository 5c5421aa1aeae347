"""Matinee behind the reverse proxies it ships configurations for (contrib/): Debian's nginx
and Caddy, each running the shipped file, under the sub-path /matinee/.

What a household relies on, performed through the real proxy: a client cannot choose the
address Matinee counts its failed logins under (spoofed X-Forwarded-For), each real client
has its own login limit, a client cannot claim https to get Secure cookies over http, and
the pages, the event stream (unbuffered), media ranges and HLS all work through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config.load import parse_config
from server.http.passwords import hash_password
from server.http.sessions import SESSION_COOKIE
from server.ui.login import LOGIN_CSRF_COOKIE
from tests.support.app import KEY
from tests.support.capabilities import CHROMIUM_JSON
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.media import ReleaseClips, codecs_of
from tests.support.ports import free_port
from tests.support.programs import needs
from tests.support.proxies import reverse_proxy
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

BASE = "/matinee/"
API = f"{BASE}api/movies-on-demand"
PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

pytestmark = needs("nginx", "caddy")


@dataclass
class Proxied:
    url: str  # the proxy's, with the sub-path
    nntp: FakeNntpServer

    def client(self, address: str = "127.0.0.2") -> aiohttp.ClientSession:
        """A client on its own loopback address, as another machine of the LAN would be."""
        connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


@pytest.fixture(params=["nginx", "caddy"])
async def proxied(
    request: pytest.FixtureRequest, tmp_path: Path, fake_nntp: FakeNntpFactory
) -> AsyncIterator[Proxied]:
    nntp = await fake_nntp()
    encoded = await asyncio.to_thread(hash_password, PASSWORD)
    settings = parse_config(
        {
            "server": {
                "data_dir": str(tmp_path / "data"),
                "base_path": BASE,
                "trusted_proxies": ["127.0.0.1"],
            },
            "auth": {"api_keys": [KEY], "password_hash": encoded},
            "tmdb": {"base_url": "http://127.0.0.1:9/3", "image_base_url": "http://127.0.0.1:9"},
            "usenet": {
                "servers": [
                    {"name": "fake", "host": nntp.host, "port": nntp.port, "tls": False,
                     "connections": 2, "timeout": 5}
                ]
            },
        },
        base_dir=tmp_path,
        env={},
    )  # fmt: skip
    upstream = free_port()
    server = TestServer(create_app(settings), host="127.0.0.1", port=upstream)
    await server.start_server()
    try:
        async with reverse_proxy(request.param, tmp_path / request.param, upstream) as port:
            yield Proxied(f"http://127.0.0.1:{port}", nntp)
    finally:
        await server.close()


async def log_in(
    http: aiohttp.ClientSession, base: str, password: str, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    """The login page and its form, as a browser submits them."""
    extra = headers or {}
    async with http.get(f"{base}{BASE}login", headers={**HTML, **extra}) as page:
        assert page.status == 200, await page.text()
        html = await page.text()
        token = page.cookies[LOGIN_CSRF_COOKIE].value
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return await http.post(
        f"{base}{BASE}login",
        data={"password": password, "csrf": match[1]},
        headers={**HTML, "Cookie": f"{LOGIN_CSRF_COOKIE}={token}", **extra},
        allow_redirects=False,
    )


async def test_a_client_cannot_choose_the_address_its_guesses_count_against(
    proxied: Proxied,
) -> None:
    async with proxied.client("127.0.0.2") as guesser:
        statuses = []
        for i in range(7):
            spoofed = {"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}"}
            resp = await log_in(guesser, proxied.url, "wrong guess", spoofed)
            statuses.append(resp.status)
            resp.release()
    # Five wrong passwords from one real client, then "try again later" whatever it claims.
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429], statuses
    # Another machine behind the same proxy is another client: it logs in.
    async with proxied.client("127.0.0.3") as household:
        resp = await log_in(household, proxied.url, PASSWORD)
        assert resp.status == 303
        assert SESSION_COOKIE in resp.cookies


async def test_claiming_https_does_not_make_cookies_secure_over_http(proxied: Proxied) -> None:
    async with proxied.client() as http:
        resp = await log_in(http, proxied.url, PASSWORD, {"X-Forwarded-Proto": "https"})
        assert resp.status == 303
        cookie = resp.cookies[SESSION_COOKIE]
        assert not cookie["secure"], "a client's X-Forwarded-Proto reached Matinee"
        assert cookie["path"] == BASE and cookie["httponly"]


async def test_pages_events_and_media_ranges_through_the_proxy(proxied: Proxied) -> None:
    data = os.urandom(1_500_000)
    arts = articles_for_bytes(data, "Movie.2020.mkv", part_size=50_000)
    proxied.nntp.add(arts)
    proxied.nntp.bytes_per_second = 500_000  # about three seconds: events while it runs
    nzb = build_nzb([NzbEntry.from_articles(arts)])
    async with proxied.client() as http:
        resp = await log_in(http, proxied.url, PASSWORD)
        session = {"Cookie": f"{SESSION_COOKIE}={resp.cookies[SESSION_COOKIE].value}"}
        async with http.get(f"{proxied.url}{BASE}", headers={**HTML, **session}) as home:
            assert home.status == 200
            page = await home.text()
        assert f'action="{BASE}search"' in page and f'href="{BASE}downloads"' in page
        # The Status page sees the proxy as trusted and naming the client.
        async with http.get(f"{proxied.url}{BASE}status", headers={**HTML, **session}) as st:
            status_page = await st.text()
        proxy_line = re.search(r'data-service="Reverse proxy" data-state="(\w+)"', status_page)
        assert proxy_line is not None and proxy_line[1] == "ok", status_page[-3000:]

        key = {"X-Api-Key": KEY}
        form = aiohttp.FormData()
        form.add_field("nzb", nzb, filename="Movie.2020.nzb")
        async with http.post(f"{proxied.url}{API}/jobs", data=form, headers=key) as created:
            assert created.status == 202, await created.text()
            job_id = (await created.json())["job_id"]

        # The event stream comes through as it is written, not when it ends.
        seen: list[dict[str, Any]] = []
        running_when_seen: list[str] = []
        async with http.get(f"{proxied.url}{API}/jobs/{job_id}/events", headers=key) as events:
            assert events.headers["Content-Type"].startswith("text/event-stream")
            async with asyncio.timeout(30):
                async for line in events.content:
                    if not line.startswith(b"data: "):
                        continue
                    seen.append(json.loads(line[6:]))
                    async with http.get(f"{proxied.url}{API}/jobs/{job_id}", headers=key) as now:
                        running_when_seen.append((await now.json())["status"])
                    if len(seen) == 3:
                        break
        # Three snapshots came while the download still ran: a buffering proxy would have
        # held them back until the stream ended with the job ready.
        assert "ready" not in running_when_seen, running_when_seen
        assert [s["job_id"] for s in seen] == [job_id] * 3

        # Media ranges (Range in, 206 and the right bytes out), from the URL /stream gives.
        async with asyncio.timeout(30):
            while True:
                async with http.get(f"{proxied.url}{API}/movies/{job_id}/stream", headers=key) as s:
                    if s.status == 200:
                        stream = await s.json()
                        break
                await asyncio.sleep(0.1)
        assert stream["url"].startswith(f"{BASE}media/")
        ranged = {"Range": "bytes=100000-100999"}
        async with http.get(f"{proxied.url}{stream['url']}", headers=ranged) as media:
            assert media.status == 206
            assert media.headers["Content-Range"] == f"bytes 100000-100999/{len(data)}"
            assert await media.read() == data[100_000:101_000]


async def test_a_trusted_proxy_without_forwarded_headers_is_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, start_app: Callable[..., Any]
) -> None:
    settings = parse_config(
        {
            "server": {"data_dir": str(tmp_path / "data"), "trusted_proxies": ["127.0.0.1"]},
            "auth": {"api_keys": [KEY]},
        },
        base_dir=tmp_path,
        env={},
    )
    client = await start_app(settings)
    caplog.set_level(logging.WARNING, logger="server.http.forwarded")
    for _ in range(3):
        resp = await client.get("/api/health")
        assert resp.status == 200
    warnings = [r for r in caplog.records if "sent no X-Forwarded-For" in r.getMessage()]
    assert len(warnings) == 1
    assert "contrib/" in warnings[0].getMessage()


async def test_hls_and_subtitles_through_the_proxy(
    proxied: Proxied, release_clips: ReleaseClips, tmp_path: Path
) -> None:
    """A film the browser cannot play as it is (AC3 sound): its HLS playlist, init segment,
    first segment and a WebVTT track come through the proxy with the token alone."""
    film = release_clips.path("h264-ac3-2srt.mkv")
    arts = await asyncio.to_thread(
        articles_for_bytes, film.read_bytes(), film.name, part_size=64 * 1024
    )
    proxied.nntp.add(arts)
    key = {"X-Api-Key": KEY}
    async with proxied.client() as http:
        form = aiohttp.FormData()
        form.add_field("nzb", build_nzb([NzbEntry.from_articles(arts)]), filename="Film.nzb")
        async with http.post(f"{proxied.url}{API}/jobs", data=form, headers=key) as created:
            job_id = (await created.json())["job_id"]
        async with asyncio.timeout(60):
            while True:
                async with http.get(f"{proxied.url}{API}/jobs/{job_id}", headers=key) as now:
                    job = await now.json()
                assert job["status"] != "error", job["error_message"]
                if job["status"] == "ready":
                    break
                await asyncio.sleep(0.1)
        params = {"capabilities": CHROMIUM_JSON}
        url = f"{proxied.url}{API}/movies/{job_id}/stream"
        async with http.get(url, params=params, headers=key) as s:
            stream = await s.json()
        assert stream["kind"] == "hls" and stream["url"].startswith(f"{BASE}hls/{job_id}/")
        token = stream["url"].split("?", 1)[1]
        folder = proxied.url + stream["url"].split("?", 1)[0].rsplit("/", 1)[0]

    async with proxied.client("127.0.0.4") as player:  # no key, no cookie: the token
        async with player.get(proxied.url + stream["url"]) as resp:
            assert resp.status == 200, await resp.text()
            assert "#EXT-X-ENDLIST" in await resp.text()
        async with player.get(f"{folder}/init.mp4?{token}") as resp:
            assert resp.status == 200
            init = await resp.read()
        async with player.get(f"{folder}/0.m4s?{token}") as resp:
            assert resp.status == 200
            first = await resp.read()
        codecs = await asyncio.to_thread(codecs_of, init + first, tmp_path / "segment.mp4")
        assert codecs == ["h264", "aac"]
        english = next(t for t in stream["subtitles"] if t["language"] == "eng")
        async with player.get(proxied.url + english["url"]) as resp:
            assert resp.status == 200
            assert (await resp.text()).startswith("WEBVTT")
