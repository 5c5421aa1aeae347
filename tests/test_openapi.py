"""/api/openapi.json is the contract: every API route is in it, and real responses from the
app (backed by the fake TMDB, indexer and Usenet server) validate against it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from server.api.openapi import API_PREFIX, spec
from tests.support.app import API, HEADERS, until
from tests.support.fake_tmdb import THE_MATRIX, UNKNOWN_MOVIE_ID
from tests.support.media import ReleaseClips
from tests.support.world import World

PREFIX = "/" + API_PREFIX


SPEC = spec("/")


def validate(path: str, method: str, status: int, body: Any) -> None:
    op = SPEC["paths"][path][method]
    response = op["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    resolver_schema = {"components": SPEC["components"], **schema}
    jsonschema.Draft202012Validator(
        resolver_schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for resource in app.router.resources():
        if not isinstance(resource, web.PrefixedSubAppResource):
            continue
        if resource.canonical.rstrip("/") != PREFIX:
            continue
        for sub in resource._app.router.resources():
            for route in sub:
                if route.method != "HEAD":
                    found.add((sub.canonical.removeprefix(PREFIX), route.method.lower()))
    return found


def test_spec_is_valid_openapi_shape() -> None:
    assert SPEC["openapi"].startswith("3.1")
    for path, ops in SPEC["paths"].items():
        assert path.startswith("/")
        for method, op in ops.items():
            if method == "parameters":
                continue
            assert op["responses"], (path, method)
            for status, response in op["responses"].items():
                if "content" in response and "application/json" in response["content"]:
                    jsonschema.Draft202012Validator.check_schema(
                        response["content"]["application/json"]["schema"]
                    )
                assert re.fullmatch(r"[1-5]\d\d", status)


async def test_every_api_route_is_documented(world: World) -> None:
    app = world.client.app
    assert app is not None
    routes = api_routes(app)
    documented = {
        (path, method)
        for path, ops in SPEC["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert routes == documented


async def test_served_spec_matches(world: World) -> None:
    resp = await world.client.get("/api/openapi.json", headers=HEADERS)
    assert resp.status == 200
    assert (await resp.json())["paths"].keys() == SPEC["paths"].keys()


async def test_real_responses_follow_the_contract(
    world: World, release_clips: ReleaseClips
) -> None:
    async def check(method: str, path: str, template: str, status: int, **kw: Any) -> Any:
        resp = await world.client.request(method, f"{API}{path}", headers=HEADERS, **kw)
        body = await resp.json()
        assert resp.status == status, body
        validate(template, method.lower(), status, body)
        return body

    await check("GET", "/search?query=matrix", "/search", 200)
    await check("GET", "/search?query=", "/search", 400)
    await check("GET", "/popular", "/popular", 200)
    await check("GET", "/top?page=2", "/top", 200)
    await check("GET", f"/movies/{THE_MATRIX}", "/movies/{id}", 200)
    await check("GET", f"/movies/{UNKNOWN_MOVIE_ID}", "/movies/{id}", 404)
    await check("GET", f"/movies/{THE_MATRIX}/similar", "/movies/{id}/similar", 200)
    releases = await check("GET", f"/movies/{THE_MATRIX}/releases", "/movies/{id}/releases", 200)
    # A real film with AC3 sound and two SRT tracks: the stream answer lists its tracks.
    film = release_clips.path("h264-ac3-2srt.mkv").read_bytes()
    world.post(releases["releases"][0]["title"], data=film)
    await check(
        "POST", f"/movies/{THE_MATRIX}/fetch", "/movies/{id}/fetch", 400, json={"mode": "x"}
    )
    ref = await check("POST", f"/movies/{THE_MATRIX}/fetch", "/movies/{id}/fetch", 202, json={})
    job_id = ref["job_id"]
    await check("GET", f"/jobs/{job_id}", "/jobs/{job_id}", 200)
    await until(world.client, job_id, lambda j: j["status"] == "ready")
    await check("GET", f"/movies/{THE_MATRIX}", "/movies/{id}", 200)
    stream = await check("GET", f"/movies/{job_id}/stream", "/movies/{id}/stream", 200)
    assert stream["kind"] == "hls" and [t["language"] for t in stream["subtitles"]] == [
        "eng",
        "ger",
    ]
    await check("GET", f"/movies/{job_id}/stream?audio=0", "/movies/{id}/stream", 400)
    await check("GET", "/preferences", "/preferences", 200)
    await check("PUT", "/preferences", "/preferences", 200, json={"subtitle_language": "off"})
    await check("PUT", "/preferences", "/preferences", 400, json={"volume": 11})
    await check("GET", "/movies/job_1_ffffffff/stream", "/movies/{id}/stream", 404)
    await check("GET", "/jobs", "/jobs", 200)
    await check("GET", "/jobs?status=bogus", "/jobs", 400)
    await check(
        "PUT", f"/jobs/{job_id}/position", "/jobs/{job_id}/position", 200, json={"position": 12}
    )
    await check("GET", f"/jobs/{job_id}/position", "/jobs/{job_id}/position", 200)
    await check(
        "PUT", f"/jobs/{job_id}/position", "/jobs/{job_id}/position", 400, json={"position": -1}
    )
    await check("POST", "/jobs", "/jobs", 400, json={"nzb_url": "http://elsewhere.example/x.nzb"})
    await check("DELETE", f"/jobs/{job_id}", "/jobs/{job_id}", 200)
    await check("GET", "/jobs/job_1_ffffffff", "/jobs/{job_id}", 404)
    resp = await world.client.get(f"{API}/jobs")
    validate("/jobs", "get", 401, await resp.json())


@pytest.mark.parametrize("status", ["401", "404"])
def test_error_schema_rejects_other_shapes(status: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("/jobs/{job_id}", "get", int(status), {"message": "nope"})
    with pytest.raises(jsonschema.ValidationError):
        validate("/jobs/{job_id}", "get", int(status), {"error": "x", "code": "MADE_UP"})
