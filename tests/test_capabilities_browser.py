"""The player's capability probe (web/static/js/capabilities.js) in Debian's headless
Chromium: what it reports parses, and is what tests/data/capabilities/ recorded (so the plan
tests use what this browser really says). Firefox ESR's report was recorded the same way,
by hand, with marionette-driver (see the report file's name)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page

from tests.support.capabilities import CHROMIUM_JSON
from transcode.capabilities import parse_capabilities

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
PAGE = """<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<script type="module">
import { probeCapabilities } from "/js/capabilities.js";
window.capabilities = probeCapabilities();
</script></body></html>"""


@pytest.fixture
async def site() -> AsyncIterator[str]:
    app = web.Application()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", index)
    app.router.add_static("/js", REPO / "web" / "static" / "js")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_chromium_reports_what_was_recorded(page: Page, site: str) -> None:
    await page.goto(site)
    await page.wait_for_function("window.capabilities !== undefined")
    report = await page.evaluate("window.capabilities")
    assert len(json.dumps(report)) < 1024
    recorded = json.loads(CHROMIUM_JSON)
    assert report == recorded
    caps = parse_capabilities(json.dumps(report))
    assert caps.mse and "h264_high" in caps.mse_codecs and "ac3" not in caps.mse_codecs
