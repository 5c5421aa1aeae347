"""Every typed application key in one place, so handlers find shared things by name."""

from __future__ import annotations

from aiohttp import web

from server.config import Settings

SETTINGS = web.AppKey("settings", Settings)
