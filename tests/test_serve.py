"""`matinee serve` as systemd runs it: READY=1 once it listens, WATCHDOG=1 while it runs,
and on SIGTERM STOPPING=1, a clean exit well within the unit's stop timeout; the bound on
reading a request's headers applies to the real server. And the shipped unit passes
`systemd-analyze verify`, and `systemd-analyze security` rates it OK (2.0 or less)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "matinee.service"


async def _datagrams(sock: socket.socket, until: str, within: float) -> list[str]:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    async with asyncio.timeout(within):
        while not any(until in m for m in seen):
            data = await loop.sock_recv(sock, 4096)
            seen.append(data.decode())
    return seen


async def test_serve_speaks_systemds_notify_protocol(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = {port}\ndata_dir = "{tmp_path / "data"}"\n')
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", "--config", str(config),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        seen = await _datagrams(sock, "READY=1", within=30)
        # Ready means listening: the port answers now, not later.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        seen += await _datagrams(sock, "WATCHDOG=1", within=5)
        # A slow-loris connection is closed by the real server too (after 20 s: not waited
        # for here); a normal request is served.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
        proc.send_signal(signal.SIGTERM)
        started = asyncio.get_running_loop().time()
        seen += await _datagrams(sock, "STOPPING=1", within=10)
        async with asyncio.timeout(10):
            code = await proc.wait()
        took = asyncio.get_running_loop().time() - started
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sock.close()
    assert code == 0, (await proc.stderr.read()).decode() if proc.stderr else code
    assert took < 10, took
    assert seen[0].startswith("READY=1")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not here")
def test_the_unit_is_valid_and_rated_ok(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: point it at this checkout's matinee.
    matinee = Path(sys.executable).parent / "matinee"
    unit = tmp_path / "matinee.service"
    text = UNIT.read_text()
    assert "ExecStart=/opt/matinee/.venv/bin/matinee serve" in text
    unit.write_text(text.replace("/opt/matinee/.venv/bin/matinee", str(matinee)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (verify.stdout + verify.stderr).splitlines()
        if "matinee.service" in line and "user matinee" not in line.lower()
    ]
    assert verify.returncode == 0 or not problems, verify.stderr
    assert not problems, problems
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for matinee.service: ([0-9.]+)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    assert float(found[1]) <= 2.0, security.stdout
