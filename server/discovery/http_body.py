"""Reading a reply body from another service without trusting its size."""

from __future__ import annotations

import aiohttp

CHUNK = 64 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed ``limit`` bytes (by its
    Content-Length or while streaming), so a hostile reply never fills memory. Callers
    raise their own error, in their own words."""
    if response.content_length is not None and response.content_length > limit:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
