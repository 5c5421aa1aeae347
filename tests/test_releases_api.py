"""``GET /movies/{id}/releases`` over real indexer replies: best first, and the scores say so
(issue 14, item 4); ranked for the browser that asks (item 6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, settings_for
from tests.support.fake_newznab import FakeNewznabFactory
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.fake_tmdb import THE_MATRIX, TOKEN, FakeTmdbFactory

DATA = Path(__file__).parent / "data" / "capabilities"


async def test_releases_are_best_first_by_score(
    fake_tmdb: FakeTmdbFactory,
    fake_newznab: FakeNewznabFactory,
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    shared_fixtures: Path,
) -> None:
    """Two indexers replaying captured replies: a movie search (dognzb) and one that answers
    with music (nzbgeek's t=music reply, all excluded): one list."""
    captures = shared_fixtures / "newznab"
    tmdb = await fake_tmdb(token=TOKEN)
    # The capture answers for Spy (2015); the stand-in TMDB knows The Matrix: its id stands in.
    spy = (captures / "dognzb_t-movie_imdbid_3079380.xml").read_bytes()
    spy = spy.replace(b'name="imdb" value="3079380"', b'name="imdb" value="0133093"')
    dog = await fake_newznab(name="dog", apikey="d" * 32, raw_replies={"movie": spy})
    geek = await fake_newznab(
        name="geek", apikey="g" * 32,
        raw_replies={"movie": (captures / "nzbgeek_t-music_extended.xml").read_bytes()},
    )  # fmt: skip
    settings = settings_for(
        tmp_path,
        await fake_nntp(),
        tmdb={"token": TOKEN, "base_url": tmdb.url, "image_base_url": tmdb.image_url},
        indexers=[
            {"name": "dog", "url": dog.url, "api_key": "d" * 32},
            {"name": "geek", "url": geek.url, "api_key": "g" * 32},
        ],
    )
    client = await start_app(settings)
    resp = await client.get(f"{API}/movies/{THE_MATRIX}/releases", headers=HEADERS)
    body = await resp.json()
    assert resp.status == 200, body
    releases = body["releases"]
    assert len(releases) == 106  # of 113 items: duplicates are merged
    scores = [r["score"] for r in releases]
    assert scores == sorted(scores, reverse=True), scores
    excluded = [r["excluded"] for r in releases]
    assert excluded == sorted(excluded) and excluded.count(True) == 94
    assert releases[0]["title"] == "Spy.2015.1080p.BluRay.x264-SPARKS"

    # Measured capabilities are taken: in Chromium HEVC is a transcode, in Firefox it plays.
    reasons = {}
    for name in ("chromium-156-headless", "firefox-esr-153-headless"):
        query = {"capabilities": (DATA / f"{name}.json").read_text()}
        resp = await client.get(
            f"{API}/movies/{THE_MATRIX}/releases", params=query, headers=HEADERS
        )
        found = await resp.json()
        hevc = next(r for r in found["releases"] if "Hevc" in r["title"])
        reasons[name] = hevc["reasons"]
    assert any("converting video: HEVC" in r for r in reasons["chromium-156-headless"])
    assert any("HEVC video plays" in r for r in reasons["firefox-esr-153-headless"]), reasons
