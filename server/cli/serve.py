"""``matinee serve``: the app on its address until SIGTERM or SIGINT, telling systemd how it
goes (``Type=notify``: READY=1 once it listens, WATCHDOG=1 while the event loop turns,
STOPPING=1 on the way out).

On SIGTERM the listening socket closes first, running requests get ``SHUTDOWN_GRACE``
seconds, then the cleanup contexts run in reverse: job runners stop their downloads at a
consistent point (each saves what is on disk), the store closes. systemd's
TimeoutStopSec (15 s) leaves room for all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

from aiohttp import web

from server.http.limits import server_options

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 3.0  # seconds running requests get after the socket closes


def notify(state: str) -> bool:
    """Tell systemd (sd_notify); False when not started by systemd with NotifyAccess."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec for this process, or None when it set none."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def _watchdog(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")  # only while the loop runs: a hung loop gets restarted
        await asyncio.sleep(interval)


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE, **server_options())
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watchdog: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("listening on http://%s:%d%s", host, port, "/")
        notify(f"READY=1\nSTATUS=listening on {host}:{port}")
        interval = watchdog_interval()
        if interval:
            watchdog = asyncio.create_task(_watchdog(interval), name="watchdog")
        await stop.wait()
        log.info("stopping: downloads save their state")
        notify("STOPPING=1")
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
