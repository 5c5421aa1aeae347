"""The web UI's pages: server-rendered HTML over the services the JSON API uses.

Each handler gathers plain data (dicts of strings and numbers) and renders one template;
templates hold no queries. What changes while a page is open (download progress, search as
you type, the player) is done by small ES modules in web/static/js that call the JSON API.
A failure of TMDB or an indexer is shown on the page in words; only a page that cannot exist
at all (an unknown movie or job) becomes an error page.

Routes, all under ``[server] base_path`` and all needing a session: "" (home), search,
movie/{id}, job/{job_id}, play/{job_id}, downloads, favicon.ico (and status, in
``server.ui.status``). An error that escapes a handler becomes an error page through the
main app's error middleware (``server.ui.errors``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web

from server.api.discovery import latest_job_for_movie
from server.api.shapes import event_json, job_json
from server.discovery.tmdb_shapes import parse_movie_id, parse_page
from server.errors import InvalidInput, MatineeError
from server.jobs import lifecycle
from server.jobs.lifecycle import ACTIVE, MirrorState, Mode, Source, Status, can_play, label
from server.keys import DEMO, DISCOVERY, JOBS, SETTINGS, STORE
from server.store.jobs import Job
from server.ui import headers
from server.ui.filters import clock, eta, relative, size, speed
from server.ui.images import image_url
from server.ui.templates import STATIC_DIR, render

T = TypeVar("T")

#: The vendored hls.js (web/static/VENDORED.md): loaded by the player only for HLS streams.
HLS_JS = "hls-1.7.4.min.js"
FAVICON = STATIC_DIR / "favicon.svg"
CONTINUE_LIMIT = 12


# --------------------------------------------------------------------------- helpers


async def attempt(work: Awaitable[T]) -> tuple[T | None, str | None]:
    """(result, None), or (None, the error in words) when a service failed."""
    try:
        return await work, None
    except MatineeError as exc:
        return None, exc.message


def card(app: web.Application, movie: Mapping[str, Any], size: str = "w342") -> dict[str, Any]:
    """What a poster link shows of a movie."""
    rating = movie.get("vote_average") or 0.0
    return {
        "id": movie["id"],
        "title": movie.get("title") or "Untitled",
        "year": movie.get("year"),
        "rating": f"{rating:.1f}" if movie.get("vote_count") else None,
        "poster": image_url(app, size, movie.get("poster_path")),
    }


def blank_job() -> dict[str, Any]:
    """What the <template> rows are rendered from: a job with nothing known yet."""
    return job_view(Job(job_id="new", mode=Mode.NZB, source=Source.UPLOAD, dir="-"))


def job_view(job: Job, title: str | None = None) -> dict[str, Any]:
    """The API's Job plus what a person reads."""
    data = job_json(job)
    data["stage"] = label(job.status, job.attempt)
    data["title"] = title or job.release_title or "Finding a release…"
    data["active"] = job.status in ACTIVE
    data["can_play"] = can_play(job.status, job.playable)
    data["failed"] = job.status == Status.ERROR
    data["over"] = job.status in (Status.ERROR, Status.DELETED)  # it will never play
    data["expires_at_ts"] = job.deletes_at
    data["local_expires_at_ts"] = job.local_expires_at
    data["mirror_text"] = mirror_text(job)
    data["expiry_text"] = expiry_text(job)
    data["can_keep"] = job.status != Status.DELETED and job.deletes_at is not None
    return data


def mirror_text(job: Job) -> str:
    """Where the job's copy in R2 stands, in words (format.js ``mirrorText`` the same)."""
    if job.mirror is None:
        return ""
    text = lifecycle.MIRROR_LABELS[job.mirror.value]
    if job.mirror == MirrorState.MIRRORING and job.media_size:
        done = round(100 * job.mirror_bytes / job.media_size)
        return f"{text}: {done}% ({size(job.mirror_bytes)} of {size(job.media_size)})"
    if job.mirror == MirrorState.FAILED and job.mirror_error:
        return f"{text}: {job.mirror_error}"
    return text


def expiry_text(job: Job) -> str:
    """When the movie goes, locally and in R2 (format.js ``expiryText`` the same)."""
    if job.status == Status.DELETED:
        return ""
    parts = []
    if job.deletes_at is not None:
        parts.append(f"Deleted {relative(job.deletes_at)}")
    if not job.has_local:
        parts.append("local copy deleted: it plays from R2")
    elif job.local_expires_at is not None:
        when = relative(job.local_expires_at)
        parts.append(f"local copy deleted {when} (then it plays from R2)")
    return "; ".join(parts)


async def movie_titles(request: web.Request, ids: Iterable[int | None]) -> dict[int, Any]:
    """Movie id -> TMDB details for the ids given; a movie TMDB cannot give is left out."""
    tmdb = request.config_dict[DISCOVERY].tmdb
    wanted = sorted({i for i in ids if i is not None})
    found = await asyncio.gather(*(attempt(tmdb.movie(i)) for i in wanted))
    return {i: movie for i, (movie, _) in zip(wanted, found, strict=True) if movie is not None}


# --------------------------------------------------------------------------- pages


async def home(request: web.Request) -> web.StreamResponse:
    app, store = request.app, request.config_dict[STORE]
    tmdb = request.config_dict[DISCOVERY].tmdb
    jobs = {j.job_id: j for j in await store.jobs.list()}
    positions = [
        p
        for p in await store.positions.recent(CONTINUE_LIMIT * 2)
        if p.job_id in jobs and jobs[p.job_id].playable and jobs[p.job_id].status != Status.ERROR
    ][:CONTINUE_LIMIT]
    active = [j for j in jobs.values() if j.status in ACTIVE]
    (popular, popular_error), (top, top_error), movies = await asyncio.gather(
        attempt(tmdb.popular()),
        attempt(tmdb.top_rated()),
        movie_titles(
            request, [jobs[p.job_id].movie_id for p in positions] + [j.movie_id for j in active]
        ),
    )
    watching = []
    for position in positions:
        job = jobs[position.job_id]
        movie = movies.get(job.movie_id or 0)
        watching.append(
            {
                "job_id": job.job_id,
                "title": (movie or {}).get("title") or job.release_title or job.job_id,
                "poster": image_url(app, "w342", (movie or {}).get("poster_path")),
                "seconds": position.seconds,
            }
        )
    context = {
        "watching": watching,
        "downloads": [job_view(j, movies.get(j.movie_id or 0, {}).get("title")) for j in active],
        "popular": [card(app, m) for m in (popular or {}).get("results", [])],
        "popular_error": popular_error,
        "top": [card(app, m) for m in (top or {}).get("results", [])],
        "top_error": top_error,
    }
    return render(request, "home.html", context)


async def search(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()
    try:
        number = parse_page(request.query.get("page"))
    except InvalidInput:
        number = 1
    result: dict[str, Any] | None = None
    error = None
    if query:
        result, error = await attempt(request.config_dict[DISCOVERY].tmdb.search(query, number))
    results = [card(request.app, m, "w185") for m in (result or {}).get("results", [])]
    total_pages = (result or {}).get("total_pages", 0)
    context = {
        "query": query,
        "page": number,
        "results": results,
        "total_results": (result or {}).get("total_results", 0),
        "next_page": number + 1 if number < total_pages else None,
        "prev_page": number - 1 if number > 1 and query else None,
        "error": error,
    }
    return render(request, "search.html", context)


async def movie(request: web.Request) -> web.StreamResponse:
    movie_id = parse_movie_id(request.match_info["id"])
    app, tmdb = request.app, request.config_dict[DISCOVERY].tmdb
    details, (similar, similar_error), job = await asyncio.gather(
        tmdb.movie(movie_id),
        attempt(tmdb.similar(movie_id)),
        latest_job_for_movie(request, movie_id),
    )
    runtime = details.get("runtime")
    context = {
        "movie": {
            "id": movie_id,
            "title": details["title"],
            "original_title": details.get("original_title"),
            "tagline": details.get("tagline"),
            "year": details.get("year"),
            "runtime": f"{runtime // 60} h {runtime % 60} min" if runtime else None,
            "genres": [g["name"] for g in details.get("genres", [])],
            "rating": f"{details['vote_average']:.1f}" if details.get("vote_count") else None,
            "votes": details.get("vote_count") or 0,
            "overview": details.get("overview") or "",
            "poster": image_url(app, "w500", details.get("poster_path")),
            "backdrop": image_url(app, "w1280", details.get("backdrop_path")),
            "directors": [c["name"] for c in details.get("crew", []) if c["job"] == "Director"],
            "cast": [
                {
                    "name": c["name"],
                    "character": c.get("character"),
                    "photo": image_url(app, "w185", c.get("profile_path")),
                }
                for c in details.get("cast", [])[:12]
            ],
        },
        "similar": [card(app, m) for m in (similar or {}).get("results", [])[:12]],
        "similar_error": similar_error,
        "job": job_view(job, details["title"]) if job is not None else None,
    }
    return render(request, "movie.html", context)


async def _job_and_title(request: web.Request) -> tuple[Job, str | None, int | None]:
    job = await request.config_dict[JOBS].get(request.match_info["job_id"])
    movies = await movie_titles(request, [job.movie_id])
    title = movies.get(job.movie_id or 0, {}).get("title")
    return job, title, job.movie_id


async def job_page(request: web.Request) -> web.StreamResponse:
    job, title, movie_id = await _job_and_title(request)
    note = request.config_dict[JOBS].note(job.job_id) if job.status in ACTIVE else None
    events = await request.config_dict[STORE].events.list(job.job_id)
    context = {
        "job": job_view(job, title),
        "note": note,
        "movie_id": movie_id,
        "log": [event_json(e) | {"at_ts": e.at} for e in events],
    }
    return render(request, "job.html", context)


async def play(request: web.Request) -> web.StreamResponse:
    job, title, _ = await _job_and_title(request)
    context = {"job": job_view(job, title), "hls_js": HLS_JS}
    return render(request, "play.html", context)


async def downloads(request: web.Request) -> web.StreamResponse:
    jobs = [j for j in await request.config_dict[STORE].jobs.list() if j.status != Status.DELETED]
    titles = await movie_titles(request, [j.movie_id for j in jobs])
    views = [job_view(j, titles.get(j.movie_id or 0, {}).get("title")) for j in jobs]
    return render(request, "downloads.html", {"jobs": views})


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        FAVICON,
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
    )


# --------------------------------------------------------------------------- setup


def _import_map(app: web.Application) -> dict[str, dict[str, str]]:
    """Each JS module's plain URL -> its cache-busted URL, so that ``import "./api.js"``
    inside a module fetches the current version too."""
    static = app.router["static"]
    imports = {}
    for module in sorted((STATIC_DIR / "js").glob("*.js")):
        plain = static.url_for(filename=f"js/{module.name}")
        imports[str(plain.with_query(None))] = str(plain)
    return {"imports": imports}


def setup(app: web.Application, environ: Mapping[str, str] = os.environ) -> None:
    """The page routes, and what every template may use: ``demo`` (MATINEE_DEMO=1, read here,
    once), ``importmap_json`` (and the CSP that allows it), ``lifecycle_json`` and the
    formatting filters. After the templates' setup."""
    base = app[SETTINGS].server.base_path
    app[DEMO] = environ.get("MATINEE_DEMO", "").strip() == "1"
    env = aiohttp_jinja2.get_env(app)
    env.globals["demo"] = app[DEMO]
    env.filters.update(
        {"relative": relative, "clock": clock, "size": size, "speed": speed, "eta": eta}
    )
    # The job lifecycle for the page's JavaScript (format.js reads it): one table, not a copy.
    env.globals["blank_job"] = blank_job()
    env.globals["lifecycle_json"] = json.dumps(lifecycle.as_json(), separators=(",", ":"))
    router = app.router
    router.add_get(base, home, name="home")
    router.add_get(f"{base}search", search, name="search")
    router.add_get(f"{base}movie/{{id}}", movie, name="movie")
    router.add_get(f"{base}job/{{job_id}}", job_page, name="job")
    router.add_get(f"{base}play/{{job_id}}", play, name="play")
    router.add_get(f"{base}downloads", downloads, name="downloads")
    router.add_get(f"{base}favicon.ico", favicon, name="favicon")
    # Rendered as it is (not through a filter), so that its hash in the CSP is exact.
    import_map = json.dumps(_import_map(app), separators=(",", ":"))
    env.globals["importmap_json"] = import_map
    headers.setup(app, import_map)
