"""Every typed application key in one place, so handlers find shared things by name."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from server.config import Settings
from server.jobs import JobManager
from server.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
JOBS = web.AppKey("jobs", JobManager)
HTTP = web.AppKey("http", aiohttp.ClientSession)  # outgoing requests (indexers, TMDB)
SECRET = web.AppKey("secret", bytes)  # signs media URLs
