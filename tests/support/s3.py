"""A real S3 API on loopback for the mirror's tests: moto in server mode (a process of its
own, started once per run on a free port, as aiobotocore's own tests do), and an HTTP proxy
in front of it that counts what reaches the store and injects the faults R2 has (500/503
answers, SlowDown, connections reset, slow answers).

    proxy.fail(503, times=2, when=is_part)   # the next two part uploads get a 503
    proxy.parts                              # part numbers moto stored, in order
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from yarl import URL

from tests.support.ports import free_port

ACCESS_KEY = "matinee-test-key"
SECRET_KEY = "matinee-test-secret"
REGION = "auto"


@dataclass
class Moto:
    url: str
    proc: subprocess.Popen[bytes]

    def client(self, endpoint: str | None = None) -> Any:
        """A plain (blocking) boto3 client: call it in a thread."""
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"matinee-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket)
        return [str(item["Key"]) for item in answer.get("Contents", [])]

    def uploads(self, bucket: str) -> list[dict[str, Any]]:
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    port = free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # until it listens (its start takes a second or two)
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("moto server did not listen within 30 s")
        yield Moto(url, proc)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def is_part(request: web.Request) -> bool:
    return request.method == "PUT" and "partNumber" in request.query


@dataclass
class _Fault:
    kind: str  # "status", "reset", "slow"
    times: int
    when: Callable[[web.Request], bool]
    status: int = 503
    code: str = "ServiceUnavailable"
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None: no answer (reset)
    range: str | None = None  # the Range header, if any


@dataclass
class FaultProxy:
    """HTTP in front of moto. Requests are forwarded as they are (moto does not check
    signatures); faults answer instead of moto, or before it."""

    upstream: str
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    #: Part numbers whose upload moto answered 200 to, in order (the proxy passed it on).
    parts: list[int] = field(default_factory=list)
    delay_parts: float = 0.0  # every part upload waits this long before it is forwarded
    inflight: int = 0  # requests being handled now
    _faults: list[_Fault] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        when: Callable[[web.Request], bool] = is_part,
        code: str = "ServiceUnavailable",
    ) -> None:
        self._faults.append(_Fault("status", times, when, status=status, code=code))

    def reset(self, *, times: int = 1, when: Callable[[web.Request], bool] = is_part) -> None:
        self._faults.append(_Fault("reset", times, when))

    def slow(
        self, delay: float, *, times: int = 1, when: Callable[[web.Request], bool] = is_part
    ) -> None:
        self._faults.append(_Fault("slow", times, when, delay=delay))

    def count(self, method: str, *, status: int | None = 200, query: str | None = None) -> int:
        return sum(
            1
            for s in self.seen
            if s.method == method and s.status == status and (query is None or query in s.query)
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take(self, request: web.Request) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.when(request):
                fault.times -= 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        try:
            return await self._forward(request)
        finally:
            self.inflight -= 1

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(
            request.method, request.path, dict(request.query), None, request.headers.get("Range")
        )
        self.seen.append(seen)
        fault = self._take(request)
        if fault is not None and fault.kind == "reset":
            assert request.transport is not None
            request.transport.abort()  # the connection drops without an answer
            raise asyncio.CancelledError
        if fault is not None and fault.kind == "status":
            seen.status = fault.status
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                "<Message>injected by the test</Message></Error>"
            )
            return web.Response(status=fault.status, text=xml, content_type="application/xml")
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        if is_part(request) and self.delay_parts:
            await asyncio.sleep(self.delay_parts)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),  # as the client signed it
            headers=headers,
            data=io.BytesIO(body),
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            seen.status = upstream.status
            if is_part(request) and upstream.status == 200:
                self.parts.append(int(request.query["partNumber"]))
            skip = {"content-length", "transfer-encoding", "connection", "content-encoding"}
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in skip}
            if "Content-Encoding" in upstream.headers:
                out["Content-Encoding"] = upstream.headers["Content-Encoding"]
            if request.method == "HEAD":  # no body: its length is the object's
                response = web.Response(status=upstream.status, headers=out)
                response.headers["Content-Length"] = upstream.headers.get("Content-Length", "0")
                return response
            return web.Response(status=upstream.status, body=payload, headers=out)


@pytest.fixture
async def s3_proxy(moto_server: Moto) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(moto_server.url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def r2_settings(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    """The [r2] section for a test: path-style URLs (loopback has no bucket host names)."""
    return {
        "enabled": True,
        "endpoint": endpoint,
        "bucket": bucket,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "path_style": True,
        **extra,
    }
