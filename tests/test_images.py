"""Posters and photos through Matinee: fetched once from TMDB's image server, then served from
the disk cache; bad sizes and names refused before any request; the cache stays bounded."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from server.errors import InvalidInput
from server.keys import SETTINGS
from server.ui.images import Fetch, ImageCache
from tests.support.fake_tmdb import JPEG, PNG, THE_MATRIX, movie_by_id
from tests.support.site import HTML, Site, StartSite

POSTER = movie_by_id(THE_MATRIX).poster_path
assert POSTER is not None


@pytest.fixture(params=["/", "/movies/"])
async def site(request: pytest.FixtureRequest, start_site: StartSite) -> Site:
    return await start_site(request.param)


def cache_dir(site: Site) -> Path:
    return site.app[SETTINGS].server.data_dir / "images"


async def test_a_poster_is_fetched_once_then_served_from_disk(site: Site) -> None:
    url = f"{site.base}img/w342{POSTER}"
    for _ in range(3):
        resp = await site.client.get(url, headers=site.headers())
        assert resp.status == 200
        assert await resp.read() == JPEG
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert "immutable" in resp.headers["Cache-Control"]
        assert "private" in resp.headers["Cache-Control"]
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert site.tmdb.requests[f"/t/p/w342{POSTER}"] == 1
    assert POSTER is not None
    assert (cache_dir(site) / "w342" / POSTER.lstrip("/")).read_bytes() == JPEG
    # another size is another picture
    resp = await site.client.get(f"{site.base}img/w185{POSTER}", headers=site.headers())
    assert resp.status == 200
    assert site.tmdb.requests[f"/t/p/w185{POSTER}"] == 1


async def test_concurrent_requests_share_one_fetch(site: Site) -> None:
    site.tmdb.delay = 0.2
    url = f"{site.base}img/w500{POSTER}"
    replies = await asyncio.gather(
        *(site.client.get(url, headers=site.headers()) for _ in range(6))
    )
    assert [r.status for r in replies] == [200] * 6
    assert site.tmdb.requests[f"/t/p/w500{POSTER}"] == 1


async def test_images_need_a_session(site: Site) -> None:
    resp = await site.client.get(
        f"{site.base}img/w342{POSTER}", headers=HTML, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"].startswith(f"{site.base}login?next=")
    assert site.tmdb.total_requests == 0


@pytest.mark.parametrize(
    "path",
    [
        "w999/abc.jpg",  # not a TMDB size
        "w342/abc.gif",  # not a TMDB image type
        "w342/a.b.jpg",
        "w342/..%2Fmatinee.sqlite3.jpg",
        "w342/%2e%2e.jpg",
        "w342/abc",
        "original/abc.jpg%00.png",
        "w342/abc-def.jpg",
        "w185/" + "a" * 5000 + ".jpg",  # longer than any file name a disk takes
    ],
)
async def test_bad_sizes_and_names_are_refused(site: Site, path: str) -> None:
    resp = await site.client.get(f"{site.base}img/{path}", headers=site.headers())
    assert resp.status in (400, 404), path
    body = await resp.json()
    assert body["code"] in ("INVALID_INPUT", "NOT_FOUND")
    assert site.tmdb.total_requests == 0
    assert not cache_dir(site).exists() or not any(cache_dir(site).rglob("*"))


async def test_tmdb_failures_are_not_cached(site: Site) -> None:
    url = f"{site.base}img/w342{POSTER}"
    site.tmdb.reply(200, "<html>oops</html>", content_type="text/html")
    resp = await site.client.get(url, headers=site.headers())
    assert resp.status == 502
    assert (await resp.json())["code"] == "TMDB_ERROR"
    resp = await site.client.get(
        f"{site.base}img/w342/unknownPoster123.jpg", headers=site.headers()
    )
    assert resp.status == 404
    resp = await site.client.get(url, headers=site.headers())
    assert resp.status == 200 and await resp.read() == JPEG


async def test_svg_is_sandboxed(site: Site) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    site.tmdb.reply(200, svg, content_type="image/svg+xml")
    resp = await site.client.get(f"{site.base}img/w92/someLogo123.svg", headers=site.headers())
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/svg+xml"
    csp = resp.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp


async def test_type_comes_from_the_name_not_from_tmdb(site: Site) -> None:
    site.tmdb.reply(200, PNG, content_type="image/svg+xml")
    resp = await site.client.get(f"{site.base}img/w92/named123.png", headers=site.headers())
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/png"


# --------------------------------------------------------------------------- the cache alone


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_cache_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images", max_bytes=1000)
    fetched: list[str] = []

    def source(name: str) -> Fetch:
        async def fetch() -> bytes:
            fetched.append(name)
            return b"x" * 300

        return fetch

    first = await cache.get("w92", "a1.jpg", source("a1"))
    second = await cache.get("w92", "b2.jpg", source("b2"))
    third = await cache.get("w185", "c3.jpg", source("c3"))
    age(first, 3 * 3600)
    age(second, 5 * 3600)
    age(third, 4 * 3600)
    # a hit refreshes an old file's recency
    await cache.get("w92", "a1.jpg", source("again"))
    assert fetched == ["a1", "b2", "c3"]
    assert time.time() - first.stat().st_mtime < 60
    fourth = await cache.get("w92", "d4.jpg", source("d4"))
    # 1200 bytes > 1000: down to 900, least recently used first
    assert cache.total == 900
    assert not second.exists()
    assert first.exists() and third.exists() and fourth.exists()
    fifth = await cache.get("w92", "e5.jpg", source("e5"))
    assert cache.total == 900
    assert not third.exists()
    assert first.exists() and fourth.exists() and fifth.exists()


async def test_cache_counts_what_was_there_and_clears_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "w92").mkdir(parents=True)
    old = root / "w92" / "old1.jpg"
    old.write_bytes(b"o" * 800)
    age(old, 7200)
    leftover = root / "w92" / ".half1.jpg.1234.tmp"
    leftover.write_bytes(b"t" * 50)
    age(leftover, 7200)
    cache = ImageCache(root, max_bytes=1000)

    async def fetch() -> bytes:
        return b"n" * 300

    new = await cache.get("w92", "new1.jpg", fetch)
    assert new.read_bytes() == b"n" * 300
    assert not old.exists() and not leftover.exists()
    assert cache.total == 300


async def test_cache_refuses_names_outside_it(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images")

    async def fetch() -> bytes:
        raise AssertionError("never fetched")

    for size, name in [("w92", "../x.jpg"), ("../w92", "x.jpg"), ("w92", "x.exe"), ("w92", "")]:
        with pytest.raises(InvalidInput):
            await cache.get(size, name, fetch)
    assert not (tmp_path / "images").exists()


async def test_a_failed_fetch_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images")

    async def fetch() -> bytes:
        raise InvalidInput("no such image")

    with pytest.raises(InvalidInput):
        await cache.get("w92", "gone1.jpg", fetch)
    assert not cache.path("w92", "gone1.jpg").exists()
