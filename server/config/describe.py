"""What is configured, in words for people and with every secret masked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass

from server.config.settings import Settings
from server.logs import MASK


def _mask(value: object) -> str:
    return MASK if value else "not set"


def describe(settings: Settings) -> list[str]:
    """What is configured, one line per thing, for people; secrets appear as ******."""
    s = settings
    lines = [
        f"server: listening on {s.server.host}:{s.server.port}, base path {s.server.base_path}",
        f"server: data in {s.server.data_dir}",
        "server: trusted proxies "
        + (", ".join(str(net) for net in s.server.trusted_proxies) or "none"),
        "server: household networks " + ", ".join(str(net) for net in s.server.lan_networks),
        f"auth: UI password {_mask(s.auth.password_hash)}, {len(s.auth.api_keys)} API key(s)"
        f", session secret {_mask(s.auth.session_secret)}",
    ]
    if s.tmdb.token or s.tmdb.api_key:
        credential = "token" if s.tmdb.token else "api key"
        lines.append(f"tmdb: {credential} {MASK}, language {s.tmdb.language}, {s.tmdb.base_url}")
    else:
        lines.append("tmdb: not configured (no token or api_key): browsing will not work")
    for indexer in s.indexers:
        state = "" if indexer.enabled else " (disabled)"
        lines.append(
            f"indexer {indexer.name}{state}: {indexer.url}, categories "
            + ", ".join(str(c) for c in indexer.categories)
            + f", priority {indexer.priority}, api key {_mask(indexer.api_key)}"
        )
    if not s.indexers:
        lines.append("indexers: none configured: release searches will not work")
    for server in s.usenet.servers:
        label = "usenet" if server.name == server.host else f"usenet ({server.name})"
        user = f"user {server.username}" if server.username else "no login"
        password = f", password {MASK}" if server.password else ""
        lines.append(
            f"{label}: {server.host}:{server.port} {'TLS' if server.tls else 'plain text'}"
            f", {server.connections} connections, priority {server.priority}"
            f", pipelining {server.pipelining}, timeout {server.timeout:g}s, {user}{password}"
        )
    if not s.usenet.servers:
        lines.append("usenet: no servers configured: downloads will not work")
    lines.append(
        f"downloads: {s.downloads.dir}, {s.downloads.max_active} at a time"
        f", at least {s.downloads.min_free_gb:g} GB kept free"
        + (f", at most {s.downloads.max_disk_gb:g} GB used" if s.downloads.max_disk_gb else "")
    )
    idle = s.retention.idle_hours
    lines.append(
        f"retention: ready for {s.retention.ready_hours:g} h"
        f", local files kept {s.retention.local_hours:g} h after mirroring"
        f", failed jobs' files kept {s.retention.failed_hours:g} h"
        + (f", deleted {idle:g} h after last watched" if idle else "")
    )
    if s.r2.enabled:
        lines.append(
            f"r2: bucket {s.r2.bucket} at {s.r2.endpoint}, region {s.r2.region}"
            f", access key {_mask(s.r2.access_key_id)}"
            f", secret {_mask(s.r2.secret_access_key)}"
            f", links valid {s.r2.presign_seconds / 3600:g} h"
            f", {s.r2.concurrency} parts at a time, serve {s.r2.serve}"
            + (f", at most {s.r2.max_gb:g} GB" if s.r2.max_gb else "")
            + (", path-style URLs" if s.r2.path_style else "")
        )
    else:
        lines.append("r2: disabled")
    lines.append(f"logging: {s.logging.level}, {s.logging.format}")
    if s.metrics.enabled:
        who = (
            "an API key, or the household's networks" if s.metrics.lan_without_key else "an API key"
        )
        lines.append(f"metrics: at {s.server.base_path}metrics, for {who}")
    else:
        lines.append("metrics: off")
    return lines


def secret_values(settings: Settings) -> list[str]:
    """Every secret in the settings, for the log filter to mask."""
    return [value for value in _walk_secrets(settings) if value]


def _walk_secrets(node: object) -> Iterator[str]:
    # The secret fields are exactly those hidden from repr(), so a new secret field is
    # masked in logs as soon as it is declared with repr=False.
    if isinstance(node, tuple):
        for item in node:
            yield from _walk_secrets(item)
        return
    if not is_dataclass(node):
        return
    for f in fields(node):
        value = getattr(node, f.name)
        if f.repr:
            yield from _walk_secrets(value)
        elif isinstance(value, str):
            yield value
        elif isinstance(value, tuple):
            yield from (item for item in value if isinstance(item, str))
