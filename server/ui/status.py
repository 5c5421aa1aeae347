"""The Status page: each service Matinee depends on, whether it answers, and what to fix.

Every check has a time limit, runs at the same time as the others, and says in words what a
person should change (a setting by its key, or nothing but patience).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from nntp.errors import AuthError, TemporaryError
from server.discovery.releases.ranking import format_size
from server.errors import MatineeError
from server.jobs.lifecycle import Status
from server.jobs.servers import probe_usenet
from server.keys import DISCOVERY, JOBS, SETTINGS, STORE
from server.ui.filters import relative
from server.ui.templates import render

#: How long the Status page waits for each service.
CHECK_TIMEOUT = 8.0
#: Below this much free space the Status page warns.
LOW_DISK = 10 * 1000**3


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
    except MatineeError as exc:
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
    outcomes = await asyncio.gather(*(probe_usenet(s, CHECK_TIMEOUT) for s in servers))
    busy = bool(await request.config_dict[STORE].jobs.list(Status.DOWNLOADING))
    lines = []
    for spec, error in zip(servers, outcomes, strict=True):
        name = f"Usenet {spec.name or spec.host}"
        details = [
            f"Host: {spec.address}",
            "TLS" if spec.tls else "No TLS (plain text)",
            f"Connections: {spec.connections}",
            f"Priority: {spec.priority}",
        ]
        stats = manager.line.stats.get(spec.name)
        if stats is not None and (stats.articles or stats.missing or stats.errors):
            rtt = f", round trip {stats.rtt * 1000:.0f} ms" if stats.rtt is not None else ""
            details.append(
                f"Since start-up: {format_size(stats.bytes)} in {stats.articles} articles at "
                f"{format_size(round(stats.speed_bps))}/s, {stats.missing} missing, "
                f"{stats.errors} errors{rtt}"
            )
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


async def status(request: web.Request) -> web.StreamResponse:
    tmdb, indexers, usenet, disk = await asyncio.gather(
        check_tmdb(request), check_indexers(request), check_usenet(request), check_disk(request)
    )
    checks = [tmdb, *indexers, *usenet, disk]
    problems = sum(c["state"] in ("error", "warn") for c in checks)
    return render(request, "status.html", {"checks": checks, "problems": problems})


def setup(app: web.Application) -> None:
    app.router.add_get(f"{app[SETTINGS].server.base_path}status", status, name="status")
