"""Server-rendered pages: the Jinja environment over web/templates and the static files.

Templates get plain data. Every URL in them comes from ``url(route_name, **parts)``, which
finds named routes of the app and its sub-apps, so the configured base path is honoured
everywhere; ``url('static', filename='matinee.css')`` carries a cache-busting version.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

import web as web_assets
from server.api.openapi import API_PREFIX
from server.keys import CSRF_TOKEN, SETTINGS

ASSETS = Path(web_assets.__file__).resolve().parent
TEMPLATES_DIR = ASSETS / "templates"
STATIC_DIR = ASSETS / "static"


def find_resource(app: web.Application, name: str) -> AbstractResource | None:
    """The resource named ``name`` in ``app`` or any of its sub-apps."""
    named = app.router.named_resources()
    if name in named:
        return named[name]
    for resource in app.router.resources():
        subapp = resource.get_info().get("app")
        if isinstance(subapp, web.Application):
            found = find_resource(subapp, name)
            if found is not None:
                return found
    return None


def _url(app: web.Application) -> Any:
    def url(name: str, query_: Mapping[str, str] | None = None, **parts: str | int) -> str:
        resource = find_resource(app, name)
        if resource is None:
            raise LookupError(f"no route is named {name!r}")
        result = resource.url_for(**{key: str(value) for key, value in parts.items()})
        if query_:
            result = result.with_query(query_)
        return str(result)

    return url


def setup(app: web.Application) -> jinja2.Environment:
    """Jinja (autoescaped, strict about undefined names) and ``{base}static/``."""
    base = app[SETTINGS].server.base_path
    app.router.add_static(f"{base}static", STATIC_DIR, append_version=True, name="static")
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.globals["url"] = _url(app)
    env.globals["base_path"] = base
    env.globals["api_base"] = f"{base}{API_PREFIX}"  # for the pages' JavaScript (api.js)
    return env


def render(
    request: web.Request, name: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """Render a page; every page also gets ``csrf_token`` (None without a session), for its
    forms and for the logout button of base.html."""
    full = {"csrf_token": request.get(CSRF_TOKEN), **context}
    return aiohttp_jinja2.render_template(name, request, full, status=status)
