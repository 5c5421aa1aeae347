"""The web UI's pages: server-rendered HTML over the services the JSON API uses.

Each handler gathers plain data (dicts of strings and numbers) and renders one template;
templates hold no queries. What changes while a page is open (download progress, search as
you type, the player) is done by small ES modules in web/static/js that call the JSON API.
A failure of TMDB or an indexer is shown on the page in words; only a page that cannot exist
at all (an unknown movie or job) becomes an error page.

Routes, all under ``[server] base_path`` and all needing a session: "" (home), search,
movie/{id}, job/{job_id}, play/{job_id}, downloads, status, favicon.ico.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web

from nntp.connection import NntpConnection, ServerSpec
from nntp.errors import AuthError, NntpError, TemporaryError
from server.api.discovery import latest_job_for_movie
from server.api.jobs import job_json
from server.discovery.releases.ranking import format_size
from server.discovery.tmdb import parse_movie_id, parse_page
from server.errors import ApiError, InvalidInput
from server.jobs.manager import ACTIVE
from server.keys import DEMO, DISCOVERY, JOBS, SETTINGS, STORE
from server.store.db import Job
from server.ui.images import image_url
from server.ui.templates import STATIC_DIR, render

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The vendored hls.js (web/static/VENDORED.md): loaded by the player only for HLS streams.
HLS_JS = "hls-1.7.4.min.js"
FAVICON = STATIC_DIR / "favicon.svg"
#: How long the Status page waits for each service.
CHECK_TIMEOUT = 8.0
#: Below this much free space the Status page warns.
LOW_DISK = 10 * 1000**3
CONTINUE_LIMIT = 12
STAGES = {
    "queued": "Waiting to start",
    "downloading": "Downloading",
    "preparing": "Preparing the file",
    "ready": "Ready",
    "error": "Failed",
    "deleted": "Deleted",
}


# --------------------------------------------------------------------------- helpers


def page(handler: Handler) -> Handler:
    """An API error that escapes a page handler becomes an error page, not JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            context = {"status": exc.status, "message": exc.message}
            return render(request, "error.html", context, status=exc.status)

    return wrapped


async def attempt(work: Awaitable[T]) -> tuple[T | None, str | None]:
    """(result, None), or (None, the error in words) when a service failed."""
    try:
        return await work, None
    except ApiError as exc:
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


def job_view(job: Job, title: str | None = None) -> dict[str, Any]:
    """The API's Job plus what a person reads."""
    data = job_json(job)
    data["stage"] = STAGES.get(job.status, job.status)
    data["title"] = title or job.release_title or "Finding a release…"
    data["active"] = job.status in ACTIVE
    data["can_play"] = job.playable and job.status not in ("error", "deleted")
    data["expires_at_ts"] = job.expires_at
    return data


async def movie_titles(request: web.Request, ids: Iterable[int | None]) -> dict[int, Any]:
    """Movie id -> TMDB details for the ids given; a movie TMDB cannot give is left out."""
    tmdb = request.config_dict[DISCOVERY].tmdb
    wanted = sorted({i for i in ids if i is not None})
    found = await asyncio.gather(*(attempt(tmdb.movie(i)) for i in wanted))
    return {i: movie for i, (movie, _) in zip(wanted, found, strict=True) if movie is not None}


# --------------------------------------------------------------------------- pages


@page
async def home(request: web.Request) -> web.StreamResponse:
    app, store = request.app, request.config_dict[STORE]
    tmdb = request.config_dict[DISCOVERY].tmdb
    jobs = {j.job_id: j for j in await store.list_jobs()}
    positions = [
        p
        for p in await store.recent_positions(CONTINUE_LIMIT * 2)
        if p.job_id in jobs and jobs[p.job_id].playable and jobs[p.job_id].status != "error"
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


@page
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


@page
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


@page
async def job_page(request: web.Request) -> web.StreamResponse:
    job, title, movie_id = await _job_and_title(request)
    note = request.config_dict[JOBS].note(job.job_id) if job.status in ACTIVE else None
    context = {"job": job_view(job, title), "note": note, "movie_id": movie_id}
    return render(request, "job.html", context)


@page
async def play(request: web.Request) -> web.StreamResponse:
    job, title, _ = await _job_and_title(request)
    context = {"job": job_view(job, title), "hls_js": HLS_JS}
    return render(request, "play.html", context)


@page
async def downloads(request: web.Request) -> web.StreamResponse:
    jobs = [j for j in await request.config_dict[STORE].list_jobs() if j.status != "deleted"]
    titles = await movie_titles(request, [j.movie_id for j in jobs])
    views = [job_view(j, titles.get(j.movie_id or 0, {}).get("title")) for j in jobs]
    return render(request, "downloads.html", {"jobs": views})


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        FAVICON,
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
    )


# --------------------------------------------------------------------------- status


def check(
    name: str, state: str, summary: str, fix: str | None = None, details: Iterable[str] = ()
) -> dict[str, Any]:
    """One line of the Status page; state is "ok", "warn", "error" or "off"."""
    return {"name": name, "state": state, "summary": summary, "fix": fix, "details": list(details)}


async def check_tmdb(request: web.Request) -> dict[str, Any]:
    tmdb = request.config_dict[DISCOVERY].tmdb
    if not tmdb.configured:
        return check(
            "TMDB",
            "error",
            "Not configured: Matinee cannot list or search movies.",
            "Set [tmdb] token (a v4 read access token from themoviedb.org → Settings → API) in "
            "the config file, or the MATINEE_TMDB_TOKEN environment variable, then restart.",
        )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await tmdb.popular()
    except TimeoutError:
        return check(
            "TMDB",
            "error",
            f"Did not answer within {CHECK_TIMEOUT:g} s.",
            "Check that this machine can reach api.themoviedb.org ([tmdb] base_url).",
        )
    except ApiError as exc:
        return check("TMDB", "error", exc.message, "Fix the setting the message names.")
    return check("TMDB", "ok", "Configured and answering (lists are cached for an hour).")


async def check_indexers(request: web.Request) -> list[dict[str, Any]]:
    indexers = request.config_dict[DISCOVERY].indexers
    names = indexers.enabled
    if not request.config_dict[SETTINGS].indexers:
        return [
            check(
                "Indexers",
                "error",
                "No indexer is configured: Matinee cannot find releases.",
                "Add an [[indexers]] section with name, url and api_key (NZBGeek by default), "
                "then restart.",
            )
        ]
    # Caps are cheap, kept for a day, and tell whether the indexer answers at all.
    slow: set[str] = set()

    async def caps(name: str) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await indexers.caps(name)
        except TimeoutError:
            slow.add(name)

    await asyncio.gather(*(caps(name) for name in names))
    now = time.time()
    lines = []
    for status in indexers.status():
        last = relative(status.last_ok, now) or "never"
        details = [f"Host: {status.host}", f"Last answer: {last}"]
        if status.apilimits is not None:
            limits = status.apilimits
            if limits.api_max is not None:
                details.append(f"API calls today: {limits.api_current or 0} of {limits.api_max}")
            if limits.grab_max is not None:
                details.append(f"Downloads today: {limits.grab_current or 0} of {limits.grab_max}")
        if status.imdb_search is not None:
            details.append(
                "Searches by IMDb id" if status.imdb_search else "Searches by title (no IMDb id)"
            )
        name = f"Indexer {status.name}"
        if not status.enabled:
            lines.append(check(name, "off", "Disabled in the configuration.", None, details))
        elif status.name in slow:
            lines.append(
                check(
                    name,
                    "error",
                    f"Did not answer within {CHECK_TIMEOUT:g} s.",
                    f"Check the url of {status.name!r} under [[indexers]], and that this "
                    "machine can reach it.",
                    details,
                )
            )
        elif status.resting_until is not None:
            until = time.strftime("%H:%M", time.localtime(status.resting_until))
            why = status.last_error or f"resting until {until}"
            if "API key" in why:  # resting because the key was refused: a setting to fix
                fix = (
                    f"Check the api_key of {status.name!r} under [[indexers]], then restart "
                    f"Matinee (otherwise it asks again at {until})."
                )
                lines.append(check(name, "error", why, fix, details))
            else:
                fix = (
                    f"Nothing to fix: Matinee asks again at {until}. A bigger plan at the "
                    "indexer raises its daily limits."
                )
                lines.append(check(name, "warn", why, fix, details))
        elif status.last_error is not None and (
            status.last_ok is None or (status.last_error_at or 0) > status.last_ok
        ):
            lines.append(
                check(
                    name,
                    "error",
                    status.last_error,
                    f"Check url and api_key of {status.name!r} under [[indexers]].",
                    details,
                )
            )
        else:
            lines.append(check(name, "ok", "Configured and answering.", None, details))
    return lines


async def probe_usenet(spec: ServerSpec) -> None:
    """Connect, read the greeting, log in when configured, and say goodbye."""
    conn = NntpConnection(dataclasses.replace(spec, timeout=min(spec.timeout, CHECK_TIMEOUT)))
    try:
        await conn.connect()
        await conn.quit()
    finally:
        conn.close()


async def check_usenet(request: web.Request) -> list[dict[str, Any]]:
    manager = request.config_dict[JOBS]
    servers = manager.servers
    if not servers:
        return [
            check(
                "Usenet",
                "error",
                "No Usenet server is configured: Matinee cannot download anything.",
                "Add a [[usenet.servers]] section with your provider's host, port, tls, "
                "username and password, then restart.",
            )
        ]
    outcomes = await asyncio.gather(*(attempt_nntp(probe_usenet(s)) for s in servers))
    busy = any(j.status == "downloading" for j in await request.config_dict[STORE].list_jobs())
    lines = []
    for spec, error in zip(servers, outcomes, strict=True):
        name = f"Usenet {spec.name or spec.host}"
        details = [
            f"Host: {spec.address}",
            "TLS" if spec.tls else "No TLS (plain text)",
            f"Connections: {spec.connections}",
            f"Priority: {spec.priority}",
        ]
        if error is None:
            login = " and accepted the login" if spec.username else ""
            lines.append(check(name, "ok", f"Answered{login}.", None, details))
        elif isinstance(error, AuthError):
            fix = (
                f"Check username and password of {spec.name!r} under [[usenet.servers]]."
                if spec.username
                else f"This server wants a login: add username and password to {spec.name!r}."
            )
            lines.append(check(name, "error", str(error), fix, details))
        elif isinstance(error, TemporaryError) and busy:
            lines.append(
                check(
                    name,
                    "warn",
                    str(error),
                    "Downloads are running and may hold every connection the plan allows.",
                    details,
                )
            )
        else:
            lines.append(
                check(
                    name,
                    "error",
                    str(error),
                    f"Check host, port and tls of {spec.name!r} under [[usenet.servers]], and "
                    "that this machine can reach it.",
                    details,
                )
            )
    return lines


async def attempt_nntp(work: Coroutine[Any, Any, None]) -> NntpError | None:
    try:
        await work
    except NntpError as exc:
        return exc
    return None


def _disk(path: Path) -> tuple[Path, int, int]:
    """(the folder measured, free bytes, total bytes): the nearest existing folder."""
    where = path
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    return where, usage.free, usage.total


async def check_disk(request: web.Request) -> dict[str, Any]:
    folder = request.config_dict[SETTINGS].downloads.dir
    try:
        where, free_bytes, total_bytes = await asyncio.to_thread(_disk, folder)
    except OSError as exc:
        return check(
            "Disk", "error", f"Cannot read {folder}: {exc.strerror}", "Check [downloads] dir."
        )
    free = f"{format_size(free_bytes)} free of {format_size(total_bytes)}"
    details = [f"Downloads go to {folder}"]
    if where != folder:
        details.append("The folder does not exist yet; it is made when needed.")
    if free_bytes < LOW_DISK:
        return check(
            "Disk",
            "warn",
            f"Only {free}.",
            "A film needs up to tens of GB: free some space, or point [downloads] dir at a "
            "bigger disk.",
            details,
        )
    return check("Disk", "ok", f"{free}.", None, details)


@page
async def status(request: web.Request) -> web.StreamResponse:
    tmdb, indexers, usenet, disk = await asyncio.gather(
        check_tmdb(request), check_indexers(request), check_usenet(request), check_disk(request)
    )
    checks = [tmdb, *indexers, *usenet, disk]
    problems = sum(c["state"] in ("error", "warn") for c in checks)
    return render(request, "status.html", {"checks": checks, "problems": problems})


# --------------------------------------------------------------------------- filters


def relative(ts: float | None, now: float | None = None) -> str:
    """ "in 3 h", "5 min ago"; "" for None."""
    if ts is None:
        return ""
    delta = ts - (time.time() if now is None else now)
    span = abs(delta)
    if span < 60:
        text = "less than a minute"
    elif span < 3600:
        text = f"{round(span / 60)} min"
    elif span < 48 * 3600:
        text = f"{round(span / 3600)} h"
    else:
        text = f"{round(span / 86400)} days"
    return f"in {text}" if delta > 0 else f"{text} ago"


def clock(seconds: float | None) -> str:
    """1:02:03 or 4:05."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size(value: int | None) -> str:
    return format_size(value) if value else "—"


def speed(bps: float | None) -> str:
    return f"{format_size(int(bps))}/s" if bps else "—"


def eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return "—"
    if seconds < 60:
        return "less than a minute left"
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} min left"
    return f"{seconds / 3600:.1f} h left"


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


def setup_pages(app: web.Application, environ: Mapping[str, str] = os.environ) -> None:
    """The page routes, and what every template may use: ``demo`` (MATINEE_DEMO=1, read here,
    once), ``importmap``, and the formatting filters. Call after setup_templates."""
    base = app[SETTINGS].server.base_path
    app[DEMO] = environ.get("MATINEE_DEMO", "").strip() == "1"
    env = aiohttp_jinja2.get_env(app)
    env.globals["demo"] = app[DEMO]
    env.filters.update(
        {"relative": relative, "clock": clock, "size": size, "speed": speed, "eta": eta}
    )
    router = app.router
    router.add_get(base, home, name="home")
    router.add_get(f"{base}search", search, name="search")
    router.add_get(f"{base}movie/{{id}}", movie, name="movie")
    router.add_get(f"{base}job/{{job_id}}", job_page, name="job")
    router.add_get(f"{base}play/{{job_id}}", play, name="play")
    router.add_get(f"{base}downloads", downloads, name="downloads")
    router.add_get(f"{base}status", status, name="status")
    router.add_get(f"{base}favicon.ico", favicon, name="favicon")
    env.globals["importmap"] = _import_map(app)
