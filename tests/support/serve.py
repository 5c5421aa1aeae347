"""`matinee serve` as a user runs it: a process of its own with a config file, driven over
HTTP with an API key; for the tests that stop it (SIGKILL, SIGTERM) and start it again."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.app import API, KEY
from tests.support.ports import free_port


class ServeProcess:
    """``sections`` is the config beyond [server] (port, data dir) and [auth] (one key)."""

    def __init__(self, tmp: Path, sections: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'[server]\nport = {self.port}\ndata_dir = "{tmp / "data"}"\n'
            f'[auth]\napi_keys = ["{KEY}"]\n{sections}'
        )
        self.log = tmp / "serve.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.http = aiohttp.ClientSession(headers={"X-Api-Key": KEY})

    async def start(self) -> None:
        """Started, and answering /api/health; a process that exits says why (its log)."""
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "serve", "--config", str(self.config),
                stdout=log, stderr=log,
            )  # fmt: skip
        async with asyncio.timeout(30):
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"matinee serve exited:\n{self.log_tail()}")
                try:
                    async with self.http.get(f"{self.base}/api/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)

    async def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        async with asyncio.timeout(30):
            await self.proc.wait()

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self.http.close()

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "aiohttp.access" not in line)[-3000:]

    async def submit(self, nzb: bytes, filename: str) -> str:
        form = aiohttp.FormData()
        form.add_field("nzb", nzb, filename=filename)
        async with self.http.post(f"{self.base}{API}/jobs", data=form) as r:
            assert r.status == 202, await r.text()
            return str((await r.json())["job_id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}{API}/jobs/{job_id}") as r:
            assert r.status == 200
            return dict(await r.json())
