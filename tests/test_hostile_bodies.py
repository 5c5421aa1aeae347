"""Request bodies an attacker sends, before logging in and after: every one is a 400 in the
error shape, and none leaves a traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config.load import parse_config
from server.http.passwords import hash_password
from tests.support.app import API, HEADERS, KEY, Client

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"position": ' + DEEP_JSON + b"}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = parse_config(
        {
            "server": {"data_dir": str(tmp_path / "data")},
            "auth": {"api_keys": [KEY], "password_hash": hash_password("good password", n=16)},
            "usenet": {"servers": [{"name": "x", "host": "127.0.0.1", "port": 9, "tls": False}]},
        },
        base_dir=tmp_path,
        env={},
    )
    client = TestClient(TestServer(create_app(settings)), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client
    await client.close()


LOGIN_BODIES = [
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"password=x&csrf=y"),
    ("application/x-www-form-urlencoded; charset=utf-8", b"password=\xff\xfe\xfa&csrf=\x80"),
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data\r\n\r\nx\r\n--x--\r\n"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nnot a header line at all"),
]
API_BODIES = [
    ("POST", "/jobs", "multipart/form-data", b"no boundary here"),
    ("POST", "/jobs", "multipart/form-data; boundary=b", b"--b\r\nContent-Disp\x00\r\n\r\n"),
    ("POST", "/jobs", "application/json", DEEP_JSON),
    ("POST", "/jobs", "application/json; charset=klingon", b'{"nzb_url": "x"}'),
    ("POST", "/jobs", "application/json", b'{"nzb_url": "\xff\xfe"}'),
    ("POST", "/movies/603/fetch", "application/json", DEEP_JSON),
    ("PUT", "/jobs/job_1_0123abcd/position", "application/json", DEEP_OBJECT),
]


@pytest.mark.parametrize(("content_type", "body"), LOGIN_BODIES)
async def test_login_bodies_before_logging_in(
    client: Client, content_type: str, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    resp = await client.post("/login", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    error = await resp.json()
    assert error["code"] == "INVALID_INPUT" and error["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(("method", "path", "content_type", "body"), API_BODIES)
async def test_api_bodies(
    client: Client,
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    headers = {**HEADERS, "Content-Type": content_type}
    resp = await client.request(method, f"{API}{path}", data=body, headers=headers)
    assert resp.status == 400, await resp.text()
    error = await resp.json()
    assert set(error) == {"error", "code"} and error["code"] == "INVALID_INPUT"
    assert "Traceback" not in error["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
