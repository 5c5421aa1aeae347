"""The API's one error shape, across every route that can fail (after datasette's
``test_error_shape``): each route of the real app is called with what cannot succeed (an
unknown or malformed id, a body that is not JSON, a service that is not configured), and the
answer is ``{"error": "<words>", "code": "<CODE>"}`` with the status that code stands for.
A browser asking for a page that fails gets a page instead.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config.load import parse_config
from server.http.errors import ERROR_CODES
from tests.support.app import API, HEADERS, KEY
from tests.support.routes import walk

Client = TestClient[web.Request, web.Application]

#: The status each code stands for (the contract's table, written out again here).
STATUS_OF = {
    "INVALID_INPUT": {400, 405, 413},
    "UNAUTHORIZED": {401},
    "FORBIDDEN": {403},
    "NOT_FOUND": {404},
    "CONFLICT": {409},
    "RATE_LIMITED": {429},
    "INTERNAL_ERROR": {500},
    "JOB_ERROR": {500},
    "TMDB_ERROR": {502},
    "NZBGEEK_ERROR": {502},
    "USENET_ERROR": {502},
    "STORAGE_ERROR": {502},
}
#: Path parameters that cannot succeed: ids of nothing, and ids that are not ids.
UNKNOWN = {"id": "999999999", "job_id": "job_1_0123abcd", "name": "nothing.mkv"}
MALFORMED = {"id": "x%2F..", "job_id": "job_nope", "name": "nothing.mkv"}
#: Routes that answer without failing whatever they are given.
ALWAYS_OK = {"/api/health", "/api/openapi.json", "/api/ready", "/metrics"}  # own documents
READ_OK = {"/api/movies-on-demand/preferences"}  # a GET reads them, whatever the query


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = parse_config(
        {
            "server": {"data_dir": str(tmp_path / "data")},
            "auth": {"api_keys": [KEY]},
            # TMDB and an indexer that do not answer: discovery fails, as it can for real
            "tmdb": {
                "token": "t" * 40,
                "base_url": "http://127.0.0.1:9/3",
                "image_base_url": "http://127.0.0.1:9",
            },
            "indexers": [{"name": "geek", "url": "http://127.0.0.1:9", "api_key": "g" * 32}],
        },
        base_dir=tmp_path,
        env={},
    )
    client = TestClient(TestServer(create_app(settings)), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client
    await client.close()


def _filler(values: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda m: values.get(m[1], "x")


def _failing_calls(app: web.Application) -> list[tuple[str, str]]:
    calls = []
    for method, _, resource in walk(app):
        info = resource.get_info()
        formatter = info.get("formatter") or info.get("path")
        if formatter is None or method == "HEAD" or "static" in str(formatter):
            continue
        template = str(formatter)
        if template in ALWAYS_OK or template.endswith(("login", "logout", "favicon.ico")):
            continue
        if method == "GET" and template in READ_OK:
            continue
        for values in (UNKNOWN, MALFORMED):
            path = re.sub(r"\{(\w+)(?::[^}]*)?\}", _filler(values), template)
            # query parameters that are out of range, for the routes that take any
            calls.append((method, f"{path}?page=0&status=nope" if method == "GET" else path))
    return sorted(set(calls))


def _is_page(path: str) -> bool:
    return not path.startswith(("/api/", "/media/", "/hls/", "/img/", "/metrics"))


async def test_every_failing_api_route_answers_the_one_error_shape(client: Client) -> None:
    assert client.app is not None
    calls = [(m, p) for m, p in _failing_calls(client.app) if not _is_page(p)]
    assert len(calls) > 20  # the walk found the API
    seen_codes = set()
    for method, path in calls:
        body = b"{not json" if method in ("POST", "PUT") else None
        resp = await client.request(
            method, path, data=body, headers={**HEADERS, "Content-Type": "application/json"}
        )
        where = f"{method} {path}"
        assert resp.status >= 400, f"{where} answered {resp.status}"
        assert resp.content_type == "application/json", where
        error = await resp.json()
        assert set(error) == {"error", "code"}, (where, error)
        assert isinstance(error["error"], str) and error["error"].strip(), where
        assert error["code"] in ERROR_CODES, (where, error)
        assert resp.status in STATUS_OF[error["code"]], (where, resp.status, error)
        assert "Traceback" not in error["error"], where
        seen_codes.add(error["code"])
    # unknown ids, malformed ids and bad bodies, and TMDB out of reach (500 by the contract)
    assert {"NOT_FOUND", "INVALID_INPUT", "INTERNAL_ERROR"} <= seen_codes, seen_codes


async def test_unknown_api_paths_and_methods_keep_the_shape(client: Client) -> None:
    for method, path, status, code in [
        ("GET", f"{API}/no-such-thing", 404, "NOT_FOUND"),
        ("PATCH", f"{API}/jobs", 405, "INVALID_INPUT"),
        ("GET", "/media/job_1_0123abcd/x.mkv", 404, "NOT_FOUND"),
        ("GET", f"{API}/jobs", 401, "UNAUTHORIZED"),  # no key
    ]:
        headers = {} if status == 401 else HEADERS
        resp = await client.request(method, path, headers=headers)
        assert (resp.status, (await resp.json())["code"]) == (status, code), (method, path)


async def test_a_browser_gets_an_error_page_not_json(client: Client) -> None:
    html = {**HEADERS, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path, status in [("/no-such-page", 404), ("/job/job_1_0123abcd", 404)]:
        resp = await client.get(path, headers=html)
        assert resp.status == status, path
        assert resp.content_type == "text/html", path
        text = await resp.text()
        assert 'id="error-message"' in text and "<html" in text, path
    # the same failure asked for by a program is the API's shape
    resp = await client.get("/no-such-page", headers=HEADERS)
    assert resp.status == 404 and (await resp.json())["code"] == "NOT_FOUND"
