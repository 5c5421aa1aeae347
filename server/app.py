"""The application factory: one ``create_app(settings)``, no module-level state.

Long-lived resources each own their start and stop in a cleanup context, in dependency
order: SQLite store, outgoing HTTP session, the TMDB and indexer clients that use both,
then the job manager that uses all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server.api import discovery as api_discovery
from server.api import jobs as api_jobs
from server.api.openapi import spec
from server.config.settings import Settings
from server.discovery.indexers import Indexers
from server.discovery.service import Discovery
from server.discovery.tmdb import TmdbClient
from server.http.forwarded import forwarded_middleware
from server.http.media import MediaView, media_handler
from server.http.middleware import auth_middleware, errors_middleware
from server.http.sessions import setup_auth
from server.http.tokens import load_or_create_secret
from server.jobs.manager import JobManager
from server.keys import DISCOVERY, HTTP, JOBS, SECRET, SETTINGS, STORE
from server.store.db import store_context
from server.ui.images import setup_images
from server.ui.pages import setup_pages
from server.ui.templates import setup_templates

API_PREFIX = "api/movies-on-demand"


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    async with store_context(settings.server.data_dir / "matinee.sqlite3") as store:
        app[STORE] = store
        yield


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(headers={"User-Agent": "Matinee"}) as session:
        app[HTTP] = session
        yield


async def _discovery_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, session, store = app[SETTINGS], app[HTTP], app[STORE]
    app[DISCOVERY] = Discovery(
        TmdbClient(session, settings.tmdb, store), Indexers(session, settings.indexers, store)
    )
    yield


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    manager = JobManager(app[STORE], app[SETTINGS], releases=app[DISCOVERY])
    app[JOBS] = manager
    await manager.start()
    try:
        yield
    finally:
        await manager.close()


def create_app(settings: Settings) -> web.Application:
    # errors first (outermost) so every failure, auth included, has the API's error shape;
    # then X-Forwarded-* from trusted proxies, so that auth (rate limit, Secure cookie) sees
    # the client's address and scheme; then auth.
    app = web.Application(middlewares=[errors_middleware, forwarded_middleware, auth_middleware])
    app[SETTINGS] = settings
    app[SECRET] = load_or_create_secret(settings.auth.session_secret, settings.server.data_dir)
    app.cleanup_ctx.extend([_store_ctx, _http_ctx, _discovery_ctx, _jobs_ctx])
    setup_templates(app)  # Jinja on web/templates, {base}static/
    setup_auth(app)  # login/logout routes; sessions need the store, so after its context
    setup_images(app)  # {base}img/{size}/{file}: TMDB posters and photos, cached on disk
    setup_pages(app)  # the UI's pages; reads MATINEE_DEMO once; after setup_templates
    base = settings.server.base_path  # always starts and ends with "/"

    api = web.Application()
    api.add_routes(api_jobs.routes)
    api.add_routes(api_discovery.routes)
    app.add_subapp(f"{base}{API_PREFIX}", api)

    async def lookup(job_id: str, name: str) -> MediaView | None:
        if JOBS not in app:
            return None
        view = app[JOBS].view(job_id)
        return view if view is not None and view.name == name else None

    handler = media_handler(lookup)
    app.router.add_route("GET", f"{base}media/{{job_id}}/{{name}}", handler, name="media")
    app.router.add_route("HEAD", f"{base}media/{{job_id}}/{{name}}", handler)
    app.router.add_get(f"{base}api/health", health, name="health")

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(spec(base))

    app.router.add_get(f"{base}api/openapi.json", openapi, name="openapi")
    return app
