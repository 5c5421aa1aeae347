"""The discovery part of the JSON API: TMDB browsing, releases, and Watch (fetch)."""

from __future__ import annotations

from aiohttp import web

from server.api.params import json_body, movie_id, page
from server.api.shapes import job_status
from server.discovery.service import preference_of
from server.errors import InvalidInput, NotFound
from server.http.costs import spend
from server.jobs.lifecycle import Mode, Status
from server.keys import DISCOVERY, JOBS, STORE
from server.playback.choice import capabilities_of
from server.store.jobs import Job
from transcode.compat import browser_family

routes = web.RouteTableDef()


async def latest_job_for_movie(request: web.Request, movie_id: int) -> Job | None:
    store = request.config_dict[STORE]
    active = await store.jobs.current_for_movie(movie_id)
    if active is not None:
        return active
    jobs = [
        j for j in await store.jobs.list() if j.movie_id == movie_id and j.status != Status.DELETED
    ]
    return jobs[0] if jobs else None


@routes.get("/search")
async def search(request: web.Request) -> web.Response:
    query = request.query.get("query", "")
    result = await request.config_dict[DISCOVERY].tmdb.search(query, page(request))
    return web.json_response(result)


@routes.get("/popular")
async def popular(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[DISCOVERY].tmdb.popular(page(request)))


@routes.get("/top")
async def top(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[DISCOVERY].tmdb.top_rated(page(request)))


@routes.get("/movies/{id}")
async def movie(request: web.Request) -> web.Response:
    ident = movie_id(request)
    details = dict(await request.config_dict[DISCOVERY].tmdb.movie(ident))
    details["job_status"] = job_status(await latest_job_for_movie(request, ident))
    return web.json_response(details)


@routes.get("/movies/{id}/similar")
async def similar(request: web.Request) -> web.Response:
    tmdb = request.config_dict[DISCOVERY].tmdb
    return web.json_response(await tmdb.similar(movie_id(request), page(request)))


@routes.get("/movies/{id}/releases")
async def releases(request: web.Request) -> web.Response:
    ident = movie_id(request)
    preference = preference_of(request.query.get("quality_preference"))
    spend(request, "search")
    browser = capabilities_of(request.query, request.headers.get("User-Agent", ""))
    found = await request.config_dict[DISCOVERY].releases(ident, preference, browser)
    return web.json_response(
        {
            "movie_id": ident,
            "imdb_id": found.movie.get("imdb_id"),
            "releases": [{**r.as_api(), "excluded": r.excluded} for r in found.releases],
            "indexer_errors": found.errors,
        }
    )


def _browser_of(request: web.Request) -> str:
    """What an auto pick ranks for, kept with the job: the capabilities the player measured
    (``?capabilities=``, checked here), else the User-Agent's family."""
    capabilities_of(request.query, "")  # a malformed report is the caller's error, now
    return request.query.get("capabilities") or browser_family(
        request.headers.get("User-Agent", "")
    )


@routes.post("/movies/{id}/fetch")
async def fetch(request: web.Request) -> web.Response:
    movie = movie_id(request)
    body = await json_body(request) if request.can_read_body else {}
    raw_mode = body.get("mode", "auto")
    if raw_mode not in (Mode.AUTO, Mode.MANUAL):
        raise InvalidInput("mode must be auto or manual")
    mode = Mode(raw_mode)
    preference = preference_of(body.get("quality_preference"))
    release_id = body.get("release_id")
    title: str | None = None
    if mode == Mode.MANUAL:
        if not isinstance(release_id, str) or not release_id:
            raise InvalidInput("manual mode needs the release_id of the chosen release")
        found = await request.config_dict[DISCOVERY].releases(movie, preference)
        chosen = next((r for r in found.releases if r.release_id == release_id), None)
        if chosen is None:
            raise InvalidInput(f"no release {release_id} for movie {movie}; list them again")
        title = chosen.title  # the job names its release from the first moment
    elif release_id is not None:
        raise InvalidInput("release_id is only for manual mode")
    else:
        # The contract: an unknown movie, or one no indexer offers, is a 404 now rather
        # than a job that fails later (the search is cached, the job reuses it).
        found = await request.config_dict[DISCOVERY].releases(movie, preference)
        if not any(not r.excluded for r in found.releases):
            title = found.movie.get("title") or f"movie {movie}"
            raise NotFound(f"no release of {title} was found on the indexers")
    spend(request, "fetch")
    job, created = await request.config_dict[JOBS].submit_movie(
        movie,
        mode=mode,
        release_id=release_id,
        release_title=title,
        preference=preference,
        browser=_browser_of(request),
    )
    return web.json_response(
        {"job_id": job.job_id, "status": job.status.value}, status=202 if created else 200
    )
