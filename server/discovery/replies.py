"""Replies of other services (TMDB, indexers, NZB downloads), read without trusting them:
a body capped in size, and a Retry-After header in either of its forms."""

from __future__ import annotations

import email.utils
import math
from datetime import UTC

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


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` value, delta-seconds or an HTTP date (RFC 9110
    10.2.3); None when there is none or it says nothing usable. Negative when the date is
    past: callers bound it by their own limits."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return seconds if math.isfinite(seconds) else None
