"""The checks behind the Status page and `matinee doctor`: each thing Matinee depends on,
whether it answers, and what to fix.

Every check has a time limit, runs at the same time as the others, and says in words what a
person should change (a setting by its key, or nothing but patience). They take what they
check as arguments, so a running server and the doctor (which starts none) share them.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from nntp.connection import ServerSpec
from nntp.errors import AuthError, TemporaryError
from nntp.line import ServerStats
from server.config.settings import (
    DownloadsConfig,
    IPNetwork,
    R2Config,
    Settings,
    TranscodeConfig,
)
from server.discovery.indexers import Indexers
from server.discovery.releases.ranking import format_size
from server.discovery.tmdb import TmdbClient
from server.errors import MatineeError
from server.http.forwarded import is_trusted, parse_address
from server.jobs.disk import disk_usage
from server.jobs.servers import probe_usenet
from server.ui.filters import relative
from transcode.argv import VideoEncoder
from transcode.process import ProcessError, run

#: How long the Status page waits for each service.
CHECK_TIMEOUT = 8.0


def check(
    name: str, state: str, summary: str, fix: str | None = None, details: Iterable[str] = ()
) -> dict[str, Any]:
    """One line of the Status page; state is "ok", "warn", "error" or "off"."""
    return {"name": name, "state": state, "summary": summary, "fix": fix, "details": list(details)}


async def check_tmdb(tmdb: TmdbClient) -> dict[str, Any]:
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


async def check_indexers(indexers: Indexers, settings: Settings) -> list[dict[str, Any]]:
    names = indexers.enabled
    if not settings.indexers:
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


async def check_usenet(
    servers: Sequence[ServerSpec],
    *,
    busy: bool,
    stats: Mapping[str, ServerStats] | None = None,
) -> list[dict[str, Any]]:
    """``busy``: downloads are running (a refused connection may be the plan's limit);
    ``stats``: what each server did since start-up (the job manager's line)."""
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
    lines = []
    for spec, error in zip(servers, outcomes, strict=True):
        name = f"Usenet {spec.name or spec.host}"
        details = [
            f"Host: {spec.address}",
            "TLS" if spec.tls else "No TLS (plain text)",
            f"Connections: {spec.connections}",
            f"Priority: {spec.priority}",
        ]
        done = (stats or {}).get(spec.name)
        if done is not None and any(
            (done.articles, done.missing, done.corrupt, done.timeouts, done.errors)
        ):
            rtt = f", round trip {done.rtt * 1000:.0f} ms" if done.rtt is not None else ""
            details.append(
                f"Since start-up: {format_size(done.bytes)} in {done.articles} articles at "
                f"{format_size(round(done.speed_bps))}/s, {done.missing} missing, "
                f"{done.corrupt} corrupt, {done.timeouts} timed out, {done.errors} errors{rtt}"
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


async def check_disk(downloads: DownloadsConfig) -> dict[str, Any]:
    folder = downloads.dir
    try:
        where, free_bytes, total_bytes = await asyncio.to_thread(disk_usage, folder)
    except OSError as exc:
        return check(
            "Disk", "error", f"Cannot read {folder}: {exc.strerror}", "Check [downloads] dir."
        )
    free = f"{format_size(free_bytes)} free of {format_size(total_bytes)}"
    details = [f"Downloads go to {folder}"]
    if where != folder:
        details.append("The folder does not exist yet; it is made when needed.")
    if free_bytes < downloads.min_free_gb * 1e9:
        return check(
            "Disk",
            "warn",
            f"Only {free}.",
            "A film needs up to tens of GB: free some space, or point [downloads] dir at a "
            "bigger disk.",
            details,
        )
    return check("Disk", "ok", f"{free}.", None, details)


async def check_r2(r2: R2Config, probe: Callable[[], Awaitable[str | None]]) -> dict[str, Any]:
    """The R2 line: off, or whether the bucket answers ``probe`` (and the mirror's own last
    permanent problem, when the server runs one)."""
    if not r2.enabled:
        return check("R2", "off", "Off: finished movies stay on this machine only.")
    where = f"Bucket {r2.bucket} at {r2.endpoint}"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            problem = await probe()
    except TimeoutError:
        problem = f"R2 did not answer within {CHECK_TIMEOUT:g} s"
    if problem:
        return check(
            "R2",
            "error",
            _sentence(problem.removeprefix("R2: ")),
            "Fix the [r2] setting the message names, then restart Matinee: movies that were"
            " not uploaded are uploaded then. Their local copies are kept meanwhile.",
            [where],
        )
    return check(
        "R2", "ok", f"Mirroring finished movies; they play from R2 ({r2.serve}).", None, [where]
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".") + "."


TOOLS = {
    "ffmpeg": ["ffmpeg", "-version"],
    "ffprobe": ["ffprobe", "-version"],
    "par2": ["par2", "--version"],
    "unar": ["unar", "--version"],
}


async def check_tools() -> list[dict[str, Any]]:
    """The programs Matinee runs, and their versions."""

    async def one(name: str, argv: list[str]) -> dict[str, Any]:
        what = {
            "ffmpeg": "Films that need converting cannot play",
            "ffprobe": "Matinee cannot tell what a film holds",
            "par2": "Damaged posts cannot be repaired",
            "unar": "Compressed archives cannot be extracted",
        }[name]
        if shutil.which(argv[0]) is None:
            return check(name, "error", f"Not installed. {what}.", f"apt-get install {name}")
        try:
            done = await run(argv, timeout=CHECK_TIMEOUT)
            first = (done.stdout.decode(errors="replace") or "").strip().splitlines()
        except ProcessError as exc:
            return check(name, "error", f"Does not run: {exc}", f"Reinstall {name}.")
        return check(name, "ok", first[0] if first else "Installed.")

    return list(await asyncio.gather(*(one(n, a) for n, a in TOOLS.items())))


def check_encoder(config: TranscodeConfig, chosen: VideoEncoder, why: str | None) -> dict[str, Any]:
    """Which encoder converts video for browsers that cannot play a film's own, and why a
    configured hardware one is not used."""
    name = "Video encoder"
    if chosen.hardware is not None:
        where = f" on {chosen.device}" if chosen.device else ""
        return check(name, "ok", f"{chosen.hardware.upper()}{where}: a test encode worked.")
    cpu = f"libx264 on the CPU (preset {chosen.preset}, {chosen.threads} threads)"
    if why:
        return check(
            name,
            "warn",
            f"{(config.hardware or '').upper()} is configured but not used: {why}.",
            "Check the device and its driver (vainfo, nvidia-smi), or remove [transcode] hardware.",
        )
    return check(name, "ok", f"Using {cpu}.")


def check_proxy(
    peer: str | None, headers: Mapping[str, str], trusted: Sequence[IPNetwork], client: str | None
) -> dict[str, Any]:
    """How this very request reached Matinee: directly, or through a reverse proxy that
    says who the client is (X-Forwarded-For) and is trusted to say it."""
    sent = "X-Forwarded-For" in headers
    address = parse_address(peer) if peer else None
    from_trusted = address is not None and is_trusted(address, trusted)
    details = [f"Seen as coming from {client or 'unknown'}"]
    if from_trusted and sent:
        return check(
            "Reverse proxy", "ok", "Your proxy is trusted and names the client.", None, details
        )
    if from_trusted:
        return check(
            "Reverse proxy",
            "warn",
            "A trusted proxy sent no X-Forwarded-For: every client looks like the proxy.",
            "Use a configuration from contrib/ (it sets X-Forwarded-For, -Proto and -Host).",
            details,
        )
    if sent:
        return check(
            "Reverse proxy",
            "warn",
            f"A proxy at {peer} sent X-Forwarded-For, but it is not trusted: Matinee ignores it.",
            f'Add "{peer}" to [server] trusted_proxies.',
            details,
        )
    return check("Reverse proxy", "off", "This request came straight to Matinee.", None, details)
