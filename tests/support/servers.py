"""One factory for the fake servers: a fixture that starts as many as a test asks for and
stops them all at teardown, whatever the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@asynccontextmanager
async def server_factory(make: Callable[..., S]) -> AsyncIterator[Callable[..., Awaitable[S]]]:
    """``async with server_factory(FakeTmdb) as start: srv = await start(**options)``."""
    servers: list[S] = []

    async def start(*args: Any, **options: Any) -> S:
        srv = make(*args, **options)
        await srv.start()
        servers.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in reversed(servers):
            await srv.stop()
