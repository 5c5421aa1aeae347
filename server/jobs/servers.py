"""The configured Usenet servers: as the engine's ServerSpec, and probed for the Status page."""

from __future__ import annotations

import dataclasses

from nntp.connection import NntpConnection, ServerSpec
from nntp.errors import NntpError
from server.config.settings import Settings, UsenetServerConfig


def spec_from_config(cfg: UsenetServerConfig, *, connections: int | None = None) -> ServerSpec:
    return ServerSpec(
        name=cfg.name,
        host=cfg.host,
        port=cfg.port,
        tls=cfg.tls,
        username=cfg.username,
        password=cfg.password,
        connections=connections or cfg.connections,
        priority=cfg.priority,
        pipelining=cfg.pipelining,
        timeout=cfg.timeout,
    )


def specs_from_settings(settings: Settings) -> list[ServerSpec]:
    return [spec_from_config(s) for s in settings.usenet.servers]


async def probe_usenet(spec: ServerSpec, limit: float) -> NntpError | None:
    """Connect, read the greeting, log in when configured, and say goodbye, each step within
    ``limit`` seconds; the error a server answered with, or None when it accepted."""
    conn = NntpConnection(dataclasses.replace(spec, timeout=min(spec.timeout, limit)))
    try:
        await conn.connect()
        await conn.quit()
    except NntpError as exc:
        return exc
    finally:
        conn.close()
    return None
