"""Headless Chromium for tests: Debian's browser driven by Playwright's asyncio API.

Nothing here downloads a browser: Chromium is Debian's (``/usr/bin/chromium``, or the path in
``MATINEE_CHROMIUM``), launched by the Playwright driver that ships in the Python wheel. The
flags are the ones ../shared/notes/browser-tests.md found to keep Chromium quiet and working
on a closed network, plus autoplay without a user gesture so a player may start by itself.

Fixtures (registered in tests/conftest.py):

* ``browser`` -- one headless Chromium per test (it starts in well under a second).
* ``browser_context`` -- a fresh context (a new, empty profile: no cookies, no storage),
  1280x720, English; every page opened in it records its console (see ``console_of``).
* ``page`` -- a page of that context.

Helpers: ``console_of(page)`` -> `ConsoleLog` (``messages``, ``page_errors``, ``errors()``),
``assert_no_console_errors(page)``, and ``shot(page, name)`` which keeps a PNG of what a person
would have seen under ``test-output/screenshots/`` (git-ignored).

Without Chromium the browser tests are skipped, except on CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    async_playwright,
)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "MATINEE_CHROMIUM"

#: ``--headless`` comes from Playwright (``headless=True``); each context is a fresh profile.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}


def chromium_executable() -> str:
    """Debian's Chromium; skips the test when it is missing (fails on CI, where it must be)."""
    wanted = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    found = wanted if os.access(wanted, os.X_OK) else shutil.which("chromium")
    if found:
        return found
    why = f"no Chromium at {wanted} (apt-get install chromium, or set {CHROMIUM_ENV})"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


# --------------------------------------------------------------------------- console


@dataclass(frozen=True)
class LoggedMessage:
    type: str  # "log", "warning", "error", ... ; "pageerror" for uncaught exceptions
    text: str
    url: str  # the page the message came from

    def __str__(self) -> str:
        return f"[{self.type}] {self.text} (on {self.url})"


@dataclass
class ConsoleLog:
    """What a page said on its console and the exceptions it did not catch."""

    messages: list[LoggedMessage] = field(default_factory=list)

    def errors(self, ignore: Iterable[str] = ()) -> list[LoggedMessage]:
        """Console errors and uncaught exceptions, except those matching a pattern in ignore."""
        patterns = [re.compile(p) for p in ignore]
        return [
            m
            for m in self.messages
            if m.type in ("error", "pageerror") and not any(p.search(m.text) for p in patterns)
        ]

    def clear(self) -> None:
        self.messages.clear()


_LOGS: weakref.WeakKeyDictionary[Page, ConsoleLog] = weakref.WeakKeyDictionary()


def record_console(page: Page) -> ConsoleLog:
    """Start recording ``page``'s console (idempotent); `console_of` returns the same log."""
    if page in _LOGS:
        return _LOGS[page]
    log = ConsoleLog()
    _LOGS[page] = log

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url") or page.url
        log.messages.append(LoggedMessage(message.type, message.text, where))

    def on_page_error(error: Error) -> None:
        log.messages.append(LoggedMessage("pageerror", f"{error.name}: {error.message}", page.url))

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return log


def console_of(page: Page) -> ConsoleLog:
    return _LOGS[page] if page in _LOGS else record_console(page)


def assert_no_console_errors(page: Page, *, ignore: Iterable[str] = ()) -> None:
    """Fails listing every console error and uncaught exception of ``page`` so far."""
    errors = console_of(page).errors(ignore)
    assert not errors, "console errors:\n" + "\n".join(f"  {m}" for m in errors)


# --------------------------------------------------------------------------- screenshots


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"


async def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """A PNG of the page as shown now, as ``test-output/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{_safe_name(name)}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")

    def on_page(new: Page) -> None:  # tabs and pop-ups record too
        record_console(new)

    context.on("page", on_page)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(browser_context: BrowserContext) -> Page:
    new = await browser_context.new_page()
    record_console(new)
    return new
