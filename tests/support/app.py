"""Starting Matinee for a test: settings around the fake servers, the app on a loopback port,
and the small calls every API test makes (submit an NZB, read a job, wait for a state)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.api.openapi import API_PREFIX
from server.app import create_app
from server.config.load import parse_config
from server.config.settings import Settings
from tests.support.fake_nntp import FakeNntpServer
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

API = "/" + API_PREFIX
KEY = "test-api-key-0123456789"
HEADERS = {"X-Api-Key": KEY}
#: A second program's key: limits that are per caller give it its own.
OTHER_KEY = "other-test-api-key-9876543210"
PART = 64 * 1024

Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


def usenet_of(srv: FakeNntpServer, *, name: str = "fake", timeout: float = 5) -> dict[str, Any]:
    """The ``[usenet]`` section for one fake server: plain TCP, two connections."""
    server = {"name": name, "host": srv.host, "port": srv.port, "tls": False}
    return {"servers": [{**server, "connections": 2, "pipelining": 2, "timeout": timeout}]}


def settings_for(tmp: Path, srv: FakeNntpServer, **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp / "data")},
        "auth": {"api_keys": [KEY, OTHER_KEY]},
        "usenet": usenet_of(srv),
    }
    raw.update(extra)
    return parse_config(raw, base_dir=tmp, env={})


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[[Settings], Awaitable[Client]]]:
    clients: list[Client] = []

    async def start(settings: Settings) -> Client:
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for c in clients:
        await c.close()


def post_of(data: bytes, name: str) -> tuple[bytes, list[Any]]:
    arts = articles_for_bytes(data, name, part_size=PART)
    return build_nzb([NzbEntry.from_articles(arts)]), arts


async def submit(client: Client, nzb: bytes, filename: str = "The.Movie.2019.nzb") -> str:
    form = aiohttp.FormData()
    form.add_field("nzb", nzb, filename=filename, content_type="application/x-nzb")
    resp = await client.post(f"{API}/jobs", data=form, headers=HEADERS)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["status"] == "queued"
    return str(body["job_id"])


async def job(client: Client, job_id: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/jobs/{job_id}", headers=HEADERS)
    assert resp.status == 200
    return dict(await resp.json())


async def follow(client: Client, job_id: str, within: float = 30) -> list[dict[str, Any]]:
    """Every job snapshot the event stream (SSE) carries, until the stream ends."""
    resp = await client.get(f"{API}/jobs/{job_id}/events", headers=HEADERS)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        async for line in resp.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
    return seen


async def until(
    client: Client,
    job_id: str,
    cond: Callable[[dict[str, Any]], bool],
    t: float = 30,
    *,
    may_fail: bool = False,
) -> dict[str, Any]:
    """The job once ``cond`` holds for it; a failure of the job fails the wait at once,
    unless the test expects one (``may_fail``)."""
    found: dict[str, Any] = {}

    async def holds() -> bool:
        nonlocal found
        found = await job(client, job_id)
        assert may_fail or found["status"] != "error", found["error_message"]
        return cond(found)

    await wait_for(holds, within=t, every=0.05)
    return found


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], *, within: float = 5.0, every: float = 0.01
) -> None:
    """Until ``predicate()`` (plain or awaitable) is true; TimeoutError after ``within`` s.

    The one way tests wait for a condition: never a bare sleep standing in for readiness."""
    async with asyncio.timeout(within):
        while True:
            result = predicate()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(every)
