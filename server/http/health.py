"""Operations endpoints: ``{base}api/health`` (liveness: the process answers),
``{base}api/ready`` (readiness: what Matinee needs works, each failing check named) and
``{base}metrics`` (Prometheus text).

Health and readiness are public, so they say nothing a stranger could use: no paths, no
host names, no versions; only which check fails and, in words, why.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.jobs.disk import free_bytes
from server.jobs.lifecycle import Status
from server.jobs.servers import probe_usenet
from server.keys import (
    JOBS,
    METRICS,
    MIRROR,
    PLAYBACK,
    R2_WATCH,
    SETTINGS,
    STORE,
    USENET_WATCH,
)

#: A Usenet server that answered this recently counts as answering (probes are cached).
USENET_FRESH = 60.0
PROBE_TIMEOUT = 5.0
TOOLS = ("ffmpeg", "ffprobe", "par2", "unar")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _database(request: web.Request) -> Check:
    try:
        async with request.config_dict[STORE].db.write():
            pass  # BEGIN IMMEDIATE and COMMIT: the file takes writes
    except Exception:
        return Check("database", False, "the database does not take writes")
    return Check("database", True, "writable")


async def _disk(request: web.Request) -> Check:
    downloads = request.config_dict[SETTINGS].downloads
    try:
        free = await asyncio.to_thread(free_bytes, downloads.dir)
    except OSError:
        return Check("disk", False, "the downloads' folder cannot be read")
    floor = downloads.min_free_gb * 1e9
    if free < floor:
        return Check("disk", False, f"{free / 1e9:.1f} GB free, below {downloads.min_free_gb:g} GB")
    return Check("disk", True, f"{free / 1e9:.1f} GB free")


def _tools() -> Check:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return Check("tools", False, "not installed: " + ", ".join(missing))
    return Check("tools", True, "ffmpeg, ffprobe, par2 and unar are installed")


class UsenetWatch:
    """When a configured Usenet server last answered; probed at most every USENET_FRESH."""

    def __init__(self) -> None:
        self.last_ok = 0.0
        self.last_probe = 0.0
        self._lock = asyncio.Lock()

    async def check(self, request: web.Request) -> Check:
        servers = request.config_dict[JOBS].servers
        if not servers:
            return Check("usenet", False, "no Usenet server is configured")
        async with self._lock:
            now = time.monotonic()
            if now - self.last_ok > USENET_FRESH and now - self.last_probe > USENET_FRESH / 4:
                self.last_probe = now
                answers = await asyncio.gather(*(probe_usenet(s, PROBE_TIMEOUT) for s in servers))
                if any(a is None for a in answers):
                    self.last_ok = time.monotonic()
        if time.monotonic() - self.last_ok <= USENET_FRESH:
            return Check("usenet", True, "a server answered within the last minute")
        return Check("usenet", False, f"none of {len(servers)} Usenet server(s) answered")


class R2Watch:
    """Whether the R2 bucket answers, asked at most every USENET_FRESH seconds (a readiness
    probe every few seconds must not become a request to the bucket each time)."""

    def __init__(self) -> None:
        self.asked = -USENET_FRESH
        self.ok = False
        self._lock = asyncio.Lock()

    async def check(self, request: web.Request) -> Check:
        async with self._lock:
            if time.monotonic() - self.asked > USENET_FRESH:
                try:
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        self.ok = await request.config_dict[MIRROR].probe() is None
                except TimeoutError:
                    self.ok = False
                self.asked = time.monotonic()
        if self.ok:
            return Check("r2", True, "the bucket answered")
        return Check("r2", False, "the bucket did not answer: the Status page says why")


async def ready(request: web.Request) -> web.Response:
    watch = request.config_dict[USENET_WATCH]
    checks = [
        *await asyncio.gather(_database(request), _disk(request), watch.check(request)),
        _tools(),
    ]
    if request.config_dict[SETTINGS].r2.enabled:
        checks.append(await request.config_dict[R2_WATCH].check(request))
    ok = all(c.ok for c in checks)
    body = {
        "status": "ready" if ok else "not ready",
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "failing": [c.name for c in checks if not c.ok],
    }
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Gauges read now (jobs, speed, disk), then everything in the text format."""
    app_metrics = request.config_dict[METRICS]
    jobs = await request.config_dict[STORE].jobs.list()
    for status in Status:
        app_metrics.jobs.labels(status=status.value).set(sum(j.status == status for j in jobs))
    app_metrics.download_speed.set(request.config_dict[JOBS].speed())
    app_metrics.hls_sessions.set(len(request.config_dict[PLAYBACK].sessions))
    try:
        free = await asyncio.to_thread(free_bytes, request.config_dict[SETTINGS].downloads.dir)
        app_metrics.disk_free.set(free)
    except OSError:
        pass
    text = await asyncio.to_thread(generate_latest, app_metrics.registry)
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    base = settings.server.base_path
    app[USENET_WATCH] = UsenetWatch()
    app[R2_WATCH] = R2Watch()
    app.router.add_get(f"{base}api/health", health, name="health")
    app.router.add_get(f"{base}api/ready", ready, name="ready")
    if settings.metrics.enabled:
        app.router.add_get(f"{base}metrics", metrics, name="metrics")
