"""What every response tells the browser about itself: a Content-Security-Policy on pages
(scripts only from Matinee itself, no framing, no plugins), no MIME sniffing anywhere (a
movie or a poster is never run as a page), and no Referer sent to other sites.

The pages' one inline script, the import map, is allowed by its hash (computed once, from
the exact text every page carries); the lifecycle table is a JSON data block, not a script.
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from server.keys import CSP, SETTINGS
from server.mirror.serve import media_origin

IMPORT_MAP_KEY = "importmap_json"  # the Jinja global pages.setup renders into base.html


def policy(import_map: str, media: str | None = None) -> str:
    """``media``: another origin the player may load films from (R2's presigned links)."""
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'sha256-{digest}'",
            "style-src 'self'",
            "img-src 'self' data:",
            # hls.js plays through MediaSource (blob: URLs) and may run a worker from one
            "media-src 'self' blob:" + (f" {media}" if media else ""),
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", request.config_dict[CSP])
        headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors


def setup(app: web.Application, import_map: str) -> None:
    app[CSP] = policy(import_map, media_origin(app[SETTINGS].r2))
    app.on_response_prepare.append(_on_prepare)
