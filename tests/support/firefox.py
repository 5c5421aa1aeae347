"""Headless Firefox for tests: Debian's ``firefox-esr`` driven over Marionette (its own remote
protocol) with ``marionette-driver`` from PyPI. Nothing is downloaded: the browser is the
system's, started here with a fresh profile whose preferences keep it off the network and let
media play without a gesture.

``marionette-driver`` is a blocking client, so every call runs in a thread (``Firefox.run``):
the event loop of the test (and of the app it drives) stays free.

Fixture ``firefox``: one browser per test. Without firefox-esr the test is skipped, except on
CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

with warnings.catch_warnings():
    # mozinfo, imported by marionette-driver, calls a deprecated distro function at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from marionette_driver.marionette import Marionette

FIREFOX_ENV = "MATINEE_FIREFOX"
DEFAULT_FIREFOX = "/usr/bin/firefox-esr"
START_TIMEOUT = 60.0

# Quiet on a closed network, media without a gesture, Marionette on a port of its choosing
# (written to the profile's MarionetteActivePort).
PREFS = {
    "marionette.port": 0,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": False,
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "services.settings.server": "http://127.0.0.1:1/",
    "browser.region.network.url": "",
    "media.gmp-manager.updateEnabled": False,
    "remote.prefs.recommended": True,
}

T = TypeVar("T")


def firefox_executable() -> str:
    wanted = os.environ.get(FIREFOX_ENV) or DEFAULT_FIREFOX
    found = wanted if os.access(wanted, os.X_OK) else shutil.which("firefox-esr")
    if found:
        return found
    why = f"no Firefox ESR at {wanted} (apt-get install firefox-esr, or set {FIREFOX_ENV})"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


class Firefox:
    """One headless Firefox and its Marionette session."""

    def __init__(self, executable: str, profile: Path, pulse: str | None = None) -> None:
        self.executable = executable
        self.profile = profile
        self.pulse = pulse  # PULSE_SERVER: a sound server, so that Web Audio runs
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Marionette | None = None

    def start(self) -> None:
        self.profile.mkdir(parents=True, exist_ok=True)
        lines = [f"user_pref({_js(k)}, {_js(v)});" for k, v in PREFS.items()]
        (self.profile / "user.js").write_text("\n".join(lines) + "\n")
        env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
        if self.pulse:
            env["PULSE_SERVER"] = self.pulse
        with (self.profile / "firefox.log").open("wb") as log:
            self.process = subprocess.Popen(
                [self.executable, "--headless", "--marionette", "--no-remote", "--profile",
                 str(self.profile), "about:blank"],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        port_file = self.profile / "MarionetteActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise RuntimeError(f"firefox exited: {(self.profile / 'firefox.log').read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError("Firefox did not open its Marionette port")
            time.sleep(0.05)  # polling a file the browser writes: no event to wait on
        client = Marionette(host="127.0.0.1", port=int(port_file.read_text()))
        client.start_session()
        client.timeout.script = 30
        self.client = client

    def stop(self) -> None:
        if self.client is not None:
            # The browser may be gone already; it is stopped below anyway.
            with contextlib.suppress(Exception):
                self.client.delete_session()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def run(self, call: Callable[[Marionette], T]) -> T:
        """``call(client)`` in a thread."""
        client = self.client
        assert client is not None
        return await asyncio.to_thread(call, client)

    async def navigate(self, url: str) -> None:
        await self.run(lambda c: c.navigate(url))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        return await self.run(lambda c: c.execute_script(f"return {expression};", sandbox=None))

    async def add_cookie(self, cookie: dict[str, Any]) -> None:
        await self.run(lambda c: c.add_cookie(cookie))

    async def version(self) -> str:
        caps = await self.run(lambda c: c.session_capabilities)
        return f"{caps.get('browserName')} {caps.get('browserVersion')}"


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_pulse(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private PulseAudio with one null sink (sound goes nowhere, but Web Audio runs and an
    AnalyserNode hears it): the headless machine has no sound card."""
    executable = shutil.which("pulseaudio")
    if executable is None:
        why = "no pulseaudio (apt-get install pulseaudio): Firefox has no sound without it"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "native"
    env = {**os.environ, "HOME": str(folder), "XDG_RUNTIME_DIR": str(folder)}
    with (folder / "pulse.log").open("wb") as log:
        process = subprocess.Popen(
            [executable, "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
             "--system=false", "--disable-shm=yes", "--log-target=stderr",
             "--load=module-null-sink sink_name=matinee",
             f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while not _accepts(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"pulseaudio did not start: {(folder / 'pulse.log').read_text()}")
        time.sleep(0.05)  # the socket appears when the server is ready: nothing to wait on
    return process, f"unix:{socket}"


def _accepts(path: Path) -> bool:
    import socket as sockets

    if not path.exists():
        return False
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
async def firefox(tmp_path: Path) -> AsyncIterator[Firefox]:
    pulse, server = await asyncio.to_thread(start_pulse, tmp_path / "pulse")
    browser = Firefox(firefox_executable(), tmp_path / "firefox-profile", server)
    await asyncio.to_thread(browser.start)
    try:
        yield browser
    finally:
        await asyncio.to_thread(browser.stop)
        pulse.terminate()
        await asyncio.to_thread(pulse.wait)
