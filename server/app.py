"""The application factory: one ``create_app(settings)``, no module-level state.

Each package owns its long-lived resources in a ``setup(app)`` beside its code; this module
only calls them, in an order that matters (cleanup contexts start in this order and stop in
reverse, and routes are matched in the order they are added).
"""

from __future__ import annotations

from aiohttp import web

from server.api import app as api
from server.config.settings import Settings
from server.discovery import service as discovery
from server.http import costs, credentials, forwarded, health, hls, limits, media, sessions
from server.http.forwarded import forwarded_middleware
from server.http.middleware import auth_middleware
from server.http.tokens import load_or_create_secret
from server.jobs import manager as jobs
from server.keys import METRICS, SECRET, SETTINGS
from server.metrics import Metrics
from server.mirror import setup as mirror
from server.playback import service as playback
from server.store import db as store
from server.ui import account, images, login, pages, status, templates
from server.ui.errors import errors_middleware


def create_app(settings: Settings) -> web.Application:
    # errors first (outermost) so every failure, auth's included, is a page or the API's error
    # body; then X-Forwarded-* from trusted proxies, so that auth (rate limit, Secure cookie)
    # sees the client's address and scheme; then auth.
    app = web.Application(middlewares=[errors_middleware, forwarded_middleware, auth_middleware])
    app[SETTINGS] = settings
    app[SECRET] = load_or_create_secret(settings.auth.session_secret, settings.server.data_dir)
    app[METRICS] = Metrics()
    forwarded.setup(app)  # which trusted proxies were warned about missing headers
    limits.setup(app)  # event streams open per client
    costs.setup(app)  # release searches and downloads per caller
    # Services, each needing those before it: SQLite; the outgoing HTTP session, TMDB and the
    # indexers (whose cache is the store's); the password and login sessions (in the store);
    # the job runners (which use the store and discovery); playback (probes and HLS over the
    # jobs' films); the mirror (which uses the jobs).
    store.setup(app)
    discovery.setup(app)
    credentials.setup(app)
    sessions.setup(app)
    jobs.setup(app)
    playback.setup(app)
    mirror.setup(app)  # R2, the retention timers and the storage limits (hooks into jobs)
    # Routes. Templates first: pages, the login page and error pages render with them.
    templates.setup(app)  # Jinja on web/templates, {base}static/
    login.setup(app)  # {base}login (and the first password), {base}logout, the login limiter
    account.setup(app)  # {base}account: change the password, log out everywhere
    images.setup(app)  # {base}img/{size}/{file}: TMDB posters and photos, cached on disk
    pages.setup(app)  # the UI's pages; reads MATINEE_DEMO once
    status.setup(app)  # {base}status: each service, and what to fix
    api.setup(app)  # {base}api/movies-on-demand/... (a sub-app) and {base}api/openapi.json
    media.setup(app)  # {base}media/{job_id}/{name}: byte ranges
    hls.setup(app)  # {base}hls/{job_id}/...: HLS outputs and WebVTT subtitles
    health.setup(app)  # {base}api/health, {base}api/ready, {base}metrics
    return app
