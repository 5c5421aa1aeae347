"""What real browsers measured about themselves (tests/data/capabilities, recorded by
web/static/js/capabilities.js in Debian's Chromium and Firefox ESR): as the JSON a player
sends with ``?capabilities=``, and parsed."""

from __future__ import annotations

from pathlib import Path

from transcode.capabilities import Capabilities, parse_capabilities

RECORDED = Path(__file__).parent.parent / "data" / "capabilities"
CHROMIUM_FILE = RECORDED / "chromium-156-headless.json"
FIREFOX_FILE = RECORDED / "firefox-esr-153-headless.json"
#: The query values each browser's player sends.
CHROMIUM_JSON = CHROMIUM_FILE.read_text()
CHROMIUM: Capabilities = parse_capabilities(CHROMIUM_JSON)
FIREFOX_JSON = FIREFOX_FILE.read_text()
FIREFOX: Capabilities = parse_capabilities(FIREFOX_JSON)
