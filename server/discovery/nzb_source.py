"""Getting an NZB by URL: only from configured indexers, size-capped, redirects re-checked.

Matinee must never become an open proxy that fetches whatever URL a caller names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from server.config.settings import IndexerConfig
from server.discovery.replies import read_capped
from server.errors import IndexerError, InvalidInput

MAX_NZB_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 3
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15)
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the unit NZB fetching is allowed by."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default


def allowed_origins(indexers: Sequence[IndexerConfig]) -> set[tuple[str, str, int]]:
    return {o for i in indexers if i.enabled and (o := origin(i.url)) is not None}


def check_url(url: str, indexers: Sequence[IndexerConfig]) -> None:
    where = origin(url)
    if where is None:
        raise InvalidInput("nzb_url must be an http(s) URL")
    if where not in allowed_origins(indexers):
        raise InvalidInput(
            f"nzb_url must point at a configured indexer; {where[1]} is not one "
            "(add it under [[indexers]] in the configuration)"
        )


async def download_nzb(
    session: aiohttp.ClientSession, url: str, indexers: Sequence[IndexerConfig]
) -> tuple[bytes, str | None]:
    """The NZB's bytes and the file name the indexer gave it (for ``{{password}}``)."""
    check_url(url, indexers)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(url, allow_redirects=False, timeout=TIMEOUT) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = str(resp.url.join(URL(resp.headers["Location"])))
                    check_url(url, indexers)  # every hop stays on a configured indexer
                    continue
                if resp.status == 429:
                    raise IndexerError("the indexer says too many requests; try again later")
                if resp.status >= 400:
                    raise IndexerError(f"the indexer answered HTTP {resp.status} for the NZB")
                data = await read_capped(resp, MAX_NZB_BYTES)
                if data is None:
                    raise IndexerError("the indexer's NZB is larger than 64 MiB")
                disposition = resp.headers.get("Content-Disposition", "")
                match = _FILENAME.search(disposition)
                return data, match.group(1) if match else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IndexerError(
                f"cannot fetch the NZB from the indexer: {exc or 'timeout'}"
            ) from exc
    raise IndexerError("the indexer redirected too many times")
