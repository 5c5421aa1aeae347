"""The JSON API: a sub-app at ``{base}api/movies-on-demand`` with its own error middleware
(every failure in the contract's shape), and the OpenAPI document that describes it."""

from __future__ import annotations

from aiohttp import web

from server.api import discovery, jobs, playback
from server.api.openapi import API_PREFIX, spec
from server.http.errors import json_errors
from server.keys import SETTINGS


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec(request.config_dict[SETTINGS].server.base_path))


def setup(app: web.Application) -> None:
    base = app[SETTINGS].server.base_path
    api = web.Application(middlewares=[json_errors])
    api.add_routes(jobs.routes)
    api.add_routes(discovery.routes)
    api.add_routes(playback.routes)
    app.add_subapp(f"{base}{API_PREFIX}", api)
    app.router.add_get(f"{base}api/openapi.json", openapi, name="openapi")
