"""The whole site for page tests: the app under a base path with every fake behind it, a
logged-in session, and a small HTML parser that is enough to check a page's contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config.load import parse_config
from server.config.settings import Settings
from server.http.passwords import hash_password
from server.http.sessions import SESSION_COOKIE
from server.keys import SESSIONS, STORE
from server.store.jobs import Job, new_job_id
from tests.support.app import usenet_of
from tests.support.fake_newznab import FakeNewznab, FakeNewznabFactory
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.fake_tmdb import TOKEN, FakeTmdb, FakeTmdbFactory
from tests.support.jobs import job_in
from tests.support.world import MATRIX_RELEASES

Client = TestClient[web.Request, web.Application]
#: The household's password on the test site (hashed cheaply: tests log in by session).
SITE_PASSWORD = "site password 123"
SITE_PASSWORD_HASH = hash_password(SITE_PASSWORD, n=2**4)
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
KEY = "pages-test-api-key-0123"


# --------------------------------------------------------------------------- parsing


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    parents: tuple[Element, ...] = ()

    @property
    def id(self) -> str | None:
        return self.attrs.get("id")

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def inside(self, tag: str, **attrs: str) -> bool:
        return any(
            p.tag == tag and all(p.attrs.get(k) == v for k, v in attrs.items())
            for p in self.parents
        )


VOID = {"meta", "link", "img", "input", "br", "hr", "source", "track", "wbr", "area", "col"}


class Page(HTMLParser):
    """Every element with its attributes, text and ancestors; enough to check a contract."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, parents=tuple(self._open))
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements by tag and attributes; ``class_`` matches one class."""
        wanted_class = attrs.pop("class_", None)
        return [
            e
            for e in self.elements
            if not e.inside("template")  # inert until a script clones it
            and (tag is None or e.tag == tag)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            and (wanted_class is None or wanted_class in e.classes)
        ]

    def one(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"{tag} {attrs}: {len(found)} found"
        return found[0]

    def by_id(self, element_id: str) -> Element:
        return self.one(id=element_id)

    def urls(self) -> list[str]:
        found = []
        for e in self.elements:
            for name in ("href", "src", "action", "data-hls", "data-posters", "data-no-poster"):
                if name in e.attrs:
                    found.append(e.attrs[name])
        return found


# --------------------------------------------------------------------------- the site


class Site:
    """The app with every fake behind it, and a logged-in session."""

    def __init__(
        self, client: Client, base: str, tmdb: FakeTmdb, geek: FakeNewznab, nntp: FakeNntpServer
    ) -> None:
        self.client, self.base, self.tmdb, self.geek, self.nntp = client, base, tmdb, geek, nntp
        self.cookie = ""
        self.csrf = ""

    @property
    def app(self) -> web.Application:
        assert self.client.app is not None
        return self.client.app

    async def log_in(self) -> None:
        session = await self.app[SESSIONS].create()
        self.cookie, self.csrf = session.cookie, session.csrf

    def headers(self) -> dict[str, str]:
        return {**HTML, "Cookie": f"{SESSION_COOKIE}={self.cookie}"}

    async def get(self, path: str, status: int = 200) -> Page:
        resp = await self.client.get(f"{self.base}{path}", headers=self.headers())
        text = await resp.text()
        assert resp.status == status, f"{path}: {resp.status} {text[:500]}"
        assert resp.content_type == "text/html", path
        return Page(text)

    async def job(self, status: str = "queued", **fields: Any) -> Job:
        """A job row as the job runner would have left it (no runner moves it)."""
        job_id = new_job_id()
        values = {"mode": "auto", "source": "fetch", "dir": f"/nonexistent/{job_id}", **fields}
        return await job_in(self.app[STORE], status, job_id=job_id, **values)


def settings_for(
    tmp: Path,
    base: str,
    tmdb: FakeTmdb | None,
    geek: FakeNewznab | None,
    nntp: FakeNntpServer | None,
) -> Settings:
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp / "data"), "base_path": base},
        "auth": {"api_keys": [KEY], "password_hash": SITE_PASSWORD_HASH},
    }
    if tmdb is not None:
        raw["tmdb"] = {"token": TOKEN, "base_url": tmdb.url, "image_base_url": tmdb.image_url}
    else:  # nothing configured, and never the real TMDB
        raw["tmdb"] = {"base_url": "http://127.0.0.1:9/3", "image_base_url": "http://127.0.0.1:9"}
    if geek is not None:
        raw["indexers"] = [{"name": "geek", "url": geek.url, "api_key": "g" * 32}]
    if nntp is not None:
        raw["usenet"] = usenet_of(nntp)
    return parse_config(raw, base_dir=tmp, env={})


StartSite = Callable[..., Awaitable[Site]]


@pytest.fixture
async def start_site(
    fake_tmdb: FakeTmdbFactory,
    fake_newznab: FakeNewznabFactory,
    fake_nntp: FakeNntpFactory,
    tmp_path: Path,
) -> AsyncIterator[StartSite]:
    clients: list[Client] = []

    async def start(base: str = "/", *, services: bool = True) -> Site:
        tmdb = await fake_tmdb(token=TOKEN)
        geek = await fake_newznab(name="geek", apikey="g" * 32, releases=MATRIX_RELEASES)
        nntp = await fake_nntp()
        settings = settings_for(
            tmp_path / base.strip("/"),
            base,
            tmdb if services else None,
            geek if services else None,
            nntp if services else None,
        )
        client = TestClient(TestServer(create_app(settings)), cookie_jar=aiohttp.DummyCookieJar())
        await client.start_server()
        clients.append(client)
        site = Site(client, base, tmdb, geek, nntp)
        await site.log_in()
        return site

    yield start
    for client in clients:
        await client.close()


@pytest.fixture(params=["/", "/movies/"])
async def site(request: pytest.FixtureRequest, start_site: StartSite) -> Site:
    return await start_site(request.param)


def assert_under_base(page: Page, base: str) -> None:
    """Every local URL of the page starts with the base path."""
    for url in page.urls():
        if url.startswith(("http:", "https:", "data:", "#", "mailto:")):
            continue
        assert url.startswith(base), f"{url!r} is outside {base!r}"
