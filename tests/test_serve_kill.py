"""`matinee serve` killed with SIGKILL mid-download resumes the job when started again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.fake_nntp import FakeNntpFactory
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

KEY = "kill-test-api-key-0123456789"
API = "/api/movies-on-demand"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(config: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/health") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("matinee serve did not come up")


async def test_sigkill_mid_download_then_restart_resumes(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(6_000_000)
    arts = articles_for_bytes(data, "Movie.2020.mkv", part_size=100_000)
    nzb = build_nzb([NzbEntry.from_articles(arts)])
    srv = await fake_nntp(articles=arts, bytes_per_second=1_000_000)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\ndata_dir = "{tmp_path / "data"}"\n'
        f'[auth]\napi_keys = ["{KEY}"]\n'
        f'[[usenet.servers]]\nname = "fake"\nhost = "{srv.host}"\nport = {srv.port}\n'
        "tls = false\nconnections = 2\n"
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"X-Api-Key": KEY}
    proc = await start_server(config, port)
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            form = aiohttp.FormData()
            form.add_field("nzb", nzb, filename="Movie.2020.nzb")
            async with http.post(f"{base}{API}/jobs", data=form) as r:
                assert r.status == 202
                job_id = (await r.json())["job_id"]
            job: dict[str, Any] = {}
            async with asyncio.timeout(30):
                while job.get("bytes_done", 0) < 2_000_000:
                    async with http.get(f"{base}{API}/jobs/{job_id}") as r:
                        job = await r.json()
                    await asyncio.sleep(0.1)
            assert job["status"] == "downloading"
            proc.send_signal(signal.SIGKILL)  # no chance to save anything on the way out
            await proc.wait()
            served_before = sum(srv.bodies_served.values())
            srv.bytes_per_second = None

            proc = await start_server(config, port)
            async with asyncio.timeout(30):
                while True:
                    async with http.get(f"{base}{API}/jobs/{job_id}") as r:
                        job = await r.json()
                    assert job["status"] != "error", job["error_message"]
                    if job["status"] == "ready":
                        break
                    await asyncio.sleep(0.1)
            refetched = sum(srv.bodies_served.values()) - served_before
            assert refetched < len(arts) - 10  # resumed from what was on disk
            async with http.get(f"{base}{API}/movies/{job_id}/stream") as r:
                url = (await r.json())["url"]
            async with http.get(f"{base}{url}") as r:
                assert await r.read() == data
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
