"""TMDB's replies as the JSON API's shapes: TypedDicts, input checks and pure parsing.

No I/O: captured TMDB replies can be fed to `parse_movie_page` and `parse_movie_details`
directly. The client (``server.discovery.tmdb``) hands out exactly these shapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from server.errors import InvalidInput, TmdbError

#: TMDB refuses pages beyond 500 whatever total_pages says.
MAX_PAGE = 500
MAX_QUERY_LENGTH = 200
#: TMDB ids are 32-bit; anything larger cannot exist and would only cost a request.
MAX_MOVIE_ID = 2**31 - 1

CAST_LIMIT = 20
CREW_LIMIT = 20

#: Every size TMDB's image configuration lists for posters, backdrops, profiles and logos.
IMAGE_SIZES = frozenset(
    {"w45", "w92", "w154", "w185", "w300", "w342", "w500", "w780", "w1280", "h632", "original"}
)
# TMDB names files with ~30 letters and digits; the bound keeps a name a file system takes.
_IMAGE_PATH = re.compile(r"/[A-Za-z0-9]{1,64}\.(?:jpg|png|svg)")

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
            "image path must look like /abc123.jpg (1-64 letters and digits, .jpg, .png or"
            f" .svg), not {path[:80]!r}"
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
