"""A small TMDB on loopback: the v3 movie endpoints and the image CDN, with faults on demand.

Its replies have the shape and quirks of the real API (modelled on the captures described in
../shared/fixtures/SOURCES.md, "tmdb/"): ``""`` release dates, ``null`` posters, ``genre_ids`` in
lists and ``genres`` in details, credits only when ``append_to_response=credits`` asks, TMDB's
error bodies (``status_code`` 7 for a wrong key, 34 for an unknown id, 25 for a 429). The data
is this repository's own: eight movies, listed in ``MOVIES``.

Use it through the ``fake_tmdb`` fixture (registered in tests/conftest.py)::

    async def test_popular(fake_tmdb, ...):
        tmdb = await fake_tmdb()              # started now, stopped at teardown
        settings = Settings(tmdb=tmdb.config())   # token auth against this server
        ...
        assert tmdb.requests["/movie/popular"] == 1

Server API (`FakeTmdb`):

* ``url`` — the API base (``http://127.0.0.1:PORT/3``), ``image_url`` — the image base
  (``http://127.0.0.1:PORT/t/p``); ``config(**overrides)`` — a `TmdbConfig` for both, with
  ``token=TOKEN`` unless overridden (pass ``token=None, api_key=API_KEY`` for v3 auth).
* Routes (under ``/3``): ``/search/movie?query=`` (case- and accent-insensitive substring of any
  title; 422 without a query), ``/movie/popular`` (by popularity), ``/movie/top_rated`` (by
  vote average, movies with votes only), ``/movie/{id}`` (``append_to_response=credits``
  adds ``credits``), ``/movie/{id}/similar`` (sharing a genre, by popularity). Every list
  takes ``page`` (1..500, else 400 with TMDB's status 22) and pages ``page_size`` results
  (20, as TMDB). ``language`` picks a movie's translated title when it has one (``titles``).
  Images: ``/t/p/{size}/{file}`` for every poster, backdrop, profile and logo path in the
  data (a real tiny JPEG or PNG); anything else is 404. Images need no credentials.
* Credentials: ``token`` (Bearer) and ``api_key`` (query) that the API accepts; either works,
  as on TMDB. Anything else is 401 with TMDB's status 7 body. Both None: no check at all.
* Faults, consumed one per request (API or image) in the order scripted:
  ``rate_limit(times, retry_after="1")`` — 429 with ``Retry-After`` (None: no header);
  ``fail(times, status=500)``; ``not_json(times)`` — 200 with an HTML page;
  ``reply(status, body, content_type=..., headers=...)`` — any raw reply, e.g. a capture.
  ``delay`` (seconds, default 0) stalls every request before it is answered (ends at stop).
* Observation: ``requests`` — a Counter of paths relative to the base (``"/movie/550"``,
  ``"/t/p/w342/….jpg"``), every request counted, faulted or not; ``received`` — a list of
  `Received(path, params, authorization)` with the query parameters as sent;
  ``total_requests``.

Data (module level): ``MOVIES`` (tuple of `FakeMovie`, with ``.id`` and ``.title`` and the rest),
``movie_by_id(id)``, and the ids by name: ``FIGHT_CLUB``, ``THE_MATRIX``, ``SPIRITED_AWAY``
(Japanese original title), ``AMELIE`` (non-ASCII title "Amélie"), ``THE_GODFATHER`` (top rated),
``INCEPTION`` (most popular; 25 cast listed out of billing order and 30 crew),
``NOSFERATU`` (no poster, no backdrop), ``UNRELEASED`` (no release date, runtime or IMDb id,
no votes, no credits), ``UNKNOWN_MOVIE_ID`` (not on this TMDB: 404). ``TOKEN``, ``API_KEY``.
``JPEG``/``PNG`` are the image bytes served.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import unicodedata
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.config.settings import TmdbConfig
from tests.support.servers import server_factory

TOKEN = "fake-tmdb-v4-read-access-token-1b2c3d4e5f"
API_KEY = "0123456789abcdef0123456789abcdef"

FIGHT_CLUB = 550
THE_MATRIX = 603
SPIRITED_AWAY = 129
AMELIE = 194
THE_GODFATHER = 238
INCEPTION = 27205
NOSFERATU = 653
UNRELEASED = 999001
UNKNOWN_MOVIE_ID = 404404

PAGE_LIMIT = 500

GENRES = {
    12: "Adventure",
    14: "Fantasy",
    16: "Animation",
    18: "Drama",
    27: "Horror",
    28: "Action",
    35: "Comedy",
    53: "Thriller",
    80: "Crime",
    878: "Science Fiction",
    10749: "Romance",
    10751: "Family",
}

#: A 2x2 baseline JPEG (made once with ffmpeg) and a 1x1 PNG: real images a browser decodes.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgUFBcUFxsbGxsbGyAeICEhISAgICAh"
    "ISEkJCQqKiokJCQhISQkKCgqKi4vLisrKisvLzIyMjw8OTlGRkhWVmf/xABMAAEBAAAAAAAAAAAAAAAAAAAABgEB"
    "AQAAAAAAAAAAAAAAAAAABgcQAQAAAAAAAAAAAAAAAAAAAAARAQAAAAAAAAAAAAAAAAAAAAD/wAARCAACAAIDASIA"
    "AhEAAxEA/9oADAMBAAIRAxEAPwCbAUshf//Z"
)


def _png_1x1(rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00" + bytes(rgb))  # filter byte 0, one pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png_1x1((138, 43, 226))


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    #: The character for cast, the job for crew.
    role: str
    department: str = "Acting"
    profile_path: str | None = None
    #: Billing order for cast (TMDB's ``order``).
    order: int = 0


@dataclass(frozen=True)
class FakeMovie:
    id: int
    title: str
    original_title: str
    original_language: str
    release_date: str  # "" when unknown, as TMDB sends it
    overview: str
    genre_ids: tuple[int, ...]
    poster_path: str | None
    backdrop_path: str | None
    vote_average: float
    vote_count: int
    popularity: float
    runtime: int  # 0 when unknown, as TMDB sends it
    imdb_id: str | None
    tagline: str
    budget: int
    revenue: int
    status: str = "Released"
    #: (id, name, logo_path, origin_country)
    companies: tuple[tuple[int, str, str | None, str], ...] = ()
    #: In the order TMDB lists them.
    cast: tuple[Person, ...] = ()
    crew: tuple[Person, ...] = ()
    #: language (as in ?language=) -> title in that language.
    titles: Mapping[str, str] = field(default_factory=dict)

    @property
    def year(self) -> int | None:
        return int(self.release_date[:4]) if self.release_date else None

    def title_in(self, language: str | None) -> str:
        return self.titles.get(language or "", self.title)


def _inception_cast() -> tuple[Person, ...]:
    billed = [
        Person(6193, "Leonardo DiCaprio", "Dom Cobb", profile_path="/pLdc6193Dicaprio.jpg"),
        Person(24045, "Joseph Gordon-Levitt", "Arthur", profile_path="/pJgl24045Arthur.jpg"),
        Person(27578, "Elliot Page", "Ariadne", profile_path="/pEp27578Ariadne.jpg"),
        Person(2524, "Tom Hardy", "Eames", profile_path="/pTh2524Eames.jpg"),
        Person(3899, "Ken Watanabe", "Saito", profile_path=None),
    ]
    extras = [Person(900_000 + n, f"Dream Guest {n}", f"Projection #{n}") for n in range(1, 21)]
    people = [
        Person(p.id, p.name, p.role, p.department, p.profile_path, order)
        for order, p in enumerate(billed + extras)
    ]
    # TMDB mostly lists cast in billing order, but not always; here the reverse, so that a
    # client that trusts the listing instead of ``order`` shows the extras first.
    return tuple(reversed(people))


def _inception_crew() -> tuple[Person, ...]:
    # TMDB lists crew roughly by department, so the director is nowhere near the top.
    art = [Person(910_000 + n, f"Art Hand {n}", "Set Decoration", "Art") for n in range(1, 13)]
    effects = [
        Person(920_000 + n, f"Effects Artist {n}", "Visual Effects", "Visual Effects")
        for n in range(1, 11)
    ]
    return (
        *art,
        Person(559, "Wally Pfister", "Director of Photography", "Camera"),
        Person(525, "Christopher Nolan", "Director", "Directing", "/pCn525Nolan.jpg"),
        Person(3905, "Lee Smith", "Editor", "Editing"),
        Person(556, "Emma Thomas", "Producer", "Production"),
        Person(525, "Christopher Nolan", "Producer", "Production", "/pCn525Nolan.jpg"),
        Person(947, "Hans Zimmer", "Original Music Composer", "Sound"),
        *effects,
        Person(525, "Christopher Nolan", "Writer", "Writing", "/pCn525Nolan.jpg"),
        Person(1, "Thomas Tull", "Executive Producer", "Production"),
    )


MOVIES: tuple[FakeMovie, ...] = (
    FakeMovie(
        id=FIGHT_CLUB,
        title="Fight Club",
        original_title="Fight Club",
        original_language="en",
        release_date="1999-10-15",
        overview=(
            "An insomniac office worker and a reckless soap maker start an underground "
            "fight club that grows into something far more dangerous."
        ),
        genre_ids=(18, 53),
        poster_path="/fcPoster550a1B2c3D4e5F6g7H8i.jpg",
        backdrop_path="/fcBackdrop550j9K8l7M6n5O4p.jpg",
        vote_average=8.438,
        vote_count=29876,
        popularity=61.416,
        runtime=139,
        imdb_id="tt0137523",
        tagline="Mischief. Mayhem. Soap.",
        budget=63_000_000,
        revenue=100_853_753,
        companies=(
            (508, "Regency Enterprises", "/logoRegency508.png", "US"),
            (711, "Fox 2000 Pictures", "/logoFox2000x711.png", "US"),
            (54051, "Atman Entertainment", None, ""),
        ),
        cast=(
            Person(819, "Edward Norton", "Narrator", profile_path="/pEn819Norton.jpg", order=0),
            Person(287, "Brad Pitt", "Tyler Durden", profile_path="/pBp287Pitt.jpg", order=1),
            Person(1283, "Helena Bonham Carter", "Marla Singer", order=2),
            Person(7470, "Meat Loaf", "Robert 'Bob' Paulson", order=3),
            Person(7499, "Jared Leto", "Angel Face", order=4),
        ),
        crew=(
            Person(7475, "Jeff Cronenweth", "Director of Photography", "Camera"),
            Person(7476, "James Haygood", "Editor", "Editing"),
            Person(7467, "David Fincher", "Director", "Directing", "/pDf7467Fincher.jpg"),
            Person(7474, "Art Linson", "Producer", "Production"),
            Person(7479, "Ceán Chaffin", "Producer", "Production"),
            Person(7477, "Arnon Milchan", "Executive Producer", "Production"),
            Person(7478, "The Dust Brothers", "Original Music Composer", "Sound"),
            Person(7468, "Chuck Palahniuk", "Novel", "Writing"),
            Person(7469, "Jim Uhls", "Screenplay", "Writing"),
        ),
    ),
    FakeMovie(
        id=THE_MATRIX,
        title="The Matrix",
        original_title="The Matrix",
        original_language="en",
        release_date="1999-03-31",
        overview=(
            "A hacker learns that the world he lives in is a simulation and joins the rebels "
            "fighting the machines that built it."
        ),
        genre_ids=(28, 878),
        poster_path="/mxPoster603q1W2e3R4t5Y6u7I8o.jpg",
        backdrop_path="/mxBackdrop603p0O9i8U7y6T5r.jpg",
        vote_average=8.2,
        vote_count=25431,
        popularity=80.25,
        runtime=136,
        imdb_id="tt0133093",
        tagline="Welcome to the Real World.",
        budget=63_000_000,
        revenue=463_517_383,
        companies=((79, "Village Roadshow Pictures", "/logoVillage79.png", "US"),),
        cast=(
            Person(6384, "Keanu Reeves", "Thomas A. Anderson / Neo", order=0),
            Person(2975, "Laurence Fishburne", "Morpheus", order=1),
            Person(530, "Carrie-Anne Moss", "Trinity", order=2),
        ),
        crew=(
            Person(9340, "Lana Wachowski", "Director", "Directing"),
            Person(9339, "Lilly Wachowski", "Director", "Directing"),
            Person(1091, "Joel Silver", "Producer", "Production"),
            Person(9340, "Lana Wachowski", "Writer", "Writing"),
            Person(9339, "Lilly Wachowski", "Writer", "Writing"),
        ),
        titles={"fr-FR": "Matrix"},
    ),
    FakeMovie(
        id=SPIRITED_AWAY,
        title="Spirited Away",
        original_title="千と千尋の神隠し",
        original_language="ja",
        release_date="2001-07-20",
        overview=(
            "A girl wanders into a world of spirits and must work in a bathhouse for the gods "
            "to free herself and her parents."
        ),
        genre_ids=(16, 10751, 14),
        poster_path="/saPoster129z9X8c7V6b5N4m3L2k.jpg",
        backdrop_path="/saBackdrop129a2S3d4F5g6H7j.jpg",
        vote_average=8.5,
        vote_count=16244,
        popularity=90.12,
        runtime=125,
        imdb_id="tt0245429",
        tagline="",
        budget=19_000_000,
        revenue=274_925_095,
        companies=((10342, "Studio Ghibli", "/logoGhibli10342.png", "JP"),),
        cast=(
            Person(19587, "Rumi Hiiragi", "Chihiro Ogino (voice)", order=0),
            Person(19588, "Miyu Irino", "Haku (voice)", order=1),
        ),
        crew=(
            Person(608, "Hayao Miyazaki", "Director", "Directing", "/pHm608Miyazaki.jpg"),
            Person(608, "Hayao Miyazaki", "Screenplay", "Writing", "/pHm608Miyazaki.jpg"),
            Person(1417, "Toshio Suzuki", "Producer", "Production"),
            Person(636, "Joe Hisaishi", "Original Music Composer", "Sound"),
        ),
        titles={"ja-JP": "千と千尋の神隠し", "fr-FR": "Le Voyage de Chihiro"},
    ),
    FakeMovie(
        id=AMELIE,
        title="Amélie",
        original_title="Le Fabuleux Destin d'Amélie Poulain",
        original_language="fr",
        release_date="2001-04-25",
        overview=(
            "A shy waitress in Montmartre decides to quietly change the lives of the people "
            "around her, and then has to find the courage to change her own."
        ),
        genre_ids=(35, 10749),
        poster_path="/amPoster194k1J2h3G4f5D6s7A8q.jpg",
        backdrop_path="/amBackdrop194w2E3r4T5y6U7i.jpg",
        vote_average=7.9,
        vote_count=11120,
        popularity=35.5,
        runtime=122,
        imdb_id="tt0211915",
        tagline="One person can change your life forever.",
        budget=10_000_000,
        revenue=174_000_000,
        companies=((2419, "Claudie Ossard Productions", None, "FR"),),
        cast=(
            Person(3274, "Audrey Tautou", "Amélie Poulain", order=0),
            Person(2406, "Mathieu Kassovitz", "Nino Quincampoix", order=1),
        ),
        crew=(
            Person(2419, "Jean-Pierre Jeunet", "Director", "Directing"),
            Person(2420, "Guillaume Laurant", "Screenplay", "Writing"),
        ),
        titles={"fr-FR": "Le Fabuleux Destin d'Amélie Poulain"},
    ),
    FakeMovie(
        id=THE_GODFATHER,
        title="The Godfather",
        original_title="The Godfather",
        original_language="en",
        release_date="1972-03-14",
        overview=(
            "The ageing head of a New York crime family hands his empire to his youngest son, "
            "who never wanted any part of it."
        ),
        genre_ids=(18, 80),
        poster_path="/gfPoster238m1N2b3V4c5X6z7L8k.jpg",
        backdrop_path="/gfBackdrop238j1H2g3F4d5S6a.jpg",
        vote_average=8.7,
        vote_count=20318,
        popularity=110.9,
        runtime=175,
        imdb_id="tt0068646",
        tagline="An offer you can't refuse.",
        budget=6_000_000,
        revenue=245_066_411,
        companies=((4, "Paramount Pictures", "/logoParamount4.png", "US"),),
        cast=(
            Person(3084, "Marlon Brando", "Don Vito Corleone", order=0),
            Person(1158, "Al Pacino", "Michael Corleone", order=1),
        ),
        crew=(
            Person(1776, "Francis Ford Coppola", "Director", "Directing"),
            Person(3083, "Mario Puzo", "Novel", "Writing"),
            Person(1776, "Francis Ford Coppola", "Screenplay", "Writing"),
            Person(3085, "Albert S. Ruddy", "Producer", "Production"),
        ),
    ),
    FakeMovie(
        id=INCEPTION,
        title="Inception",
        original_title="Inception",
        original_language="en",
        release_date="2010-07-15",
        overview=(
            "A thief who steals secrets from inside dreams is offered a way home if he can "
            "plant an idea instead."
        ),
        genre_ids=(28, 878, 12),
        poster_path="/inPoster27205o9I8u7Y6t5R4e3W.jpg",
        backdrop_path="/inBackdrop27205q2W3e4R5t6Y.jpg",
        vote_average=8.369,
        vote_count=36512,
        popularity=152.7,
        runtime=148,
        imdb_id="tt1375666",
        tagline="Your mind is the scene of the crime.",
        budget=160_000_000,
        revenue=825_532_764,
        companies=(
            (923, "Legendary Pictures", "/logoLegendary923.png", "US"),
            (9996, "Syncopy", "/logoSyncopy9996.png", "GB"),
        ),
        cast=_inception_cast(),
        crew=_inception_crew(),
    ),
    FakeMovie(
        id=NOSFERATU,
        title="Nosferatu",
        original_title="Nosferatu, eine Symphonie des Grauens",
        original_language="de",
        release_date="1922-03-04",
        overview=(
            "An estate agent travels to the Carpathians to sell a house to a count who turns "
            "out to be something far older."
        ),
        genre_ids=(27,),
        poster_path=None,
        backdrop_path=None,
        vote_average=7.7,
        vote_count=2105,
        popularity=12.3,
        runtime=94,
        imdb_id="tt0013442",
        tagline="",
        budget=0,
        revenue=0,
        cast=(Person(5274, "Max Schreck", "Count Orlok", order=0),),
        crew=(Person(5268, "F. W. Murnau", "Director", "Directing"),),
    ),
    FakeMovie(
        id=UNRELEASED,
        title="The Lighthouse Keeper's Daughter",
        original_title="The Lighthouse Keeper's Daughter",
        original_language="en",
        release_date="",
        overview="",
        genre_ids=(18,),
        poster_path="/lhPoster999001n1M2b3V4c5X6z.jpg",
        backdrop_path=None,
        vote_average=0.0,
        vote_count=0,
        popularity=3.1,
        runtime=0,
        imdb_id=None,
        tagline="",
        budget=0,
        revenue=0,
        status="In Production",
    ),
)

_BY_ID = {movie.id: movie for movie in MOVIES}


def movie_by_id(movie_id: int) -> FakeMovie:
    return _BY_ID[movie_id]


def _image_paths() -> set[str]:
    paths: set[str] = set()
    for movie in MOVIES:
        paths.update(p for p in (movie.poster_path, movie.backdrop_path) if p)
        paths.update(p.profile_path for p in (*movie.cast, *movie.crew) if p.profile_path)
        paths.update(logo for _, _, logo, _ in movie.companies if logo)
    return paths


IMAGE_PATHS = frozenset(_image_paths())
IMAGE_SIZES = frozenset(
    {"w45", "w92", "w154", "w185", "w300", "w342", "w500", "w780", "w1280", "h632", "original"}
)


# --------------------------------------------------------------------------- TMDB's JSON


def _list_entry(movie: FakeMovie, language: str | None) -> dict[str, Any]:
    return {
        "adult": False,
        "backdrop_path": movie.backdrop_path,
        "genre_ids": list(movie.genre_ids),
        "id": movie.id,
        "original_language": movie.original_language,
        "original_title": movie.original_title,
        "overview": movie.overview,
        "popularity": movie.popularity,
        "poster_path": movie.poster_path,
        "release_date": movie.release_date,
        "title": movie.title_in(language),
        "video": False,
        "vote_average": movie.vote_average,
        "vote_count": movie.vote_count,
    }


def _credit_id(movie: FakeMovie, index: int, person: Person) -> str:
    return f"{movie.id:08x}{person.id:08x}{index:08x}"


def _person(person: Person) -> dict[str, Any]:
    return {
        "adult": False,
        "gender": 0,
        "id": person.id,
        "known_for_department": person.department,
        "name": person.name,
        "original_name": person.name,
        "popularity": 1.4,
        "profile_path": person.profile_path,
    }


def _details(movie: FakeMovie, language: str | None, credits: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "adult": False,
        "backdrop_path": movie.backdrop_path,
        "belongs_to_collection": None,
        "budget": movie.budget,
        "genres": [{"id": g, "name": GENRES[g]} for g in movie.genre_ids],
        "homepage": "",
        "id": movie.id,
        "imdb_id": movie.imdb_id,
        "original_language": movie.original_language,
        "original_title": movie.original_title,
        "overview": movie.overview,
        "popularity": movie.popularity,
        "poster_path": movie.poster_path,
        "production_companies": [
            {"id": cid, "logo_path": logo, "name": name, "origin_country": country}
            for cid, name, logo, country in movie.companies
        ],
        "production_countries": [],
        "release_date": movie.release_date,
        "revenue": movie.revenue,
        "runtime": movie.runtime,
        "spoken_languages": [],
        "status": movie.status,
        "tagline": movie.tagline,
        "title": movie.title_in(language),
        "video": False,
        "vote_average": movie.vote_average,
        "vote_count": movie.vote_count,
    }
    if credits:
        data["credits"] = {
            "cast": [
                {
                    **_person(p),
                    "cast_id": i + 1,
                    "character": p.role,
                    "credit_id": _credit_id(movie, i, p),
                    "order": p.order,
                }
                for i, p in enumerate(movie.cast)
            ],
            "crew": [
                {
                    **_person(p),
                    "credit_id": _credit_id(movie, 1000 + i, p),
                    "department": p.department,
                    "job": p.role,
                }
                for i, p in enumerate(movie.crew)
            ],
        }
    return data


def _error(status: int, code: int, message: str) -> web.Response:
    body = {"success": False, "status_code": code, "status_message": message}
    return web.json_response(body, status=status)


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, as TMDB's search treats "amelie" and "Amélie"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Received:
    #: Relative to the API base ("/movie/550") or the server root for images ("/t/p/...").
    path: str
    params: dict[str, str]
    authorization: str | None


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]


class FakeTmdb:
    """One fake TMDB; see the module docstring for what it answers and how to script it."""

    def __init__(
        self,
        *,
        token: str | None = TOKEN,
        api_key: str | None = API_KEY,
        page_size: int = 20,
        movies: Iterable[FakeMovie] = MOVIES,
    ) -> None:
        self.token = token
        self.api_key = api_key
        self.page_size = page_size
        self.movies = {movie.id: movie for movie in movies}
        self.delay = 0.0
        self.requests: Counter[str] = Counter()
        self.received: list[Received] = []
        self._script: deque[_Scripted] = deque()
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get("/3/search/movie", self._search)
        app.router.add_get("/3/movie/popular", self._popular)
        app.router.add_get("/3/movie/top_rated", self._top_rated)
        app.router.add_get("/3/movie/{id}", self._movie)
        app.router.add_get("/3/movie/{id}/similar", self._similar)
        app.router.add_get("/t/p/{size}/{file}", self._image)
        app.middlewares.append(self._middleware)
        self._server = TestServer(app, host="127.0.0.1")

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        await self._server.start_server()

    async def stop(self) -> None:
        self._closing.set()
        await self._server.close()

    @property
    def url(self) -> str:
        return str(self._server.make_url("/3"))

    @property
    def image_url(self) -> str:
        return str(self._server.make_url("/t/p"))

    def config(self, **overrides: Any) -> TmdbConfig:
        """A TmdbConfig pointing at this server; token auth unless overridden."""
        values: dict[str, Any] = {
            "token": self.token,
            "api_key": None,
            "base_url": self.url,
            "image_base_url": self.image_url,
        }
        values.update(overrides)
        return TmdbConfig(**values)

    @property
    def total_requests(self) -> int:
        return self.requests.total()

    # -- scripting -------------------------------------------------------------------
    def reply(
        self,
        status: int,
        body: bytes | str,
        *,
        content_type: str = "application/json;charset=utf-8",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with exactly this, whatever they ask."""
        raw = body.encode() if isinstance(body, str) else body
        for _ in range(times):
            self._script.append(_Scripted(status, raw, content_type, dict(headers or {})))

    def rate_limit(self, times: int = 1, retry_after: str | None = "1") -> None:
        body = json.dumps(
            {
                "success": False,
                "status_code": 25,
                "status_message": "Your request count (#) is over the allowed limit of (40).",
            }
        )
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.reply(429, body, headers=headers, times=times)

    def fail(self, times: int = 1, status: int = 500) -> None:
        body = json.dumps(
            {
                "success": False,
                "status_code": 11,
                "status_message": "Internal error: Something went wrong, contact TMDb.",
            }
        )
        self.reply(status, body, times=times)

    def not_json(self, times: int = 1) -> None:
        page = "<html><body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>"
        self.reply(200, page, content_type="text/html", times=times)

    # -- handlers --------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path.removeprefix("/3") if request.path.startswith("/3/") else request.path
        self.requests[path] += 1
        self.received.append(
            Received(path, dict(request.query), request.headers.get("Authorization"))
        )
        if self.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        if self._script:
            scripted = self._script.popleft()
            return web.Response(
                status=scripted.status,
                body=scripted.body,
                headers={"Content-Type": scripted.content_type, **scripted.headers},
            )
        if path.startswith("/t/p/"):
            return await handler(request)
        if not self._authorised(request):
            return _error(401, 7, "Invalid API key: You must be granted a valid key.")
        return await handler(request)

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None and self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        if self.token is not None and bearer == f"Bearer {self.token}":
            return True
        return self.api_key is not None and request.query.get("api_key") == self.api_key

    def _page(self, request: web.Request, movies: list[FakeMovie]) -> web.Response:
        raw = request.query.get("page", "1")
        page = int(raw) if raw.isdigit() else 0
        if not 1 <= page <= PAGE_LIMIT:
            return _error(
                400,
                22,
                "Invalid page: Pages start at 1 and max at 500. "
                "They are expected to be an integer.",
            )
        language = request.query.get("language")
        start = (page - 1) * self.page_size
        chosen = movies[start : start + self.page_size]
        return web.json_response(
            {
                "page": page,
                "results": [_list_entry(m, language) for m in chosen],
                "total_pages": -(-len(movies) // self.page_size),
                "total_results": len(movies),
            }
        )

    def _lookup(self, request: web.Request) -> FakeMovie | None:
        raw = request.match_info["id"]
        return self.movies.get(int(raw)) if raw.isdigit() else None

    async def _search(self, request: web.Request) -> web.Response:
        query = _fold(request.query.get("query", "").strip())
        if not query:
            return web.json_response({"errors": ["query must be provided"]}, status=422)
        found = [
            m
            for m in self.movies.values()
            if any(query in _fold(t) for t in (m.title, m.original_title, *m.titles.values()))
        ]
        return self._page(request, sorted(found, key=lambda m: -m.popularity))

    async def _popular(self, request: web.Request) -> web.Response:
        return self._page(request, sorted(self.movies.values(), key=lambda m: -m.popularity))

    async def _top_rated(self, request: web.Request) -> web.Response:
        rated = [m for m in self.movies.values() if m.vote_count > 0]
        return self._page(request, sorted(rated, key=lambda m: -m.vote_average))

    async def _movie(self, request: web.Request) -> web.Response:
        movie = self._lookup(request)
        if movie is None:
            return _error(404, 34, "The resource you requested could not be found.")
        appended = request.query.get("append_to_response", "").split(",")
        language = request.query.get("language")
        return web.json_response(_details(movie, language, "credits" in appended))

    async def _similar(self, request: web.Request) -> web.Response:
        movie = self._lookup(request)
        if movie is None:
            return _error(404, 34, "The resource you requested could not be found.")
        alike = [
            m
            for m in self.movies.values()
            if m.id != movie.id and set(m.genre_ids) & set(movie.genre_ids)
        ]
        return self._page(request, sorted(alike, key=lambda m: -m.popularity))

    async def _image(self, request: web.Request) -> web.Response:
        size, name = request.match_info["size"], "/" + request.match_info["file"]
        if size not in IMAGE_SIZES or name not in IMAGE_PATHS:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if name.endswith(".png"):
            return web.Response(body=PNG, content_type="image/png")
        return web.Response(body=JPEG, content_type="image/jpeg")


# --------------------------------------------------------------------------- fixture


class FakeTmdbFactory(Protocol):
    def __call__(self, **options: Any) -> Awaitable[FakeTmdb]: ...


@pytest.fixture
async def fake_tmdb() -> AsyncIterator[FakeTmdbFactory]:
    """`tmdb = await fake_tmdb(**options)`: a FakeTmdb started now, stopped at teardown."""
    async with server_factory(FakeTmdb) as start:
        yield start
