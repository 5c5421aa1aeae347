"""The TMDB client against the fake TMDB on loopback: shapes, auth, validation, failures, caching.

The last tests replay real TMDB captures from ../shared/fixtures/tmdb through the same parsing
(skipped when that folder is not beside the checkout).
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from server.config.settings import TmdbConfig
from server.discovery.tmdb import DETAILS_TTL, LIST_TTL, TmdbClient, retry_after_seconds
from server.discovery.tmdb_shapes import (
    CAST_LIMIT,
    CREW_LIMIT,
    MAX_PAGE,
    parse_movie_details,
    parse_movie_id,
    parse_movie_page,
    parse_page,
)
from server.errors import InvalidInput, MatineeError, NotFound, TmdbError
from server.http.errors import status_and_code
from server.store.db import Store
from tests.support.fake_tmdb import (
    AMELIE,
    API_KEY,
    FIGHT_CLUB,
    INCEPTION,
    JPEG,
    MOVIES,
    NOSFERATU,
    PNG,
    SPIRITED_AWAY,
    THE_GODFATHER,
    THE_MATRIX,
    TOKEN,
    UNKNOWN_MOVIE_ID,
    UNRELEASED,
    FakeTmdb,
    FakeTmdbFactory,
    movie_by_id,
)

T0 = 1_700_000_000.0
MOVIE_KEYS = {
    "id",
    "title",
    "original_title",
    "overview",
    "release_date",
    "year",
    "poster_path",
    "backdrop_path",
    "vote_average",
    "vote_count",
    "popularity",
    "genre_ids",
    "original_language",
}


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """Records the waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class ClientFactory(Protocol):
    def __call__(self, config: TmdbConfig, *, timeout: float = ...) -> TmdbClient: ...


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    db = await Store.open(tmp_path / "matinee.sqlite3", clock=clock)
    yield db
    await db.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession, store: Store, clock: FakeClock, sleeps: Sleeps
) -> ClientFactory:
    def make(config: TmdbConfig, *, timeout: float = 5.0) -> TmdbClient:
        return TmdbClient(session, config, store, clock=clock, sleep=sleeps, timeout=timeout)

    return make


@pytest.fixture
async def tmdb(fake_tmdb: FakeTmdbFactory) -> FakeTmdb:
    return await fake_tmdb()


@pytest.fixture
def client(tmdb: FakeTmdb, make_client: ClientFactory) -> TmdbClient:
    return make_client(tmdb.config())


def titles(page: Any) -> list[str]:
    return [movie["title"] for movie in page["results"]]


def cache_rows(store: Store) -> list[tuple[str, bytes]]:
    with sqlite3.connect(store.path) as db:
        return [
            (key, bytes(value)) for key, value in db.execute("SELECT key, value FROM http_cache")
        ]


# --------------------------------------------------------------------------- lists


async def test_popular_is_a_page_of_movies_most_popular_first(client: TmdbClient) -> None:
    page = await client.popular()

    assert titles(page) == [
        "Inception",
        "The Godfather",
        "Spirited Away",
        "The Matrix",
        "Fight Club",
        "Amélie",
        "Nosferatu",
        "The Lighthouse Keeper's Daughter",
    ]
    assert (page["page"], page["total_pages"], page["total_results"]) == (1, 1, 8)
    assert all(set(movie) == MOVIE_KEYS for movie in page["results"])
    assert page["results"][0] == {
        "id": 27205,
        "title": "Inception",
        "original_title": "Inception",
        "overview": movie_by_id(INCEPTION).overview,
        "release_date": "2010-07-15",
        "year": 2010,
        "poster_path": "/inPoster27205o9I8u7Y6t5R4e3W.jpg",
        "backdrop_path": "/inBackdrop27205q2W3e4R5t6Y.jpg",
        "vote_average": 8.369,
        "vote_count": 36512,
        "popularity": 152.7,
        "genre_ids": [28, 878, 12],
        "original_language": "en",
    }


async def test_movies_without_poster_or_release_date(client: TmdbClient) -> None:
    by_id = {movie["id"]: movie for movie in (await client.popular())["results"]}

    assert by_id[NOSFERATU]["poster_path"] is None
    assert by_id[NOSFERATU]["backdrop_path"] is None
    assert by_id[NOSFERATU]["year"] == 1922
    assert by_id[UNRELEASED]["release_date"] is None  # TMDB sends ""
    assert by_id[UNRELEASED]["year"] is None
    assert by_id[UNRELEASED]["overview"] == ""
    assert by_id[SPIRITED_AWAY]["original_title"] == "千と千尋の神隠し"


async def test_top_rated_best_rated_first(client: TmdbClient) -> None:
    page = await client.top_rated()

    assert titles(page)[:3] == ["The Godfather", "Spirited Away", "Fight Club"]
    assert "The Lighthouse Keeper's Daughter" not in titles(page)  # no votes yet


async def test_search_finds_by_title_and_trims_the_query(
    client: TmdbClient, tmdb: FakeTmdb
) -> None:
    page = await client.search("  matrix \n")

    assert titles(page) == ["The Matrix"]
    assert page["results"][0]["id"] == THE_MATRIX
    assert tmdb.received[-1].params["query"] == "matrix"
    assert tmdb.received[-1].params["include_adult"] == "false"


async def test_search_with_non_ascii_query(client: TmdbClient) -> None:
    assert titles(await client.search("Amélie")) == ["Amélie"]
    assert titles(await client.search("千と千尋")) == ["Spirited Away"]


async def test_search_without_matches_is_an_empty_page(client: TmdbClient) -> None:
    page = await client.search("no such film anywhere")

    assert page == {"page": 1, "results": [], "total_pages": 0, "total_results": 0}


async def test_pages(fake_tmdb: FakeTmdbFactory, make_client: ClientFactory) -> None:
    tmdb = await fake_tmdb(page_size=3)
    client = make_client(tmdb.config())

    second = await client.popular(page=2)
    beyond = await client.popular(page=4)

    assert titles(second) == ["The Matrix", "Fight Club", "Amélie"]
    assert (second["page"], second["total_pages"], second["total_results"]) == (2, 3, 8)
    assert beyond["results"] == []
    assert tmdb.received[0].params["page"] == "2"


async def test_similar_shares_a_genre(client: TmdbClient, tmdb: FakeTmdb) -> None:
    page = await client.similar(FIGHT_CLUB)

    assert titles(page) == ["The Godfather", "The Lighthouse Keeper's Daughter"]
    assert tmdb.requests["/movie/550/similar"] == 1


async def test_total_pages_never_beyond_what_tmdb_serves() -> None:
    page = parse_movie_page({"page": 1, "results": [], "total_pages": 42471, "total_results": 9})

    assert page["total_pages"] == MAX_PAGE


# --------------------------------------------------------------------------- details


async def test_details_with_credits_in_one_request(client: TmdbClient, tmdb: FakeTmdb) -> None:
    details = await client.movie(FIGHT_CLUB)

    assert tmdb.total_requests == 1
    assert tmdb.received[0].path == "/movie/550"
    assert tmdb.received[0].params["append_to_response"] == "credits"
    assert details == {
        "id": 550,
        "title": "Fight Club",
        "original_title": "Fight Club",
        "overview": movie_by_id(FIGHT_CLUB).overview,
        "tagline": "Mischief. Mayhem. Soap.",
        "release_date": "1999-10-15",
        "year": 1999,
        "runtime": 139,
        "imdb_id": "tt0137523",
        "genres": [{"id": 18, "name": "Drama"}, {"id": 53, "name": "Thriller"}],
        "production_companies": [
            {
                "id": 508,
                "name": "Regency Enterprises",
                "logo_path": "/logoRegency508.png",
                "origin_country": "US",
            },
            {
                "id": 711,
                "name": "Fox 2000 Pictures",
                "logo_path": "/logoFox2000x711.png",
                "origin_country": "US",
            },
            {
                "id": 54051,
                "name": "Atman Entertainment",
                "logo_path": None,
                "origin_country": None,
            },
        ],
        "budget": 63_000_000,
        "revenue": 100_853_753,
        "poster_path": "/fcPoster550a1B2c3D4e5F6g7H8i.jpg",
        "backdrop_path": "/fcBackdrop550j9K8l7M6n5O4p.jpg",
        "vote_average": 8.438,
        "vote_count": 29876,
        "status": "Released",
        "cast": [
            {
                "id": 819,
                "name": "Edward Norton",
                "character": "Narrator",
                "profile_path": "/pEn819Norton.jpg",
                "order": 0,
            },
            {
                "id": 287,
                "name": "Brad Pitt",
                "character": "Tyler Durden",
                "profile_path": "/pBp287Pitt.jpg",
                "order": 1,
            },
            {
                "id": 1283,
                "name": "Helena Bonham Carter",
                "character": "Marla Singer",
                "profile_path": None,
                "order": 2,
            },
            {
                "id": 7470,
                "name": "Meat Loaf",
                "character": "Robert 'Bob' Paulson",
                "profile_path": None,
                "order": 3,
            },
            {
                "id": 7499,
                "name": "Jared Leto",
                "character": "Angel Face",
                "profile_path": None,
                "order": 4,
            },
        ],
        "crew": [
            {
                "id": 7467,
                "name": "David Fincher",
                "job": "Director",
                "department": "Directing",
                "profile_path": "/pDf7467Fincher.jpg",
            },
            {
                "id": 7468,
                "name": "Chuck Palahniuk",
                "job": "Novel",
                "department": "Writing",
                "profile_path": None,
            },
            {
                "id": 7469,
                "name": "Jim Uhls",
                "job": "Screenplay",
                "department": "Writing",
                "profile_path": None,
            },
            {
                "id": 7474,
                "name": "Art Linson",
                "job": "Producer",
                "department": "Production",
                "profile_path": None,
            },
            {
                "id": 7479,
                "name": "Ceán Chaffin",
                "job": "Producer",
                "department": "Production",
                "profile_path": None,
            },
            {
                "id": 7477,
                "name": "Arnon Milchan",
                "job": "Executive Producer",
                "department": "Production",
                "profile_path": None,
            },
            {
                "id": 7475,
                "name": "Jeff Cronenweth",
                "job": "Director of Photography",
                "department": "Camera",
                "profile_path": None,
            },
            {
                "id": 7476,
                "name": "James Haygood",
                "job": "Editor",
                "department": "Editing",
                "profile_path": None,
            },
            {
                "id": 7478,
                "name": "The Dust Brothers",
                "job": "Original Music Composer",
                "department": "Sound",
                "profile_path": None,
            },
        ],
    }


async def test_cast_is_the_first_twenty_billed(client: TmdbClient) -> None:
    details = await client.movie(INCEPTION)

    cast = details["cast"]
    assert len(cast) == CAST_LIMIT == 20
    assert [member["order"] for member in cast] == list(range(20))
    assert [member["name"] for member in cast[:3]] == [
        "Leonardo DiCaprio",
        "Joseph Gordon-Levitt",
        "Elliot Page",
    ]
    assert cast[4]["profile_path"] is None


async def test_crew_leads_with_directors_writers_producers(client: TmdbClient) -> None:
    details = await client.movie(INCEPTION)

    crew = details["crew"]
    assert len(crew) == CREW_LIMIT == 20  # of 30 listed
    assert [(member["name"], member["job"]) for member in crew[:7]] == [
        ("Christopher Nolan", "Director"),
        ("Christopher Nolan", "Writer"),
        ("Emma Thomas", "Producer"),
        ("Christopher Nolan", "Producer"),
        ("Thomas Tull", "Executive Producer"),
        ("Art Hand 1", "Set Decoration"),
        ("Art Hand 2", "Set Decoration"),
    ]


async def test_details_of_an_unreleased_movie(client: TmdbClient) -> None:
    details = await client.movie(UNRELEASED)

    assert details["title"] == "The Lighthouse Keeper's Daughter"
    assert details["release_date"] is None
    assert details["year"] is None
    assert details["runtime"] is None  # TMDB says 0
    assert details["imdb_id"] is None
    assert details["tagline"] is None  # TMDB says ""
    assert details["status"] == "In Production"
    assert (details["budget"], details["revenue"]) == (0, 0)
    assert (details["cast"], details["crew"], details["production_companies"]) == ([], [], [])


async def test_non_ascii_details_survive_the_cache(client: TmdbClient, tmdb: FakeTmdb) -> None:
    first = await client.movie(AMELIE)
    second = await client.movie(AMELIE)

    assert tmdb.total_requests == 1
    assert second == first
    assert second["title"] == "Amélie"
    assert second["cast"][0]["character"] == "Amélie Poulain"


# --------------------------------------------------------------------------- auth, language


async def test_token_is_sent_as_bearer(client: TmdbClient, tmdb: FakeTmdb) -> None:
    await client.popular()

    assert tmdb.received[0].authorization == f"Bearer {TOKEN}"
    assert "api_key" not in tmdb.received[0].params


async def test_api_key_is_sent_as_query_parameter(
    tmdb: FakeTmdb, make_client: ClientFactory
) -> None:
    client = make_client(tmdb.config(token=None, api_key=API_KEY))

    assert titles(await client.search("godfather")) == ["The Godfather"]
    assert tmdb.received[0].params["api_key"] == API_KEY
    assert tmdb.received[0].authorization is None


async def test_token_wins_over_api_key(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    client = make_client(tmdb.config(token=TOKEN, api_key="some-other-key-never-sent"))

    await client.popular()

    assert tmdb.received[0].authorization == f"Bearer {TOKEN}"
    assert "api_key" not in tmdb.received[0].params


async def test_language_on_every_request(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    client = make_client(tmdb.config(language="fr-FR"))

    await client.search("matrix")
    await client.popular()
    await client.top_rated()
    await client.similar(THE_MATRIX)
    details = await client.movie(THE_MATRIX)

    assert [r.params.get("language") for r in tmdb.received] == ["fr-FR"] * 5
    assert details["title"] == "Matrix"


async def test_each_language_has_its_own_cache_entry(
    tmdb: FakeTmdb, make_client: ClientFactory
) -> None:
    english = make_client(tmdb.config(language="en-US"))
    french = make_client(tmdb.config(language="fr-FR"))

    assert (await english.movie(SPIRITED_AWAY))["title"] == "Spirited Away"
    assert (await french.movie(SPIRITED_AWAY))["title"] == "Le Voyage de Chihiro"
    assert tmdb.total_requests == 2


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.search(""), "query must not be empty"),
        (lambda c: c.search("   \t "), "query must not be empty"),
        (lambda c: c.search("x" * 201), "at most 200 characters"),
        (lambda c: c.search("matrix", page=0), "page must be a whole number from 1 to 500"),
        (lambda c: c.popular(page=501), "page must be a whole number from 1 to 500"),
        (lambda c: c.top_rated(page=-1), "page must be a whole number from 1 to 500"),
        (lambda c: c.popular(page=True), "page must be a whole number"),
        (lambda c: c.popular(page="2"), "page must be a whole number"),
        (lambda c: c.movie(0), "movie id must be a positive whole number"),
        (lambda c: c.movie(-550), "movie id must be a positive whole number"),
        (lambda c: c.movie(2**40), "movie id must be a positive whole number"),
        (lambda c: c.movie("550"), "movie id must be a positive whole number"),
        (lambda c: c.similar(0), "movie id must be a positive whole number"),
        (lambda c: c.similar(FIGHT_CLUB, page=0), "page must be a whole number"),
        (lambda c: c.image("w999", "/fcPoster550a1B2c3D4e5F6g7H8i.jpg"), "image size"),
        (lambda c: c.image("", "/fcPoster550a1B2c3D4e5F6g7H8i.jpg"), "image size"),
        (lambda c: c.image("w342", "/../../etc/passwd"), "image path"),
        (lambda c: c.image("w342", "fcPoster550.jpg"), "image path"),
        (lambda c: c.image("w342", "/a.gif"), "image path"),
        (lambda c: c.image("w342", "/a b.jpg"), "image path"),
        (lambda c: c.image("w342", "/a.jpg?x=1"), "image path"),
        (lambda c: c.image("w342", "/a.jpg\n"), "image path"),
    ],
)
async def test_invalid_input_is_refused_before_asking_tmdb(
    client: TmdbClient, tmdb: FakeTmdb, call: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await call(client)

    assert status_and_code(caught.value) == (400, "INVALID_INPUT")
    assert tmdb.total_requests == 0


@pytest.mark.parametrize(("raw", "page"), [(None, 1), ("", 1), ("1", 1), ("  7 ", 7), ("500", 500)])
def test_parse_page(raw: str | None, page: int) -> None:
    assert parse_page(raw) == page


@pytest.mark.parametrize("raw", ["0", "501", "-1", "+2", "2.0", "two", "1e3", "٣", "3_0"])
def test_parse_page_refuses(raw: str) -> None:
    with pytest.raises(InvalidInput, match="page must be a whole number from 1 to 500"):
        parse_page(raw)


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "5.5", "", "99999999999", "٥٥٠", "+550"])
def test_parse_movie_id_refuses(raw: str) -> None:
    with pytest.raises(InvalidInput, match="movie id must be a positive whole number"):
        parse_movie_id(raw)


def test_parse_movie_id() -> None:
    assert parse_movie_id("550") == FIGHT_CLUB


# --------------------------------------------------------------------------- failures


async def test_unknown_movie_is_not_found(client: TmdbClient, tmdb: FakeTmdb) -> None:
    with pytest.raises(NotFound) as details:
        await client.movie(UNKNOWN_MOVIE_ID)
    with pytest.raises(NotFound) as similar:
        await client.similar(UNKNOWN_MOVIE_ID)

    for caught in (details, similar):
        assert caught.value.message == "no movie with id 404404 on TMDB"
        assert status_and_code(caught.value) == (404, "NOT_FOUND")


async def test_wrong_token(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    wrong = "eyJhbGciOiJIUzI1NiJ9.wrong-token-value"
    client = make_client(tmdb.config(token=wrong))

    with pytest.raises(TmdbError) as caught:
        await client.popular()

    message = caught.value.message
    assert status_and_code(caught.value) == (502, "TMDB_ERROR")
    assert "refused the v4 read access token" in message
    assert "Invalid API key" in message  # TMDB's own words
    assert "[tmdb] token" in message
    assert "MATINEE_TMDB_TOKEN" in message
    assert wrong not in str(caught.value)


async def test_wrong_api_key(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    wrong = "ffffffffffffffffffffffffffffffff"
    client = make_client(tmdb.config(token=None, api_key=wrong))

    with pytest.raises(TmdbError) as caught:
        await client.movie(FIGHT_CLUB)

    message = caught.value.message
    assert "refused the v3 API key" in message
    assert "[tmdb] api_key" in message
    assert "MATINEE_TMDB_API_KEY" in message
    assert wrong not in message


async def test_not_configured(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    client = make_client(tmdb.config(token=None, api_key=None))

    assert not client.configured
    with pytest.raises(TmdbError, match=r"TMDB is not configured: set \[tmdb\] token"):
        await client.search("matrix")
    assert tmdb.total_requests == 0


async def test_rate_limit_is_waited_out(client: TmdbClient, tmdb: FakeTmdb, sleeps: Sleeps) -> None:
    tmdb.rate_limit(times=2, retry_after="3")

    page = await client.popular()

    assert titles(page)[0] == "Inception"
    assert sleeps == [3.0, 3.0]
    assert tmdb.requests["/movie/popular"] == 3


async def test_rate_limit_gives_up_after_two_retries(
    client: TmdbClient, tmdb: FakeTmdb, sleeps: Sleeps
) -> None:
    tmdb.rate_limit(times=3, retry_after="2")

    with pytest.raises(TmdbError, match="TMDB is rate limiting") as caught:
        await client.movie(FIGHT_CLUB)

    assert status_and_code(caught.value)[0] == 502
    assert sleeps == [2.0, 2.0]
    assert tmdb.total_requests == 3
    # nothing was cached: the next request asks TMDB again, and now gets the movie
    assert (await client.movie(FIGHT_CLUB))["title"] == "Fight Club"
    assert tmdb.total_requests == 4


async def test_long_retry_after_is_capped(
    client: TmdbClient, tmdb: FakeTmdb, sleeps: Sleeps
) -> None:
    tmdb.rate_limit(times=1, retry_after="3600")
    tmdb.rate_limit(times=1, retry_after=None)

    await client.top_rated()

    assert sleeps == [10.0, 1.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("", 1.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-4", 0.0),
        ("nan", 1.0),
        ("soon", 1.0),
        (formatdate(T0 + 4, usegmt=True), 4.0),
        (formatdate(T0 - 60, usegmt=True), 0.0),
        (formatdate(T0 + 600, usegmt=True), 10.0),
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after_seconds(header, T0) == seconds


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(client: TmdbClient, tmdb: FakeTmdb, status: int) -> None:
    tmdb.fail(status=status)

    with pytest.raises(TmdbError) as caught:
        await client.popular()

    assert caught.value.message.startswith(f"TMDB is having trouble (HTTP {status}")
    assert "try again later" in caught.value.message
    assert status_and_code(caught.value) == (502, "TMDB_ERROR")
    # errors are not cached
    assert titles(await client.popular())[0] == "Inception"
    assert tmdb.total_requests == 2


async def test_other_refusals_carry_tmdbs_words(client: TmdbClient, tmdb: FakeTmdb) -> None:
    tmdb.reply(422, json.dumps({"errors": ["query must be provided"]}))

    with pytest.raises(TmdbError, match=r"HTTP 422.*query must be provided"):
        await client.search("matrix")


async def test_reply_that_is_not_json(client: TmdbClient, tmdb: FakeTmdb) -> None:
    tmdb.not_json()

    with pytest.raises(TmdbError, match=r"not JSON .*HTTP 200, text/html"):
        await client.movie(FIGHT_CLUB)


async def test_json_of_the_wrong_shape(client: TmdbClient, tmdb: FakeTmdb) -> None:
    tmdb.reply(200, json.dumps(["not", "a", "page"]))
    tmdb.reply(200, json.dumps({"status_message": "no id here"}))

    with pytest.raises(TmdbError, match="list of movies was missing"):
        await client.popular()
    with pytest.raises(TmdbError, match="details were missing"):
        await client.movie(FIGHT_CLUB)


async def test_timeout(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    client = make_client(tmdb.config(), timeout=0.2)
    tmdb.delay = 30.0

    with pytest.raises(TmdbError, match=r"TMDB did not answer within 0.2 s"):
        await client.popular()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused(make_client: ClientFactory) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/3"
    client = make_client(TmdbConfig(token=None, api_key=API_KEY, base_url=base))

    with pytest.raises(TmdbError, match=r"cannot reach TMDB at 127\.0\.0\.1:\d+") as caught:
        await client.popular()

    assert API_KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_no_secret_in_errors_logs_or_cache(
    fake_tmdb: FakeTmdbFactory,
    make_client: ClientFactory,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.discovery.tmdb")
    tmdb = await fake_tmdb()
    # TMDB echoing the key back would be unusual, but must not leak it either
    tmdb.reply(401, json.dumps({"status_code": 7, "status_message": f"bad key {API_KEY}"}))
    tmdb.rate_limit(times=3)
    tmdb.fail()
    client = make_client(tmdb.config(token=None, api_key=API_KEY))

    errors: list[MatineeError] = []
    for call in (client.popular, client.popular, client.top_rated):
        with pytest.raises(MatineeError) as caught:
            await call()
        errors.append(caught.value)
    await client.movie(FIGHT_CLUB)
    await client.search("matrix")

    assert "bad key ******" in errors[0].message
    assert all(API_KEY not in str(error) for error in errors)
    assert caplog.records  # the client did log
    assert all(API_KEY not in record.getMessage() for record in caplog.records)
    rows = cache_rows(store)
    assert len(rows) == 2
    assert all(API_KEY not in key and API_KEY.encode() not in value for key, value in rows)


# --------------------------------------------------------------------------- caching


async def test_cache_hit_makes_no_request(client: TmdbClient, tmdb: FakeTmdb) -> None:
    first = [
        await client.search("matrix"),
        await client.popular(),
        await client.top_rated(),
        await client.similar(FIGHT_CLUB),
        await client.movie(FIGHT_CLUB),
    ]
    assert tmdb.total_requests == 5

    again = [
        await client.search(" matrix "),
        await client.popular(),
        await client.top_rated(),
        await client.similar(FIGHT_CLUB),
        await client.movie(FIGHT_CLUB),
    ]

    assert again == first
    assert tmdb.total_requests == 5
    await client.popular(page=2)
    assert tmdb.total_requests == 6  # another page is another entry


async def test_cache_is_shared_by_token_and_api_key(
    tmdb: FakeTmdb, make_client: ClientFactory
) -> None:
    await make_client(tmdb.config()).movie(FIGHT_CLUB)
    await make_client(tmdb.config(token=None, api_key=API_KEY)).movie(FIGHT_CLUB)

    assert tmdb.total_requests == 1


async def test_lists_expire_after_an_hour(
    client: TmdbClient, tmdb: FakeTmdb, clock: FakeClock
) -> None:
    await client.popular()
    clock.now += LIST_TTL - 1
    await client.popular()
    assert tmdb.total_requests == 1

    clock.now += 2
    await client.popular()
    assert tmdb.total_requests == 2


async def test_details_expire_after_a_day(
    client: TmdbClient, tmdb: FakeTmdb, clock: FakeClock
) -> None:
    await client.movie(INCEPTION)
    clock.now += LIST_TTL + 1
    await client.movie(INCEPTION)
    clock.now += DETAILS_TTL - LIST_TTL - 2
    await client.movie(INCEPTION)
    assert tmdb.total_requests == 1

    clock.now += 2
    await client.movie(INCEPTION)
    assert tmdb.total_requests == 2


async def test_not_found_is_not_cached(client: TmdbClient, tmdb: FakeTmdb) -> None:
    for _ in range(2):
        with pytest.raises(NotFound):
            await client.movie(UNKNOWN_MOVIE_ID)

    assert tmdb.total_requests == 2
    assert cache_rows(client._store) == []


# --------------------------------------------------------------------------- images


async def test_poster_and_logo_images(client: TmdbClient, tmdb: FakeTmdb) -> None:
    poster = await client.image("w342", "/fcPoster550a1B2c3D4e5F6g7H8i.jpg")
    logo = await client.image("w92", "/logoRegency508.png")

    assert poster == (JPEG, "image/jpeg")
    assert logo == (PNG, "image/png")
    assert tmdb.requests["/t/p/w342/fcPoster550a1B2c3D4e5F6g7H8i.jpg"] == 1
    # the image CDN is another host: the token is not sent there
    assert all(r.authorization is None for r in tmdb.received)
    assert all("api_key" not in r.params and "language" not in r.params for r in tmdb.received)


async def test_every_poster_in_the_data_is_served(client: TmdbClient) -> None:
    for movie in MOVIES:
        if movie.poster_path:
            content, content_type = await client.image("w185", movie.poster_path)
            assert (content, content_type) == (JPEG, "image/jpeg")


async def test_missing_image(client: TmdbClient) -> None:
    with pytest.raises(NotFound, match=r"no image w500/nothingHere123\.jpg on TMDB"):
        await client.image("w500", "/nothingHere123.jpg")


async def test_image_server_errors(client: TmdbClient, tmdb: FakeTmdb) -> None:
    tmdb.fail(status=503)
    tmdb.reply(200, "<html>login</html>", content_type="text/html")

    with pytest.raises(TmdbError, match="HTTP 503"):
        await client.image("w342", "/fcPoster550a1B2c3D4e5F6g7H8i.jpg")
    with pytest.raises(TmdbError, match="sent text/html instead of the image"):
        await client.image("w342", "/fcPoster550a1B2c3D4e5F6g7H8i.jpg")


async def test_images_work_without_credentials(tmdb: FakeTmdb, make_client: ClientFactory) -> None:
    client = make_client(tmdb.config(token=None, api_key=None))

    assert (await client.image("original", "/logoGhibli10342.png"))[1] == "image/png"


# --------------------------------------------------------------------------- real captures


def _capture(shared: Path, name: str) -> Any:
    return json.loads((shared / "tmdb" / name).read_text(encoding="utf-8"))


LIST_CAPTURES = [
    "18months_movie_550_similar.json",
    "18months_movie_popular.json",
    "18months_movie_top_rated.json",
    "18months_search_movie_disney.json",
    "ceg_movie_popular.json",
    "ceg_movie_similar.json",
    "ceg_movie_top_rated.json",
    "ceg_search_movie_page1.json",
    "flexget_search_movie_the_matrix.json",
    "jdrouet_movie_550_similar.json",
    "jdrouet_movie_popular.json",
    "jdrouet_movie_top_rated.json",
    "jdrouet_search_movie_RRRrrrr.json",
]


@pytest.mark.parametrize("name", LIST_CAPTURES)
def test_captured_lists_parse(shared_fixtures: Path, name: str) -> None:
    raw = _capture(shared_fixtures, name)

    page = parse_movie_page(raw)

    assert page["page"] == raw["page"]
    assert page["total_pages"] == min(raw["total_pages"], MAX_PAGE)
    assert page["total_results"] == raw["total_results"]
    assert [movie["id"] for movie in page["results"]] == [movie["id"] for movie in raw["results"]]
    for movie, original in zip(page["results"], raw["results"], strict=True):
        assert set(movie) == MOVIE_KEYS
        assert movie["title"] == original["title"]
        assert movie["poster_path"] == (original.get("poster_path") or None)
        date = original.get("release_date") or None
        assert movie["release_date"] == date
        assert movie["year"] == (int(date[:4]) if date else None)
        assert movie["genre_ids"] == original["genre_ids"]
        json.dumps(movie, allow_nan=False)  # JSON-ready


@pytest.mark.parametrize(
    ("name", "title", "imdb_id", "year"),
    [
        ("18months_movie_550.json", "Fight Club", "tt0137523", 1999),
        ("jdrouet_movie_550.json", "Fight Club", "tt0137523", 1999),
        ("ceg_movie_550_details.json", "Fight Club", "tt0137523", 1999),
        ("flexget_movie_603_append_alternative_titles.json", "The Matrix", "tt0133093", 1999),
        ("ceg_movie_details_with_append_to_response.json", "Rock Crystal", "tt0409732", 2004),
    ],
)
def test_captured_details_parse(
    shared_fixtures: Path, name: str, title: str, imdb_id: str, year: int
) -> None:
    raw = _capture(shared_fixtures, name)

    details = parse_movie_details(raw)

    assert (details["title"], details["imdb_id"], details["year"]) == (title, imdb_id, year)
    assert details["genres"] == raw["genres"]
    assert details["runtime"] == raw["runtime"]
    assert len(details["production_companies"]) == len(raw["production_companies"])
    if "credits" not in raw:
        assert (details["cast"], details["crew"]) == ([], [])
    json.dumps(details, allow_nan=False)


def test_captured_credits_are_billed_and_ranked(shared_fixtures: Path) -> None:
    rock_crystal = parse_movie_details(
        _capture(shared_fixtures, "ceg_movie_details_with_append_to_response.json")
    )
    # what TMDB sends for /movie/550?append_to_response=credits: the two captures together
    fight_club = parse_movie_details(
        {
            **_capture(shared_fixtures, "jdrouet_movie_550.json"),
            "credits": _capture(shared_fixtures, "jdrouet_movie_550_credits.json"),
        }
    )

    assert len(rock_crystal["cast"]) == 20  # of 25
    assert rock_crystal["cast"][0]["name"] == "Dana Vávrová"
    assert (rock_crystal["crew"][0]["name"], rock_crystal["crew"][0]["job"]) == (
        "Joseph Vilsmaier",
        "Director",
    )
    assert [m["name"] for m in fight_club["cast"][:2]] == ["Edward Norton", "Brad Pitt"]
    assert [m["order"] for m in fight_club["cast"]] == list(range(20))  # of 76
    crew = fight_club["crew"]
    assert len(crew) == 20  # of 187
    assert (crew[0]["name"], crew[0]["job"]) == ("David Fincher", "Director")
    writers = {m["name"] for m in crew if m["department"] == "Writing"}
    assert {"Chuck Palahniuk", "Jim Uhls"} <= writers
    ranks = [
        0 if m["job"] == "Director" else 1 if m["department"] == "Writing" else 2 for m in crew
    ]
    assert ranks[: ranks.index(2)] == sorted(ranks[: ranks.index(2)])


async def test_captured_replies_through_the_client(
    shared_fixtures: Path, client: TmdbClient, tmdb: FakeTmdb
) -> None:
    folder = shared_fixtures / "tmdb"
    tmdb.reply(200, (folder / "18months_search_movie_disney.json").read_bytes())
    tmdb.reply(200, (folder / "18months_movie_550.json").read_bytes())
    tmdb.reply(404, (folder / "jdrouet_error_status34_resource_not_found.json").read_bytes())
    tmdb.reply(401, (folder / "jdrouet_error_status7_invalid_api_key.json").read_bytes())
    tmdb.reply(422, (folder / "jdrouet_error_validation_query_must_be_provided.json").read_bytes())

    search = await client.search("Disney")
    details = await client.movie(FIGHT_CLUB)
    with pytest.raises(NotFound, match="no movie with id 238 on TMDB"):
        await client.movie(THE_GODFATHER)
    with pytest.raises(TmdbError, match="refused the v4 read access token: Invalid API key"):
        await client.popular()
    with pytest.raises(TmdbError, match="query must be provided"):
        await client.top_rated()

    assert len(search["results"]) == 20
    assert details["tagline"] == "Mischief. Mayhem. Soap."
    assert details["genres"][0] == {"id": 18, "name": "Drama"}


async def test_redirects_are_followed_only_to_tmdbs_own_hosts(
    fake_tmdb: FakeTmdbFactory, make_client: ClientFactory
) -> None:
    tmdb = await fake_tmdb()
    elsewhere = await fake_tmdb()  # stands for any other host on the network
    client = make_client(tmdb.config())
    tmdb.reply(302, "", headers={"Location": f"{elsewhere.url}/movie/popular?page=1"})
    with pytest.raises(TmdbError, match="not a configured TMDB host") as caught:
        await client.popular()
    assert "api_key" not in str(caught.value)
    assert elsewhere.total_requests == 0  # not a single request went there
    # A redirect within TMDB's own host is followed as before.
    tmdb.reply(302, "", headers={"Location": f"{tmdb.url}/movie/popular?page=1"})
    assert (await client.popular())["results"]
