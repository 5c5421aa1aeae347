"""The main app's error middleware: an error page for a person, the API's JSON for programs.

Paths under the API prefixes (``api/``, ``media/``, ``hls/``, ``metrics``) always answer
JSON; so does any request that does not ask for HTML. A browser asking for a page that fails
(an unknown page, a form without its CSRF token, a service that is down) gets a page that
says what happened, in the site's own layout. The mapping from error to status and code is
``server.http.errors``'s; the JSON API sub-app has its own middleware from there.
"""

from __future__ import annotations

import logging

from aiohttp import web

from server.http.errors import error_response
from server.http.errors import errors_middleware as make_errors_middleware
from server.http.middleware import is_api, relative_path
from server.keys import SETTINGS
from server.ui.templates import render

log = logging.getLogger(__name__)


#: Not pages either: what an <img> or a <link> loads gets the JSON shape, not HTML.
ASSETS = ("img/", "static/")


def wants_page(request: web.Request) -> bool:
    rel = relative_path(request.path, request.config_dict[SETTINGS].server.base_path)
    if is_api(rel) or (rel is not None and rel.startswith(ASSETS)):
        return False
    return "text/html" in request.headers.get("Accept", "")


def error_page(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None,
) -> web.Response:
    if not wants_page(request):
        return error_response(status, code, message, headers)
    try:
        response = render(
            request, "error.html", {"status": status, "code": code, "message": message},
            status=status,
        )  # fmt: skip
    except Exception:  # a page that cannot render its error still answers
        log.exception("cannot render the error page for %s", request.path)
        return error_response(status, code, message, headers)
    if headers:
        response.headers.update(headers)
    return response


#: Outermost: every failure, auth's included, as a page or as the API's error body.
errors_middleware = make_errors_middleware(error_page)
