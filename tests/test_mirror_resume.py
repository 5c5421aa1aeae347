"""`kill -9` of `matinee serve` in the middle of an upload to R2, and a restart: the upload goes
on (ListParts) and the parts R2 already holds are not sent again, counted at the proxy in
front of the S3 server rather than by Matinee's own word."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.app import API, KEY, post_of, wait_for
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, FaultProxy, Moto

pytestmark = pytest.mark.slow

MIB = 1 << 20
SIZE = 40 * MIB + 4321  # six parts of 8 MiB, the last one short
PARTS = set(range(1, 7))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`matinee serve` in a process of its own."""

    def __init__(self, tmp: Path, nntp_port: int, endpoint: str, bucket: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'[server]\nport = {self.port}\ndata_dir = "{tmp / "data"}"\n'
            f'[auth]\napi_keys = ["{KEY}"]\n'
            f'[[usenet.servers]]\nhost = "127.0.0.1"\nport = {nntp_port}\ntls = false\n'
            f'[r2]\nenabled = true\nendpoint = "{endpoint}"\nbucket = "{bucket}"\n'
            f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
            "path_style = true\nconcurrency = 1\n"
        )
        self.log = tmp / "serve.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.http = aiohttp.ClientSession(headers={"X-Api-Key": KEY})

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "serve", "--config", str(self.config),
                stdout=log, stderr=log,
            )  # fmt: skip

        async def answers() -> bool:
            assert self.proc is not None
            assert self.proc.returncode is None, self.log.read_text()[-2000:]
            try:
                async with self.http.get(f"{self.base}/api/health") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(answers, within=30, every=0.05)

    async def job(self, job_id: str) -> dict[str, object]:
        async with self.http.get(f"{self.base}{API}/jobs/{job_id}") as r:
            return dict(await r.json())

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self.http.close()


async def test_kill_9_mid_upload_then_restart_sends_only_the_missing_parts(
    tmp_path: Path, fake_nntp: FakeNntpFactory, moto_server: Moto, s3_proxy: FaultProxy
) -> None:
    data = await asyncio.to_thread(os.urandom, SIZE)
    nzb, arts = await asyncio.to_thread(post_of, data, "Long.2020.mkv")
    srv = await fake_nntp(articles=arts)
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    s3_proxy.delay_parts = 0.4  # a part every 0.4 s or so: the kill lands mid-upload
    serve = Serve(tmp_path, srv.port, s3_proxy.url, bucket)
    try:
        await serve.start()
        form = aiohttp.FormData()
        form.add_field("nzb", nzb, filename="Long.2020.nzb")
        async with serve.http.post(f"{serve.base}{API}/jobs", data=form) as r:
            assert r.status == 202, await r.text()
            job_id = str((await r.json())["job_id"])
        await wait_for(lambda: len(s3_proxy.parts) >= 2, within=60, every=0.02)
        await serve.kill()
        await wait_for(lambda: s3_proxy.inflight == 0, within=10)  # what was on its way lands
        before = set(s3_proxy.parts)
        sent_before = len(s3_proxy.parts)
        assert 2 <= len(before) < len(PARTS), before
        assert await asyncio.to_thread(moto_server.keys, bucket) == []  # not complete

        s3_proxy.delay_parts = 0.0
        await serve.start()

        async def mirrored() -> bool:
            mirror = (await serve.job(job_id))["mirror"]
            return isinstance(mirror, dict) and mirror["state"] == "mirrored"

        await wait_for(mirrored, within=60, every=0.1)
    finally:
        await serve.close()
    after = s3_proxy.parts[sent_before:]
    assert set(after).isdisjoint(before), f"sent again: {set(after) & before}"
    assert before | set(after) == PARTS and len(after) == len(set(after))
    assert s3_proxy.count("GET", query="uploadId") >= 1  # ListParts said what R2 held
    key = f"movies/{job_id}/Long.2020.mkv"
    head = await asyncio.to_thread(moto_server.client().head_object, Bucket=bucket, Key=key)
    assert head["ContentLength"] == SIZE
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert await asyncio.to_thread(moto_server.uploads, bucket) == []
