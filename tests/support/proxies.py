"""Debian's nginx and Caddy in front of Matinee, each running the configuration the
repository ships in contrib/ (only the host, the ports and private paths substituted)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_SNIPPET = ROOT / "contrib" / "nginx" / "matinee.conf"
CADDYFILE = ROOT / "contrib" / "caddy" / "Caddyfile"
#: Where the shipped files say Matinee listens.
SHIPPED_UPSTREAM = "127.0.0.1:8080"


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, what: str) -> None:
    async with asyncio.timeout(15):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


def nginx_conf(directory: Path, listen: int, upstream: int) -> str:
    snippet = NGINX_SNIPPET.read_text()
    assert SHIPPED_UPSTREAM in snippet, "the shipped nginx snippet changed its upstream"
    snippet = snippet.replace(SHIPPED_UPSTREAM, f"127.0.0.1:{upstream}")
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {directory / 'tmp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n    access_log off;\n"
        f"{temp}"
        f"    server {{\n        listen 127.0.0.1:{listen};\n        server_name localhost;\n"
        f"{snippet}\n    }}\n}}\n"
    )


def caddyfile(directory: Path, listen: int, upstream: int) -> str:
    shipped = CADDYFILE.read_text()
    assert SHIPPED_UPSTREAM in shipped and "your.host {" in shipped, "the Caddyfile changed"
    site = shipped.replace(SHIPPED_UPSTREAM, f"127.0.0.1:{upstream}")
    site = site.replace("your.host {", f"http://127.0.0.1:{listen} {{")
    # Tests only: no admin endpoint, and Caddy's state in the test's own directory.
    return (
        "{\n\tadmin off\n\tauto_https off\n"
        f"\tstorage file_system {directory / 'data'}\n}}\n\n" + site
    )


@asynccontextmanager
async def reverse_proxy(kind: str, directory: Path, upstream: int) -> AsyncIterator[int]:
    """nginx or Caddy on a free loopback port in front of ``upstream``; yields the port."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    listen = free_port()
    env = {**os.environ, "HOME": str(directory), "XDG_DATA_HOME": str(directory / "data")}
    if kind == "nginx":
        (directory / "tmp").mkdir(exist_ok=True)
        conf = directory / "nginx.conf"
        conf.write_text(nginx_conf(directory, listen, upstream))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    elif kind == "caddy":
        conf = directory / "Caddyfile"
        conf.write_text(caddyfile(directory, listen, upstream))
        argv = ["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"]
    else:
        raise ValueError(kind)
    log = (directory / f"{kind}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        cwd=directory, start_new_session=True,
    )  # fmt: skip
    try:
        try:
            await _wait_listening(listen, proc, kind)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{(directory / f'{kind}.log').read_text()}") from exc
        yield listen
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
