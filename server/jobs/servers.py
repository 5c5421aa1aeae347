"""The configured Usenet servers, as the engine's ServerSpec."""

from __future__ import annotations

from nntp.connection import ServerSpec
from server.config.settings import UsenetServerConfig


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
