"""The configured Usenet servers: as the engine's ServerSpec, and probed for the Status page."""

from __future__ import annotations

import dataclasses

from nntp.connection import NntpConnection, ServerSpec
from nntp.errors import NntpError, error_for_reply
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


#: An article no server has: asking for it shows that reading works after the login.
PROBE_ARTICLE = "<matinee-probe@invalid>"


async def probe_usenet(spec: ServerSpec, limit: float) -> NntpError | None:
    """Connect, read the greeting, log in when configured, ask for an article (STAT), and
    say goodbye, each step within ``limit`` seconds; the error a server answered with, or
    None when it did all of that (a STAT answered 223 or 430 is reading that works)."""
    conn = NntpConnection(dataclasses.replace(spec, timeout=min(spec.timeout, limit)))
    try:
        await conn.connect()
        reply = await conn.command(f"STAT {PROBE_ARTICLE}")
        if reply.status_code not in (223, 423, 430):
            return error_for_reply(reply.status_code, reply.message or "", server=spec.name)
        await conn.quit()
    except NntpError as exc:
        return exc
    finally:
        conn.close()
    return None
