"""The TMDB client: movie lists, details with credits, and poster images, cached in SQLite.

`TmdbClient` turns TMDB's v3 JSON into the JSON API's shapes (`MoviePage`, `MovieDetails`,
handed out as plain dicts ready for ``json_response``) and translates every failure, once, into
our own errors: TMDB's 404 becomes `NotFound`, everything else that goes wrong on TMDB's side
(wrong key, rate limit, 5xx, timeouts, garbage) becomes `TmdbError` (502) with a message a
person can act on. Input that can never succeed (an empty
query, a page beyond 500, an id that is not a positive integer) is refused before any request
with `InvalidInput`.

Authentication: the v4 read access token goes in ``Authorization: Bearer``; without one, the v3
key goes in the ``api_key`` query parameter. Neither ever reaches an exception message, a log
line or a cache key: cache keys are built from the path and the other parameters only, and any
text that could echo the request URL (aiohttp's exceptions, TMDB's own messages) is scrubbed.

Caching: successful replies are stored already parsed (small, and the same for every caller)
through `Store.cache_get`/`cache_put` — lists for an hour, details for a day. Errors are never
cached, so a fixed key or a recovered TMDB is seen on the next request.

The parsing functions (`parse_movie_page`, `parse_movie_details`) are pure and public so that
captured TMDB replies can be fed to them directly.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, cast
from urllib.parse import urlencode, urlsplit

import aiohttp

from server.config.settings import TmdbConfig
from server.discovery.http_body import read_capped
from server.errors import InvalidInput, NotFound, TmdbError
from server.store.db import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: TMDB refuses pages beyond 500 whatever total_pages says.
MAX_PAGE = 500
MAX_QUERY_LENGTH = 200
#: TMDB ids are 32-bit; anything larger cannot exist and would only cost a request.
MAX_MOVIE_ID = 2**31 - 1

LIST_TTL = 3600.0
DETAILS_TTL = 86400.0

#: 429s retried before giving up (so at most three requests in all).
MAX_RETRIES = 2
#: A longer wait would hold a person's page load hostage; better to fail and let them retry.
MAX_RETRY_AFTER = 10.0
#: When a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_TIMEOUT = 15.0

CAST_LIMIT = 20
CREW_LIMIT = 20

#: Every size TMDB's image configuration lists for posters, backdrops, profiles and logos.
IMAGE_SIZES = frozenset(
    {"w45", "w92", "w154", "w185", "w300", "w342", "w500", "w780", "w1280", "h632", "original"}
)
_IMAGE_PATH = re.compile(r"/[A-Za-z0-9]+\.(?:jpg|png|svg)")

#: Details with credits are ~100 KB for a big film; the cap only stops a runaway reply.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: "original" backdrops run to a few MB.
MAX_IMAGE_BYTES = 20 * 1024 * 1024

#: Bump when the cached shapes change, so a new Matinee never reads an old shape.
_CACHE_PREFIX = "tmdb:v1:"
_MASK = "******"
_YEAR = re.compile(r"(\d{4})-\d{2}-\d{2}")


# --------------------------------------------------------------------------- shapes


class Movie(TypedDict):
    id: int
    title: str
    original_title: str
    overview: str
    release_date: str | None
    year: int | None
    poster_path: str | None
    backdrop_path: str | None
    vote_average: float
    vote_count: int
    popularity: float
    genre_ids: list[int]
    original_language: str | None


class MoviePage(TypedDict):
    page: int
    results: list[Movie]
    #: At most MAX_PAGE: pages beyond it cannot be fetched.
    total_pages: int
    total_results: int


class Genre(TypedDict):
    id: int
    name: str


class Company(TypedDict):
    id: int
    name: str
    logo_path: str | None
    origin_country: str | None


class CastMember(TypedDict):
    id: int
    name: str
    character: str | None
    profile_path: str | None
    #: TMDB's billing order (0 first); None when TMDB gives none.
    order: int | None


class CrewMember(TypedDict):
    id: int
    name: str
    job: str
    department: str
    profile_path: str | None


class MovieDetails(TypedDict):
    id: int
    title: str
    original_title: str
    overview: str
    tagline: str | None
    release_date: str | None
    year: int | None
    #: None when TMDB does not know it (it says 0).
    runtime: int | None
    imdb_id: str | None
    genres: list[Genre]
    production_companies: list[Company]
    #: 0 when unknown, as TMDB has it.
    budget: int
    revenue: int
    poster_path: str | None
    backdrop_path: str | None
    vote_average: float
    vote_count: int
    status: str | None
    cast: list[CastMember]
    crew: list[CrewMember]


# --------------------------------------------------------------------------- validation


def check_query(query: object) -> str:
    """The query trimmed; InvalidInput when empty or too long."""
    if not isinstance(query, str):
        raise InvalidInput("query must be text")
    text = query.strip()
    if not text:
        raise InvalidInput("query must not be empty: type part of a movie title")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"query is too long: at most {MAX_QUERY_LENGTH} characters")
    return text


def check_page(page: object) -> int:
    """``page`` when it is an integer 1..500; InvalidInput otherwise."""
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"page must be a whole number from 1 to {MAX_PAGE}, not {page!r}")
    return page


def check_movie_id(movie_id: object) -> int:
    """``movie_id`` when it is a positive integer TMDB could use; InvalidInput otherwise."""
    if (
        isinstance(movie_id, bool)
        or not isinstance(movie_id, int)
        or not 1 <= movie_id <= MAX_MOVIE_ID
    ):
        raise InvalidInput(f"movie id must be a positive whole number, not {movie_id!r}")
    return movie_id


def parse_page(raw: str | None) -> int:
    """A ``?page=`` query value as an int (1 when absent or empty); InvalidInput otherwise."""
    if raw is None or not raw.strip():
        return 1
    text = raw.strip()
    # int() would also take "+3", " 3" or "3_0"; a page is plain digits
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"page must be a whole number from 1 to {MAX_PAGE}, not {raw!r}")
    return check_page(int(text))


def parse_movie_id(raw: str) -> int:
    """A movie id taken from a URL path; InvalidInput unless it is a positive integer."""
    text = raw.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise InvalidInput(f"movie id must be a positive whole number, not {raw!r}")
    return check_movie_id(int(text))


def check_image(size: str, path: str) -> None:
    """InvalidInput unless ``size`` is a TMDB image size and ``path`` a TMDB file name."""
    if size not in IMAGE_SIZES:
        sizes = ", ".join(sorted(IMAGE_SIZES))
        raise InvalidInput(f"image size must be one of {sizes}, not {size!r}")
    if not _IMAGE_PATH.fullmatch(path):
        raise InvalidInput(
            f"image path must look like /abc123.jpg (letters and digits, .jpg, .png or .svg), "
            f"not {path!r}"
        )


# --------------------------------------------------------------------------- parsing
# TMDB leaves fields out, sends null, or "" for unknown; these helpers absorb all three so that
# the shapes above always hold. Only a reply whose skeleton is wrong is an error.


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return default


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _text(value: object) -> str | None:
    """A non-empty string, or None."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _id(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def _ids(value: object) -> list[int]:
    if not isinstance(value, list):
        return []
    return [item for item in value if _id(item) is not None]


def _year(release_date: str | None) -> int | None:
    match = _YEAR.fullmatch(release_date or "")
    return int(match[1]) if match else None


def _dicts(value: object) -> list[Mapping[str, Any]]:
    """The mappings in a list, skipping anything else; [] when it is not a list."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def parse_movie(data: Mapping[str, Any]) -> Movie | None:
    """One list entry; None when it has no usable id (such an entry cannot be opened)."""
    movie_id = _id(data.get("id"))
    if movie_id is None:
        return None
    release_date = _text(data.get("release_date"))
    title = _text(data.get("title")) or _text(data.get("original_title")) or ""
    return {
        "id": movie_id,
        "title": title,
        "original_title": _text(data.get("original_title")) or title,
        "overview": _text(data.get("overview")) or "",
        "release_date": release_date,
        "year": _year(release_date),
        "poster_path": _text(data.get("poster_path")),
        "backdrop_path": _text(data.get("backdrop_path")),
        "vote_average": _float(data.get("vote_average")),
        "vote_count": _int(data.get("vote_count")),
        "popularity": _float(data.get("popularity")),
        "genre_ids": _ids(data.get("genre_ids")),
        "original_language": _text(data.get("original_language")),
    }


def parse_movie_page(data: object) -> MoviePage:
    """A TMDB list reply (search, popular, top rated, similar); TmdbError when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise TmdbError("TMDB sent an unexpected reply: a list of movies was missing")
    results = [m for m in map(parse_movie, _dicts(data["results"])) if m is not None]
    return {
        "page": max(1, _int(data.get("page"), 1)),
        "results": results,
        "total_pages": min(max(0, _int(data.get("total_pages"))), MAX_PAGE),
        "total_results": max(0, _int(data.get("total_results"))),
    }


def _genres(value: object) -> list[Genre]:
    genres: list[Genre] = []
    for item in _dicts(value):
        genre_id, name = _id(item.get("id")), _text(item.get("name"))
        if genre_id is not None and name is not None:
            genres.append({"id": genre_id, "name": name})
    return genres


def _companies(value: object) -> list[Company]:
    companies: list[Company] = []
    for item in _dicts(value):
        company_id, name = _id(item.get("id")), _text(item.get("name"))
        if company_id is not None and name is not None:
            companies.append(
                {
                    "id": company_id,
                    "name": name,
                    "logo_path": _text(item.get("logo_path")),
                    "origin_country": _text(item.get("origin_country")),
                }
            )
    return companies


def _cast(value: object) -> list[CastMember]:
    """The first CAST_LIMIT by billing order (TMDB's ``order``; ties keep TMDB's order)."""
    cast_list: list[CastMember] = []
    for item in _dicts(value):
        person_id, name = _id(item.get("id")), _text(item.get("name"))
        if person_id is None or name is None:
            continue
        order = item.get("order")
        cast_list.append(
            {
                "id": person_id,
                "name": name,
                "character": _text(item.get("character")),
                "profile_path": _text(item.get("profile_path")),
                "order": order if isinstance(order, int) and not isinstance(order, bool) else None,
            }
        )
    # stable; the unbilled (no order) go last rather than first
    cast_list.sort(key=lambda m: math.inf if m["order"] is None else m["order"])
    return cast_list[:CAST_LIMIT]


def _crew_rank(member: CrewMember) -> int:
    """Who a person looks for on a movie page: the director, the writers, the producers."""
    job, department = member["job"], member["department"]
    if job == "Director":
        return 0
    if department == "Writing":
        return 1
    if job == "Producer":
        return 2
    if job == "Executive Producer":
        return 3
    return 4


def _crew(value: object) -> list[CrewMember]:
    """Directors, writers and producers first, then the rest in TMDB's order; CREW_LIMIT."""
    crew: list[CrewMember] = []
    seen: set[tuple[int, str]] = set()
    for item in _dicts(value):
        person_id, name = _id(item.get("id")), _text(item.get("name"))
        job = _text(item.get("job")) or ""
        if person_id is None or name is None or (person_id, job) in seen:
            continue
        seen.add((person_id, job))
        crew.append(
            {
                "id": person_id,
                "name": name,
                "job": job,
                "department": _text(item.get("department")) or "",
                "profile_path": _text(item.get("profile_path")),
            }
        )
    crew.sort(key=_crew_rank)  # stable: TMDB's order within each rank
    return crew[:CREW_LIMIT]


def parse_movie_details(data: object) -> MovieDetails:
    """A ``/movie/{id}`` reply, with ``credits`` appended or not; TmdbError when it is not one."""
    if not isinstance(data, dict) or _id(data.get("id")) is None:
        raise TmdbError("TMDB sent an unexpected reply: the movie's details were missing")
    movie = parse_movie(data)
    assert movie is not None  # the id was checked above
    credits = data.get("credits")
    credits = credits if isinstance(credits, dict) else {}
    runtime = _int(data.get("runtime"))
    return {
        "id": movie["id"],
        "title": movie["title"],
        "original_title": movie["original_title"],
        "overview": movie["overview"],
        "tagline": _text(data.get("tagline")),
        "release_date": movie["release_date"],
        "year": movie["year"],
        "runtime": runtime if runtime > 0 else None,
        "imdb_id": _text(data.get("imdb_id")),
        "genres": _genres(data.get("genres")),
        "production_companies": _companies(data.get("production_companies")),
        "budget": max(0, _int(data.get("budget"))),
        "revenue": max(0, _int(data.get("revenue"))),
        "poster_path": movie["poster_path"],
        "backdrop_path": movie["backdrop_path"],
        "vote_average": movie["vote_average"],
        "vote_count": movie["vote_count"],
        "status": _text(data.get("status")),
        "cast": _cast(credits.get("cast")),
        "crew": _crew(credits.get("crew")),
    }


def tmdb_message(body: object) -> str | None:
    """TMDB's own explanation in an error body: ``status_message`` or the ``errors`` list."""
    if not isinstance(body, dict):
        return None
    message = _text(body.get("status_message"))
    if message is not None:
        return message
    errors = body.get("errors")
    if isinstance(errors, list):
        texts = [e for e in errors if isinstance(e, str) and e.strip()]
        if texts:
            return "; ".join(texts)
    return None


def retry_after_seconds(value: str | None, now: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return DEFAULT_RETRY_AFTER
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class _Reply:
    """What came back, read in full; ``content_type`` without parameters such as charset."""

    status: int
    body: bytes
    content_type: str


class TmdbClient:
    """TMDB over the app's aiohttp session; every method returns JSON-ready dicts.

    ``clock`` dates cache entries and HTTP-date Retry-After values; ``sleep`` waits out a 429.
    Both are injectable so that tests need not wait.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: TmdbConfig,
        store: Store,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._config = config
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._secrets = tuple(s for s in (config.token, config.api_key) if s)

    @property
    def configured(self) -> bool:
        """Whether there is a token or an API key to ask TMDB with."""
        return bool(self._config.token or self._config.api_key)

    # -- the API ---------------------------------------------------------------------
    async def search(self, query: str, page: int = 1) -> dict[str, Any]:
        text, number = check_query(query), check_page(page)
        params = {"query": text, "page": str(number), "include_adult": "false"}
        return await self._list("/search/movie", params)

    async def popular(self, page: int = 1) -> dict[str, Any]:
        return await self._list("/movie/popular", {"page": str(check_page(page))})

    async def top_rated(self, page: int = 1) -> dict[str, Any]:
        return await self._list("/movie/top_rated", {"page": str(check_page(page))})

    async def similar(self, movie_id: int, page: int = 1) -> dict[str, Any]:
        movie_id, number = check_movie_id(movie_id), check_page(page)
        return await self._list(
            f"/movie/{movie_id}/similar", {"page": str(number)}, movie_id=movie_id
        )

    async def movie(self, movie_id: int) -> dict[str, Any]:
        """`MovieDetails`, credits included, in one request (``append_to_response=credits``)."""
        movie_id = check_movie_id(movie_id)
        return await self._cached(
            f"/movie/{movie_id}",
            {"append_to_response": "credits"},
            DETAILS_TTL,
            parse_movie_details,
            movie_id=movie_id,
        )

    async def image(self, size: str, path: str) -> tuple[bytes, str]:
        """A poster, backdrop, profile or logo: (content, content type). Not cached here.

        No credentials are sent: the image CDN needs none, and it is another host.
        """
        check_image(size, path)
        url = f"{self._config.image_base_url}/{size}{path}"
        reply = await self._get(url, {}, {}, MAX_IMAGE_BYTES, what=f"image {size}{path}")
        if reply.status == 404:
            raise NotFound(f"no image {size}{path} on TMDB")
        if reply.status != 200:
            raise self._failure(reply, f"image {size}{path}")
        if not reply.content_type.startswith("image/"):
            raise TmdbError(
                f"TMDB's image server sent {reply.content_type or 'something'} instead of "
                f"the image {size}{path}"
            )
        return reply.body, reply.content_type

    # -- plumbing --------------------------------------------------------------------
    async def _list(
        self, path: str, params: dict[str, str], *, movie_id: int | None = None
    ) -> dict[str, Any]:
        return await self._cached(path, params, LIST_TTL, parse_movie_page, movie_id=movie_id)

    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, extra query parameters) that identify us to TMDB."""
        if self._config.token:
            return {"Authorization": f"Bearer {self._config.token}"}, {}
        if self._config.api_key:
            return {}, {"api_key": self._config.api_key}
        raise TmdbError(
            "TMDB is not configured: set [tmdb] token (a v4 read access token from "
            "themoviedb.org, Settings → API) in the config file, or the MATINEE_TMDB_TOKEN "
            "environment variable"
        )

    async def _cached(
        self,
        path: str,
        params: dict[str, str],
        ttl: float,
        parse: Callable[[object], Mapping[str, object]],
        *,
        movie_id: int | None = None,
    ) -> dict[str, Any]:
        headers, auth_params = self._auth()
        params = {**params, "language": self._config.language}
        # Without the credentials: the same data whichever key fetched it, and no secret in
        # the database. With the base URL: a different TMDB (a test, a mirror) is other data.
        key = f"{_CACHE_PREFIX}{self._config.base_url}{path}?{urlencode(sorted(params.items()))}"
        cached = await self._store.cache_get(key, now=self._clock())
        if cached is not None:
            try:
                value = json.loads(cached)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
            log.warning("TMDB cache entry for %s is unreadable; fetching again", path)

        reply = await self._get(
            f"{self._config.base_url}{path}",
            {**params, **auth_params},
            headers,
            MAX_JSON_BYTES,
            what=path,
        )
        if reply.status == 404:
            if movie_id is not None:
                raise NotFound(f"no movie with id {movie_id} on TMDB")
            raise NotFound(f"TMDB has nothing at {path}")
        if reply.status != 200:
            raise self._failure(reply, path)
        result = parse(self._json(reply, path))
        await self._store.cache_put(
            key, json.dumps(result, ensure_ascii=False).encode(), ttl, now=self._clock()
        )
        return dict(result)

    async def _get(
        self,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        limit: int,
        *,
        what: str,
    ) -> _Reply:
        """GET with 429s waited out (at most MAX_RETRIES times); transport errors → TmdbError."""
        host = urlsplit(url).netloc
        for attempt in range(MAX_RETRIES + 1):
            log.debug("TMDB GET %s (attempt %d)", what, attempt + 1)
            try:
                async with self._session.get(
                    url, params=params, headers=headers, timeout=self._timeout
                ) as response:
                    if response.status == 429:
                        delay = retry_after_seconds(
                            response.headers.get("Retry-After"), self._clock()
                        )
                    else:
                        body = await _read_capped(response, limit)
                        return _Reply(response.status, body, response.content_type)
            # TimeoutError first: aiohttp's ServerTimeoutError is also a ClientError.
            except TimeoutError:
                raise TmdbError(
                    f"TMDB did not answer within {self._timeout_seconds:g} s ({what}); "
                    "try again later"
                ) from None
            except aiohttp.ClientError as exc:
                # `from None`: aiohttp's exceptions may carry the request URL, api_key included.
                reason = self._scrub(str(exc)) or type(exc).__name__
                raise TmdbError(f"cannot reach TMDB at {host}: {reason}") from None
            if attempt == MAX_RETRIES:
                break
            log.warning("TMDB is rate limiting %s; retrying in %g s", what, delay)
            await self._sleep(delay)
        raise TmdbError(
            "TMDB is rate limiting Matinee's requests (HTTP 429, still after "
            f"{MAX_RETRIES} retries); try again in a few seconds"
        )

    def _json(self, reply: _Reply, what: str) -> object:
        try:
            return cast(object, json.loads(reply.body))
        except (ValueError, UnicodeDecodeError):
            kind = reply.content_type or "no content type"
            raise TmdbError(
                f"TMDB sent a reply that is not JSON for {what} (HTTP {reply.status}, {kind}); "
                "check [tmdb] base_url"
            ) from None

    def _failure(self, reply: _Reply, what: str) -> TmdbError:
        """The error for a reply that is neither 200 nor 404 nor 429."""
        try:
            body: object = json.loads(reply.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        said = tmdb_message(body)
        detail = f": {self._scrub(said)}" if said else ""
        if reply.status == 401:
            if self._config.token:
                setting = "[tmdb] token (or the MATINEE_TMDB_TOKEN environment variable)"
                credential = "v4 read access token"
            else:
                setting = "[tmdb] api_key (or the MATINEE_TMDB_API_KEY environment variable)"
                credential = "v3 API key"
            return TmdbError(
                f"TMDB refused the {credential}{detail}. Check {setting} in the config file."
            )
        if reply.status >= 500:
            return TmdbError(
                f"TMDB is having trouble (HTTP {reply.status} for {what}){detail}; try again later"
            )
        return TmdbError(f"TMDB refused the request for {what} (HTTP {reply.status}){detail}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    data = await read_capped(response, limit)
    if data is None:
        raise TmdbError(f"TMDB sent more than the {limit} bytes allowed")
    return data
