"""The Status page: the checks of ``server.ui.checks`` for the running server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.jobs.lifecycle import Status
from server.keys import DISCOVERY, JOBS, MIRROR, PLAYBACK, SETTINGS, STORE
from server.mirror.service import Mirror
from server.ui.checks import (
    check_disk,
    check_encoder,
    check_indexers,
    check_proxy,
    check_r2,
    check_tmdb,
    check_tools,
    check_usenet,
)
from server.ui.templates import render


async def status(request: web.Request) -> web.StreamResponse:
    discovery, settings = request.config_dict[DISCOVERY], request.config_dict[SETTINGS]
    busy = bool(await request.config_dict[STORE].jobs.list(Status.DOWNLOADING))
    tmdb, indexers, usenet, disk, r2, tools = await asyncio.gather(
        check_tmdb(discovery.tmdb),
        check_indexers(discovery.indexers, settings),
        check_usenet(
            request.config_dict[JOBS].servers, busy=busy, stats=request.config_dict[JOBS].line.stats
        ),
        check_disk(settings.downloads),
        check_r2(settings.r2, _mirror_problem(request.config_dict[MIRROR])),
        check_tools(),
    )
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    peer = peername[0] if isinstance(peername, tuple) and peername else None
    proxy = check_proxy(peer, request.headers, settings.server.trusted_proxies, request.remote)
    playback = request.config_dict[PLAYBACK]
    encoder = check_encoder(settings.transcode, await playback.encoder(), playback.encoder_note)
    checks = [tmdb, *indexers, *usenet, disk, r2, *tools, encoder, proxy]
    problems = sum(c["state"] in ("error", "warn") for c in checks)
    return render(request, "status.html", {"checks": checks, "problems": problems})


def _mirror_problem(mirror: Mirror) -> Callable[[], Awaitable[str | None]]:
    """The bucket's answer now, else the running mirror's last permanent problem."""

    async def problem() -> str | None:
        return await mirror.probe() or mirror.problem

    return problem


def setup(app: web.Application) -> None:
    app.router.add_get(f"{app[SETTINGS].server.base_path}status", status, name="status")
