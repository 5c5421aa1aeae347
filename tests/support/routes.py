"""Every route of an app and of its sub-apps, with concrete paths to call them by."""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

# Plausible values for path parameters; anything else gets "x1".
PARAMS = {
    "id": "603",
    "movie_id": "603",
    "job_id": "job_1700000000000_abcdef",
    "name": "movie.mkv",
    "filename": "matinee.css",
    "segment": "seg00001.ts",
    "path": "index.m3u8",
    "tail": "index.m3u8",
}


def concrete_path(resource: AbstractResource) -> str:
    info = resource.get_info()
    if "path" in info:
        return str(info["path"])
    if "formatter" in info:
        return re.sub(
            r"\{(\w+)(?::[^}]*)?\}", lambda m: PARAMS.get(m[1], "x1"), str(info["formatter"])
        )
    if "directory" in info:  # static files
        return f"{info['prefix']}/matinee.css"
    raise AssertionError(f"the route walk does not know how to call {resource!r}: teach it")


def walk(app: web.Application) -> Iterator[tuple[str, str, AbstractResource]]:
    """(method, path, resource) for every route of the app and, recursively, its sub-apps."""
    for resource in app.router.resources():
        subapp = resource.get_info().get("app")
        if isinstance(subapp, web.Application):
            yield from walk(subapp)
            continue
        for route in resource:
            methods = ["GET", "POST", "DELETE"] if route.method == "*" else [route.method]
            for method in methods:
                yield method, concrete_path(resource), resource
