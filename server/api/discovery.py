"""The discovery part of the JSON API: TMDB browsing, releases, and Watch (fetch)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.api.jobs import json_body
from server.discovery.service import preference_of
from server.errors import InvalidInput
from server.keys import DISCOVERY, JOBS, STORE
from server.store.db import Job

routes = web.RouteTableDef()


def _page(request: web.Request) -> int:
    raw = request.query.get("page", "1").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise InvalidInput("page must be a whole number from 1 to 500")
    return int(raw)


def _movie_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 10:
        raise InvalidInput("the movie id must be a positive whole number")
    return int(raw)


def job_status(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "job_id": job.job_id,
        "status": job.status,
        "progress": job.progress,
        "error_message": job.error_message,
    }


async def latest_job_for_movie(request: web.Request, movie_id: int) -> Job | None:
    store = request.config_dict[STORE]
    active = await store.active_job_for_movie(movie_id)
    if active is not None:
        return active
    jobs = [j for j in await store.list_jobs() if j.movie_id == movie_id and j.status != "deleted"]
    return jobs[0] if jobs else None


@routes.get("/search")
async def search(request: web.Request) -> web.Response:
    query = request.query.get("query", "")
    result = await request.config_dict[DISCOVERY].tmdb.search(query, _page(request))
    return web.json_response(result)


@routes.get("/popular")
async def popular(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[DISCOVERY].tmdb.popular(_page(request)))


@routes.get("/top")
async def top(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[DISCOVERY].tmdb.top_rated(_page(request)))


@routes.get("/movies/{id}")
async def movie(request: web.Request) -> web.Response:
    movie_id = _movie_id(request)
    details = dict(await request.config_dict[DISCOVERY].tmdb.movie(movie_id))
    details["job_status"] = job_status(await latest_job_for_movie(request, movie_id))
    return web.json_response(details)


@routes.get("/movies/{id}/similar")
async def similar(request: web.Request) -> web.Response:
    tmdb = request.config_dict[DISCOVERY].tmdb
    return web.json_response(await tmdb.similar(_movie_id(request), _page(request)))


@routes.get("/movies/{id}/releases")
async def releases(request: web.Request) -> web.Response:
    movie_id = _movie_id(request)
    preference = preference_of(request.query.get("quality_preference"))
    found = await request.config_dict[DISCOVERY].releases(movie_id, preference)
    return web.json_response(
        {
            "movie_id": movie_id,
            "imdb_id": found.movie.get("imdb_id"),
            "releases": [{**r.as_api(), "excluded": r.excluded} for r in found.releases],
            "indexer_errors": found.errors,
        }
    )


@routes.post("/movies/{id}/fetch")
async def fetch(request: web.Request) -> web.Response:
    movie_id = _movie_id(request)
    body = await json_body(request) if request.can_read_body else {}
    mode = body.get("mode", "auto")
    if mode not in ("auto", "manual"):
        raise InvalidInput("mode must be auto or manual")
    preference = preference_of(body.get("quality_preference"))
    release_id = body.get("release_id")
    if mode == "manual":
        if not isinstance(release_id, str) or not release_id:
            raise InvalidInput("manual mode needs the release_id of the chosen release")
        found = await request.config_dict[DISCOVERY].releases(movie_id, preference)
        if not any(r.release_id == release_id for r in found.releases):
            raise InvalidInput(f"no release {release_id} for movie {movie_id}; list them again")
    elif release_id is not None:
        raise InvalidInput("release_id is only for manual mode")
    job, created = await request.config_dict[JOBS].submit_movie(
        movie_id, mode=mode, release_id=release_id, preference=preference
    )
    return web.json_response(
        {"job_id": job.job_id, "status": job.status}, status=202 if created else 200
    )
