"""The account page: change the household's password, and log out everywhere.

Both end every session and every media link handed out before (the credential epoch,
``server.http.credentials``); a password change keeps the browser that made it logged in.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.http.forms import read_form
from server.http.passwords import MIN_PASSWORD, hash_password
from server.http.sessions import SESSION_COOKIE, base_path
from server.keys import CREDENTIALS, SETTINGS
from server.ui.login import check_password, logged_in, new_password_problem
from server.ui.templates import render

log = logging.getLogger(__name__)


def _page(
    request: web.Request, *, status: int = 200, error: str | None = None, changed: bool = False
) -> web.Response:
    context = {"error": error, "changed": changed, "min_password": MIN_PASSWORD}
    response = render(request, "account.html", context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def account(request: web.Request) -> web.StreamResponse:
    return _page(request, changed=request.query.get("changed") == "1")


async def change_password(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    current = form.get("current")
    refused = await check_password(request, current if isinstance(current, str) else "")
    if refused is not None:
        response = _page(request, status=refused.status, error=refused.error)
        if refused.headers:
            response.headers.update(refused.headers)
        return response
    problem = new_password_problem(form.get("password"), form.get("password_again"))
    if problem is not None:
        return _page(request, status=400, error=problem)
    encoded = await asyncio.to_thread(hash_password, str(form.get("password")))
    await request.config_dict[CREDENTIALS].set_password(encoded)
    log.info("the password was changed from %s", request.remote)
    # Every session ended with the change; this browser gets a new one.
    return await logged_in(request, f"{base_path(request)}account?changed=1")


async def log_out_everywhere(request: web.Request) -> web.StreamResponse:
    await request.config_dict[CREDENTIALS].log_out_everywhere()
    base = base_path(request)
    response = web.Response(status=303, headers={"Location": f"{base}login"})
    response.del_cookie(
        SESSION_COOKIE, path=base, secure=request.secure, httponly=True, samesite="Lax"
    )
    return response


def setup(app: web.Application) -> None:
    base = app[SETTINGS].server.base_path
    app.router.add_get(f"{base}account", account, name="account")
    app.router.add_post(f"{base}account/password", change_password, name="account-password")
    app.router.add_post(
        f"{base}account/logout-everywhere", log_out_everywhere, name="account-logout-everywhere"
    )
