"""Choosing what to download for a movie: TMDB details, every indexer's releases, ranked.

Shared by the API (the releases table a person sees) and the job runner (auto mode picks
the best, and moves on to the next-best when a release turns out to be incomplete).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from server.discovery.releases.ranking import RankedRelease, rank
from server.errors import InvalidInput

if TYPE_CHECKING:  # the clients are only handed in; no import cycle at run time
    from server.discovery.indexers import Indexers
    from server.discovery.tmdb import TmdbClient

Preference = Literal["720p", "1080p", "4K"]
PREFERENCES: tuple[Preference, ...] = ("720p", "1080p", "4K")


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

    async def releases(self, movie_id: int, preference: Preference = "1080p") -> ReleaseList: ...

    async def nzb(self, release: RankedRelease) -> tuple[bytes, str | None]: ...


class Discovery:
    def __init__(self, tmdb: TmdbClient, indexers: Indexers) -> None:
        self.tmdb = tmdb
        self.indexers = indexers

    async def releases(self, movie_id: int, preference: Preference = "1080p") -> ReleaseList:
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
        )
        return ReleaseList(movie=movie, releases=ranked, errors=dict(outcome.errors))

    async def nzb(self, release: RankedRelease) -> tuple[bytes, str | None]:
        return await self.indexers.fetch_nzb(release.link)
