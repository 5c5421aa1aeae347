"""Choosing what to download for a movie: TMDB details, every indexer's releases, ranked.

Shared by the API (the releases table a person sees) and the job runner (auto mode picks
the best, and moves on to the next-best when a release turns out to be incomplete).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from server.discovery.indexers import Indexers
from server.discovery.releases.ranking import PREFERENCES, Preference, RankedRelease, rank
from server.discovery.tmdb import TmdbClient
from server.errors import InvalidInput
from server.keys import DISCOVERY, HTTP, SETTINGS, STORE
from transcode.capabilities import BrowserFamily, Capabilities


def preference_of(value: object) -> Preference:
    if value is None:
        return "1080p"
    for p in PREFERENCES:
        if value == p:
            return p
    raise InvalidInput("quality_preference must be one of 720p, 1080p, 4K")


@dataclass(frozen=True)
class ReleaseList:
    movie: dict[str, Any]
    releases: list[RankedRelease]
    errors: dict[str, str] = field(default_factory=dict)  # indexer -> why it did not answer


class ReleaseSource(Protocol):
    """What the job runner needs to pick and fetch releases on its own."""

    async def releases(
        self,
        movie_id: int,
        preference: Preference = "1080p",
        browser: Capabilities | BrowserFamily = "chrome",
    ) -> ReleaseList: ...

    async def nzb(self, release: RankedRelease) -> tuple[bytes, str | None]: ...


class Discovery:
    def __init__(self, tmdb: TmdbClient, indexers: Indexers) -> None:
        self.tmdb = tmdb
        self.indexers = indexers

    async def releases(
        self,
        movie_id: int,
        preference: Preference = "1080p",
        browser: Capabilities | BrowserFamily = "chrome",
    ) -> ReleaseList:
        """Every indexer's releases for the movie, ranked for streaming to ``browser`` (what
        it measured it plays; the job runner, which has no browser, ranks for Chrome)."""
        movie = await self.tmdb.movie(movie_id)
        year = movie.get("year")
        outcome = await self.indexers.search_movie(
            imdb_id=movie.get("imdb_id") or None,
            title=str(movie.get("title") or ""),
            year=year if isinstance(year, int) else None,
        )
        runtime = movie.get("runtime")
        ranked = rank(
            outcome.items,
            runtime_minutes=runtime if isinstance(runtime, int) and runtime > 0 else None,
            preference=preference,
            now=dt.datetime.now(dt.UTC),
            indexer_priority=self.indexers.priorities(),
            browser=browser,
        )
        return ReleaseList(movie=movie, releases=ranked, errors=dict(outcome.errors))

    async def nzb(self, release: RankedRelease) -> tuple[bytes, str | None]:
        return await self.indexers.fetch_nzb(release.link)


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(headers={"User-Agent": "Matinee"}) as session:
        app[HTTP] = session
        yield


async def _discovery_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, session, store = app[SETTINGS], app[HTTP], app[STORE]
    app[DISCOVERY] = Discovery(
        TmdbClient(session, settings.tmdb, store), Indexers(session, settings.indexers, store)
    )
    yield


def setup(app: web.Application) -> None:
    """The outgoing HTTP session (TMDB, indexers, images), then TMDB and the indexers; after
    the store, whose cache they use."""
    app.cleanup_ctx.extend([_http_ctx, _discovery_ctx])
