"""``{base}api/health``: liveness, public, and says nothing about the inside."""

from __future__ import annotations

from aiohttp import web

from server.keys import SETTINGS


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    base = app[SETTINGS].server.base_path
    app.router.add_get(f"{base}api/health", health, name="health")
