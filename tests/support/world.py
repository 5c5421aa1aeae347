"""A world for discovery tests: TMDB, one indexer with The Matrix's releases and one Usenet
server (all fakes on loopback), and Matinee in front of them."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, settings_for
from tests.support.fake_newznab import FakeNewznab, FakeNewznabFactory, FakeRelease
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.fake_tmdb import TOKEN, FakeTmdb, FakeTmdbFactory
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

GB = 1_000_000_000
DATE = "Mon, 01 Jan 2024 12:00:00 +0000"
MATRIX_RELEASES = (
    FakeRelease(
        "The.Matrix.1999.1080p.BluRay.x264-AMIABLE", 10 * GB, (2000, 2040), DATE, "0133093", 900
    ),
    FakeRelease(
        "The.Matrix.1999.720p.BluRay.x264-SiNNERS", 5 * GB, (2000, 2040), DATE, "0133093", 300
    ),
    FakeRelease("The.Matrix.1999.480p.DVDRip.XviD-OLD", 1 * GB, (2000, 2030), DATE, "0133093", 10),
    FakeRelease("The.Matrix.1999.CAM.x264-BAD", 2 * GB, (2000, 2040), DATE, "0133093", 5),
)


class World:
    """TMDB, one indexer and one Usenet server, all fakes, and the app in front of them."""

    def __init__(self, client: Client, tmdb: FakeTmdb, geek: FakeNewznab, nntp: FakeNntpServer):
        self.client, self.tmdb, self.geek, self.nntp = client, tmdb, geek, nntp
        self.posts: dict[str, tuple[bytes, list[Any]]] = {}

    def post(self, title: str, size: int = 300_000, data: bytes | None = None) -> list[Any]:
        """Put a post for a release on the Usenet server and its NZB on the indexer: ``data``
        (a real film) or ``size`` random bytes."""
        data = os.urandom(size) if data is None else data
        arts = articles_for_bytes(data, f"{title}.mkv", part_size=64 * 1024)
        self.nntp.add(arts)
        self.geek.add_nzb(title, build_nzb([NzbEntry.from_articles(arts)]))
        self.posts[title] = (data, arts)
        return arts

    async def get(self, path: str, status: int = 200) -> Any:
        resp = await self.client.get(f"{API}{path}", headers=HEADERS)
        assert resp.status == status, await resp.text()
        return await resp.json()

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        resp = await self.client.post(f"{API}{path}", json=body, headers=HEADERS)
        return resp.status, await resp.json()


StartWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def start_world(
    fake_tmdb: FakeTmdbFactory,
    fake_newznab: FakeNewznabFactory,
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
) -> StartWorld:
    """A world whose app has these config sections besides TMDB, the indexer and Usenet."""

    async def start(**sections: Any) -> World:
        tmdb = await fake_tmdb(token=TOKEN)
        geek = await fake_newznab(name="geek", apikey="g" * 32, releases=MATRIX_RELEASES)
        nntp = await fake_nntp()
        settings = settings_for(
            tmp_path,
            nntp,
            tmdb={"token": TOKEN, "base_url": tmdb.url, "image_base_url": tmdb.image_url},
            indexers=[{"name": "geek", "url": geek.url, "api_key": "g" * 32}],
            **sections,
        )
        return World(await start_app(settings), tmdb, geek, nntp)

    return start


@pytest.fixture
async def world(start_world: StartWorld) -> World:
    return await start_world()
