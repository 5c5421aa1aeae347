"""The mirror's cleanup context: the S3 client (when ``[r2] enabled``), the mirror, the storage
limits and the retention timers, started after the job runners and stopped before them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from aiohttp import web

from server.keys import JOBS, METRICS, MIRROR, RETENTION, SETTINGS, STORE
from server.mirror.client import open_client
from server.mirror.retention import Retention
from server.mirror.service import Mirror
from server.mirror.space import Space


async def _mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, store, jobs, metrics = app[SETTINGS], app[STORE], app[JOBS], app[METRICS]
    async with AsyncExitStack() as stack:
        client = await open_client(settings.r2, stack) if settings.r2.enabled else None
        mirror = Mirror(settings, store, jobs, metrics, client)
        space = Space(settings, store, jobs, mirror, metrics)
        retention = Retention(settings, store, jobs, metrics)
        mirror.make_room = space.make_room_in_r2
        jobs.make_room = space.make_room
        app[MIRROR], app[RETENTION] = mirror, retention
        # Closed in reverse: the timers, then the uploads, then the client.
        stack.push_async_callback(mirror.close)
        await mirror.start()
        stack.push_async_callback(retention.close)
        await retention.start()
        try:
            yield
        finally:
            jobs.make_room = None


def setup(app: web.Application) -> None:
    """After the job runners, whose hooks it fills."""
    app.cleanup_ctx.append(_mirror_ctx)
