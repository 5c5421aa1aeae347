"""Bounds that keep one client from holding every slot of the server.

* Reading a request's headers: the connection is closed when the first request's headers
  have not arrived within ``HEADER_SECONDS`` of connecting, and a keep-alive connection that
  sends nothing for as long (aiohttp's keep-alive timer covers both). A slow-loris client
  gets nothing but its own closed sockets.
* Event streams (SSE) open at once per client address: ``MAX_STREAMS_PER_CLIENT``. A page
  follows one job; a household has a few browsers; more than that from one address is a
  bug or an attack, and is answered 429 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from server.errors import RateLimited
from server.keys import EVENT_STREAMS

HEADER_SECONDS = 20.0
MAX_STREAMS_PER_CLIENT = 8


def server_options(header_seconds: float = HEADER_SECONDS) -> dict[str, Any]:
    """Keyword arguments for aiohttp's server (``web.run_app``, ``AppRunner``)."""
    return {"keepalive_timeout": header_seconds}


@contextmanager
def event_stream_slot(request: web.Request) -> Iterator[None]:
    """Held for the life of one event stream; RateLimited when the client has too many."""
    streams = request.config_dict[EVENT_STREAMS]
    client = request.remote or "unknown"
    if streams.get(client, 0) >= MAX_STREAMS_PER_CLIENT:
        raise RateLimited(
            f"{MAX_STREAMS_PER_CLIENT} event streams are open from this address already;"
            " close a page that follows a job, or try again shortly",
            retry_after=5,
        )
    streams[client] = streams.get(client, 0) + 1
    try:
        yield
    finally:
        streams[client] -= 1
        if streams[client] <= 0:
            del streams[client]


def setup(app: web.Application) -> None:
    app[EVENT_STREAMS] = {}
