"""The application factory: one ``create_app(settings)``, no module-level state."""

from __future__ import annotations

from aiohttp import web

from server.config import Settings
from server.keys import SETTINGS
from server.middleware import auth_middleware, errors_middleware


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(settings: Settings) -> web.Application:
    # errors first (outermost) so every failure, auth included, has the API's error shape
    app = web.Application(middlewares=[errors_middleware, auth_middleware])
    app[SETTINGS] = settings
    base = settings.server.base_path.rstrip("/")
    app.router.add_get(f"{base}/api/health", health, name="health")
    return app
