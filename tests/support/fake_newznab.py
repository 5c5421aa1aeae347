"""A scriptable newznab indexer on loopback, for tests of Matinee's indexer client and routes.

It answers ``GET /api`` the way NZBgeek does (RSS 2.0 with ``newznab:attr`` elements, an
``atom:link`` echoing the query with the key, and NZB links that embed the caller's
``apikey``), from its own literal catalogue below: three films in several qualities each.
Every fault is a plain attribute a test may set before or while the server runs.

    async def test_search(fake_newznab):
        geek = await fake_newznab(name="geek", apikey="k" * 32)
        slug = await fake_newznab(name="slug", imdb_search=False, delay=0.5)
        configs = [geek.config(), slug.config(priority=1)]
        ...
        geek.force_error = 500                    # every request: "Request limit reached"
        geek.force_error_for = frozenset({"movie", "search"})
        assert geek.count("movie") == 1

The API (``/api`` with ``t=``):

* ``t=caps`` -- server, limits (``max=100``), retention, the searching functions and the
  standard category tree (2000 Movies with 2010-2070, 5000 TV, 7000 Other).
  ``movie-search`` lists ``supportedParams="q,imdbid"`` when ``imdb_search`` is True,
  ``"q"`` when False, and no ``supportedParams`` at all when None (as Radarr's minimal
  caps capture does).
* ``t=movie&imdbid=`` -- releases whose imdb id matches (digits, with or without ``tt``).
  When ``imdb_search`` is False an ``imdbid`` is refused with error 201, as indexers without
  id search do. Without ``imdbid`` but with ``q`` it searches titles like ``t=search``.
* ``t=search&q=`` -- releases whose title contains every word of ``q`` (case-insensitive,
  punctuation ignored), so ``q=Dune 2021`` finds ``Dune.2021.1080p...``.
* ``cat=`` filters by category (a parent such as 2000 covers its subcategories);
  ``limit`` and ``offset`` page; ``extended`` is accepted (all attributes are always sent).
* ``t=get&id=<guid>`` -- the NZB bytes a test put in ``nzbs[guid]`` (see :meth:`add_nzb`),
  as ``application/x-nzb`` with ``Content-Disposition: attachment; filename="<title>.nzb"``;
  an unknown id is error 300 "No such item".
* anything else: error 202 "No such function"; no ``t``: error 200 "Missing parameter".

Knobs (constructor keywords, also plain attributes):

* ``name`` -- the channel title; also salts the guids, so two instances serving the same
  release give it different guids (as two real indexers do) with the same title and size.
* ``apikey`` -- when set, every request must carry it (error 100 "Incorrect user
  credentials" otherwise); None accepts anything.
* ``imdb_search`` -- True / False / None, see ``t=caps`` above.
* ``releases`` -- the catalogue (default :data:`CATALOGUE`).
* ``force_error`` / ``force_error_description`` -- answer every request whose ``t`` is in
  ``force_error_for`` (default: all) with that newznab error document (HTTP 200), e.g. 500
  "Request limit reached", 501, 201, 100. The description defaults to the spec's text.
* ``http_status`` / ``retry_after`` / ``http_body`` -- answer those requests with that HTTP
  status instead (e.g. 429 with ``Retry-After: 120``), also limited by ``force_error_for``.
* ``delay`` -- seconds to wait before answering any request.
* ``api_max`` / ``grab_max`` -- when either is set, search replies carry
  ``<newznab:apilimits apicurrent apimax grabcurrent grabmax>``; past ``api_max`` searches
  (or past ``grab_max`` grabs) answer 500 "Request limit reached" (501 for grabs).
* ``raw_replies`` -- ``{t: bytes}`` served verbatim for that function (for replaying
  captured documents after the key check; forced faults still come first).

Observations: ``requests`` (each a :class:`FakeRequest` with the query, ``apikey`` masked as
``***``), :meth:`count`, ``url`` (base URL, what ``[[indexers]] url`` holds), :meth:`config`
(an :class:`IndexerConfig` for this server), :meth:`guid_for` and :meth:`release`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import pytest
from aiohttp import web

from server.config.settings import IndexerConfig
from tests.support.servers import server_factory

GB = 1_000_000_000
MASKED = "***"
SEARCH_FUNCTIONS = frozenset({"search", "movie"})
ALL_FUNCTIONS = frozenset({"caps", "search", "movie", "get"})

# The spec's wording, used when a test forces a code without a description.
ERROR_TEXT: Mapping[int, str] = {
    100: "Incorrect user credentials",
    101: "Account suspended",
    102: "Insufficient privileges/not authorized",
    200: "Missing parameter",
    201: "Incorrect parameter",
    202: "No such function",
    203: "Function not available",
    300: "No such item",
    500: "Request limit reached",
    501: "Download limit reached",
    900: "Unknown error",
}


@dataclass(frozen=True)
class FakeRelease:
    title: str
    size: int
    #: The newznab parent first, then the subcategory, as indexers list them.
    categories: tuple[int, ...]
    #: Dates as RFC 2822, exactly as they appear in the XML.
    usenetdate: str
    #: IMDb id digits as indexers send them ("1160419"); None when the indexer has not matched
    #: the post to a film.
    imdb: str | None
    grabs: int | None = None
    #: 0 none, 1 passworded, 2 contains a passworded archive.
    password: int = 0
    group: str = "alt.binaries.moovee"


# Three films, several qualities each; sizes and dates are plausible for the releases named.
CATALOGUE: tuple[FakeRelease, ...] = (
    # Dune (2021), tt1160419, 155 min.
    FakeRelease(
        "Dune.2021.2160p.WEB-DL.DDP5.1.Atmos.DV.HDR.H.265-FLUX",
        int(24.12 * GB), (2000, 2045), "Fri, 22 Oct 2021 04:17:33 +0000", "1160419", 4213,
    ),
    FakeRelease(
        "Dune.2021.1080p.BluRay.x264-SPARKS",
        int(14.51 * GB), (2000, 2040), "Tue, 11 Jan 2022 19:02:10 +0000", "1160419", 2877,
        group="alt.binaries.hdtv.x264",
    ),
    FakeRelease(
        "Dune.2021.1080p.WEB-DL.DDP5.1.Atmos.H.264-FLUX",
        int(9.83 * GB), (2000, 2040), "Fri, 22 Oct 2021 03:58:41 +0000", "1160419", 6120,
    ),
    FakeRelease(
        "Dune.2021.720p.WEB-DL.DDP5.1.H.264-EVO",
        int(4.21 * GB), (2000, 2040), "Sat, 23 Oct 2021 11:31:05 +0000", "1160419", 1544,
    ),
    FakeRelease(
        "Dune.2021.HDCAM.x264-NOGRP",
        int(1.62 * GB), (2000, 2030), "Sun, 17 Oct 2021 08:12:55 +0000", "1160419", 96,
        group="alt.binaries.movies",
    ),
    # Dune (1984), tt0087182: a title search for "Dune" alone finds it too.
    FakeRelease(
        "Dune.1984.1080p.BluRay.x264-AMIABLE",
        int(10.93 * GB), (2000, 2040), "Wed, 18 May 2011 21:40:12 +0000", "0087182", 812,
        group="alt.binaries.hdtv.x264",
    ),
    # Arrival (2016), tt2543164, 116 min.
    FakeRelease(
        "Arrival.2016.1080p.BluRay.x264-SPARKS",
        int(8.74 * GB), (2000, 2040), "Sat, 04 Feb 2017 02:14:09 +0000", "2543164", 3390,
        group="alt.binaries.hdtv.x264",
    ),
    FakeRelease(
        "Arrival.2016.720p.BluRay.x264-SPARKS",
        int(4.37 * GB), (2000, 2040), "Sat, 04 Feb 2017 01:56:47 +0000", "2543164", 1410,
        group="alt.binaries.hdtv.x264",
    ),
    FakeRelease(
        "Arrival.2016.2160p.UHD.BluRay.REMUX.HDR.HEVC.Atmos-EPSiLON",
        int(58.02 * GB), (2000, 2045), "Mon, 20 Feb 2017 16:03:22 +0000", "2543164", 402,
    ),
    FakeRelease(
        "Arrival.2016.1080p.WEBRip.x264-RARBG",
        int(2.03 * GB), (2000, 2040), "Fri, 27 Jan 2017 09:45:30 +0000", "2543164", 51,
        password=1,
    ),
    # Knives Out (2019), tt8946378, 130 min.
    FakeRelease(
        "Knives.Out.2019.1080p.BluRay.x264-SPARKS",
        int(10.94 * GB), (2000, 2040), "Tue, 18 Feb 2020 23:11:02 +0000", "8946378", 2650,
        group="alt.binaries.hdtv.x264",
    ),
    FakeRelease(
        "Knives.Out.2019.720p.BluRay.x264-SPARKS",
        int(5.47 * GB), (2000, 2040), "Tue, 18 Feb 2020 22:47:19 +0000", "8946378", 930,
        group="alt.binaries.hdtv.x264",
    ),
    FakeRelease(
        "Knives.Out.2019.2160p.UHD.BluRay.x265.10bit.HDR.TrueHD.7.1.Atmos-SWTYBLZ",
        int(21.36 * GB), (2000, 2045), "Thu, 27 Feb 2020 06:30:51 +0000", "8946378", 377,
    ),
    FakeRelease(
        "Knives.Out.2019.1080p.WEB-DL.DD5.1.H264-CMRG",
        int(6.11 * GB), (2000, 2040), "Tue, 04 Feb 2020 08:05:44 +0000", None, 1877,
    ),
)  # fmt: skip

# -- the documents, as literal XML ---------------------------------------------------------

CAPS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<caps>
  <server version="1.0" title={title} strapline="A fake indexer for Matinee's tests"
          email="admin@matinee.test" url="{base}/" image="{base}/covers/logo.png"/>
  <limits max="100" default="100"/>
  <retention days="5500"/>
  <registration available="no" open="no"/>
  <searching>
    <search available="yes" supportedParams="q"/>
    <tv-search available="yes" supportedParams="q,tvdbid,tvmazeid,season,ep"/>
    <movie-search available="yes"{movie_params}/>
    <audio-search available="no" supportedParams="q"/>
    <book-search available="no" supportedParams="q"/>
  </searching>
  <categories>
    <category id="2000" name="Movies">
      <subcat id="2010" name="Foreign"/>
      <subcat id="2020" name="Other"/>
      <subcat id="2030" name="SD"/>
      <subcat id="2040" name="HD"/>
      <subcat id="2045" name="UHD"/>
      <subcat id="2050" name="BluRay"/>
      <subcat id="2060" name="3D"/>
      <subcat id="2070" name="DVD"/>
    </category>
    <category id="5000" name="TV">
      <subcat id="5030" name="SD"/>
      <subcat id="5040" name="HD"/>
      <subcat id="5045" name="UHD"/>
    </category>
    <category id="7000" name="Other">
      <subcat id="7010" name="Misc"/>
    </category>
  </categories>
</caps>
"""

RSS_XML = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" \
xmlns:newznab="http://www.newznab.com/DTD/2010/feeds/attributes/">
    <channel>
        <atom:link href={self_link} rel="self" type="application/rss+xml" />
        <title>{title}</title>
        <description>{title} API</description>
        <link>{base}/</link>
        <language>en-gb</language>
        <webMaster>admin@matinee.test ({title})</webMaster>
        <category></category>
        <newznab:response offset="{offset}" total="{total}" />{apilimits}
{items}    </channel>
</rss>
"""

APILIMITS_XML = """
        <newznab:apilimits apicurrent="{api_current}" apimax="{api_max}" \
grabcurrent="{grab_current}" grabmax="{grab_max}" />"""

ITEM_XML = """        <item>
            <title>{title}</title>
            <guid isPermaLink="true">{base}/details/{guid}</guid>
            <link>{nzb_link}</link>
            <comments>{base}/details/{guid}#comments</comments>
            <pubDate>{pub_date}</pubDate>
            <category>{category_name}</category>
            <description>{title}</description>
            <enclosure url={nzb_link_attr} length="{size}" type="application/x-nzb" />
{categories}            <newznab:attr name="size" value="{size}" />
            <newznab:attr name="guid" value="{guid}" />
{imdb}{grabs}            <newznab:attr name="usenetdate" value="{usenetdate}" />
            <newznab:attr name="group" value="{group}" />
            <newznab:attr name="password" value="{password}" />
        </item>
"""

ERROR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<error code="{code}" description={description}/>
"""

_CATEGORY_NAMES = {2030: "Movies > SD", 2040: "Movies > HD", 2045: "Movies > UHD"}
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class FakeRequest:
    """One request as the server saw it; ``apikey`` is replaced by ``***``."""

    t: str | None
    params: dict[str, str]
    #: Whether the request carried the expected key (always True when none is required).
    key_ok: bool


class FakeNewznab:
    """One fake indexer. Start it with the ``fake_newznab`` fixture, or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        name: str = "FakeGeek",
        apikey: str | None = None,
        imdb_search: bool | None = True,
        releases: Iterable[FakeRelease] = CATALOGUE,
        force_error: int | None = None,
        force_error_description: str | None = None,
        force_error_for: frozenset[str] = ALL_FUNCTIONS,
        http_status: int | None = None,
        retry_after: str | None = None,
        http_body: bytes = b"Too Many Requests",
        delay: float = 0.0,
        api_max: int | None = None,
        grab_max: int | None = None,
        raw_replies: Mapping[str, bytes] | None = None,
    ) -> None:
        self.name = name
        self.apikey = apikey
        self.imdb_search = imdb_search
        self.releases = list(releases)
        self.force_error = force_error
        self.force_error_description = force_error_description
        self.force_error_for = force_error_for
        self.http_status = http_status
        self.retry_after = retry_after
        self.http_body = http_body
        self.delay = delay
        self.api_max = api_max
        self.grab_max = grab_max
        self.raw_replies: dict[str, bytes] = dict(raw_replies or {})
        self.nzbs: dict[str, tuple[bytes, str]] = {}
        self.requests: list[FakeRequest] = []
        self.api_current = 0
        self.grab_current = 0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api", self._handle)
        # No access log: it would print every query, apikey included.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()  # cut short any delayed answer, so teardown does not wait for it
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers for tests -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API root, as ``[[indexers]] url`` holds it (the server answers ``url + /api``)."""
        return f"http://127.0.0.1:{self.port}"

    def config(self, **overrides: Any) -> IndexerConfig:
        """An IndexerConfig for this server: its name, url and required key."""
        values: dict[str, Any] = {"name": self.name, "url": self.url, "api_key": self.apikey}
        values.update(overrides)
        return IndexerConfig(**values)

    def guid_for(self, title: str) -> str:
        return hashlib.sha1(f"{self.name}\n{title}".encode()).hexdigest()

    def release(self, title: str) -> FakeRelease:
        return next(r for r in self.releases if r.title == title)

    def add_nzb(self, title: str, data: bytes) -> str:
        """Serve ``data`` for the catalogue release ``title`` on ``t=get``; returns its guid."""
        guid = self.guid_for(title)
        self.nzbs[guid] = (data, f"{title}.nzb")
        return guid

    def count(self, t: str | None = None) -> int:
        """Requests seen, all of them or those for one function."""
        return sum(1 for r in self.requests if t is None or r.t == t)

    # -- serving -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        t = params.get("t")
        key_ok = self.apikey is None or params.get("apikey") == self.apikey
        if "apikey" in params:
            params["apikey"] = MASKED
        self.requests.append(FakeRequest(t, params, key_ok))
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay)

        if t in self.force_error_for or (t is None and self.force_error_for == ALL_FUNCTIONS):
            if self.http_status is not None:
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return web.Response(status=self.http_status, body=self.http_body, headers=headers)
            if self.force_error is not None:
                return self._error(self.force_error, self.force_error_description)
        if not key_ok:
            return self._error(100)
        if t is not None and t in self.raw_replies:
            return web.Response(body=self.raw_replies[t], content_type="application/xml")
        if t is None:
            return self._error(200)
        if t == "caps":
            return self._caps()
        if t in SEARCH_FUNCTIONS:
            return self._search(t, request)
        if t == "get":
            return self._get(request.query.get("id", ""))
        return self._error(202)

    def _error(self, code: int, description: str | None = None) -> web.Response:
        text = description if description is not None else ERROR_TEXT.get(code, "Unknown error")
        body = ERROR_XML.format(code=code, description=quoteattr(text))
        return web.Response(text=body, content_type="application/xml")

    def _caps(self) -> web.Response:
        if self.imdb_search is None:
            movie_params = ""
        else:
            movie_params = ' supportedParams="{}"'.format("q,imdbid" if self.imdb_search else "q")
        body = CAPS_XML.format(title=quoteattr(self.name), base=self.url, movie_params=movie_params)
        return web.Response(text=body, content_type="application/xml")

    def _search(self, t: str, request: web.Request) -> web.Response:
        query = request.query
        imdbid = query.get("imdbid")
        if imdbid and (t != "movie" or self.imdb_search is False):
            return self._error(201)
        if self.api_max is not None and self.api_current >= self.api_max:
            return self._error(500)
        self.api_current += 1

        found = self.releases
        if imdbid:
            wanted = imdbid.lower().removeprefix("tt")
            if not wanted.isdigit():
                return self._error(201)
            found = [r for r in found if r.imdb is not None and int(r.imdb) == int(wanted)]
        elif query.get("q"):
            words = set(_WORDS.findall(query["q"].lower()))
            found = [r for r in found if words <= set(_WORDS.findall(r.title.lower()))]
        if query.get("cat"):
            try:
                cats = {int(c) for c in query["cat"].split(",") if c.strip()}
            except ValueError:
                return self._error(201)
            found = [r for r in found if any(_in_category(c, cats) for c in r.categories)]
        try:
            offset = int(query.get("offset", "0"))
            limit = min(int(query.get("limit", "100")), 100)
        except ValueError:
            return self._error(201)
        page = found[offset : offset + limit]

        apikey = request.query.get("apikey", "")
        apilimits = ""
        if self.api_max is not None or self.grab_max is not None:
            apilimits = APILIMITS_XML.format(
                api_current=self.api_current,
                api_max=self.api_max if self.api_max is not None else "",
                grab_current=self.grab_current,
                grab_max=self.grab_max if self.grab_max is not None else "",
            )
        body = RSS_XML.format(
            self_link=quoteattr(f"{self.url}/api?{urlencode(dict(request.query))}"),
            title=escape(self.name),
            base=self.url,
            offset=offset,
            total=len(found),
            apilimits=apilimits,
            items="".join(self._item(r, apikey) for r in page),
        )
        return web.Response(text=body, content_type="application/rss+xml")

    def _item(self, release: FakeRelease, apikey: str) -> str:
        guid = self.guid_for(release.title)
        # Like NZBgeek: the NZB link carries the caller's own key.
        nzb_link = f"{self.url}/api?" + urlencode({"t": "get", "id": guid, "apikey": apikey})
        attr = '            <newznab:attr name="{}" value="{}" />\n'
        return ITEM_XML.format(
            title=escape(release.title),
            base=self.url,
            guid=guid,
            nzb_link=escape(nzb_link),
            nzb_link_attr=quoteattr(nzb_link),
            pub_date=release.usenetdate,
            category_name=_CATEGORY_NAMES.get(release.categories[-1], "Movies"),
            size=release.size,
            categories="".join(attr.format("category", c) for c in release.categories),
            imdb=attr.format("imdb", release.imdb) if release.imdb else "",
            grabs=attr.format("grabs", release.grabs) if release.grabs is not None else "",
            usenetdate=release.usenetdate,
            group=escape(release.group),
            password=release.password,
        )

    def _get(self, guid: str) -> web.Response:
        entry = self.nzbs.get(guid)
        if entry is None:
            return self._error(300)
        if self.grab_max is not None and self.grab_current >= self.grab_max:
            return self._error(501)
        self.grab_current += 1
        data, filename = entry
        return web.Response(
            body=data,
            content_type="application/x-nzb",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


def _in_category(item_category: int, wanted: set[int]) -> bool:
    return item_category in wanted or (item_category // 1000) * 1000 in wanted


FakeNewznabFactory = Callable[..., Awaitable[FakeNewznab]]


@pytest.fixture
async def fake_newznab() -> AsyncIterator[FakeNewznabFactory]:
    """``srv = await fake_newznab(name=..., **knobs)``: started now, stopped at teardown."""
    async with server_factory(FakeNewznab) as start:
        yield start
