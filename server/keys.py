"""Every typed application key in one place, so handlers find shared things by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from server.config.settings import Settings
from server.discovery.service import Discovery
from server.jobs.manager import JobManager
from server.store.db import Store

if TYPE_CHECKING:
    # server.http.sessions imports this module; its classes are needed here only for typing.
    from server.http.sessions import ActiveSession, LoginLimiter, Sessions
    from server.ui.images import ImageCache

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
JOBS = web.AppKey("jobs", JobManager)
HTTP = web.AppKey("http", aiohttp.ClientSession)  # outgoing requests (indexers, TMDB)
SECRET = web.AppKey("secret", bytes)  # signs media URLs
DISCOVERY = web.AppKey("discovery", Discovery)  # TMDB + indexers + ranking
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")  # failed logins per IP
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")  # login sessions (in the store)
IMAGES: web.AppKey[ImageCache] = web.AppKey("images")  # posters and photos cached on disk
DEMO = web.AppKey("demo", bool)  # MATINEE_DEMO=1: stand-in services; every page says so

# Per request, set by the auth middleware when a session cookie authenticated the request.
SESSION: web.RequestKey[ActiveSession] = web.RequestKey("session")
CSRF_TOKEN = web.RequestKey("csrf", str)  # the session's token, for forms in templates
