"""Matinee's settings: one frozen dataclass per TOML section, field names as the keys.

Built only by ``server.config.load`` (which validates); everything else reads them. Secrets
are plain strings (so that they can be passed to clients as they are) kept out of repr() with
``repr=False``; ``server.config.describe`` masks them, and the log filter masks their values.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

NZBGEEK_NAME = "NZBGeek"
NZBGEEK_URL = "https://api.nzbgeek.info"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Always starts and ends with "/".
    base_path: str = "/"
    data_dir: Path = Path("data")
    trusted_proxies: tuple[IPNetwork, ...] = ()
    #: The household's own networks (the first password may be chosen only from these).
    lan_networks: tuple[IPNetwork, ...] = tuple(
        ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8",
        "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10")
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuthConfig:
    password_hash: str | None = field(default=None, repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    session_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TmdbConfig:
    #: v4 read access token, sent as "Authorization: Bearer".
    token: str | None = field(default=None, repr=False)
    #: v3 API key, sent as ?api_key=; used when there is no token.
    api_key: str | None = field(default=None, repr=False)
    #: No trailing "/".
    base_url: str = "https://api.themoviedb.org/3"
    #: No trailing "/".
    image_base_url: str = "https://image.tmdb.org/t/p"
    language: str = "en-US"


@dataclass(frozen=True, slots=True)
class IndexerConfig:
    name: str = NZBGEEK_NAME
    #: No trailing "/".
    url: str = NZBGEEK_URL
    api_key: str | None = field(default=None, repr=False)
    categories: tuple[int, ...] = (2000,)
    priority: int = 0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class UsenetServerConfig:
    host: str
    name: str = ""
    port: int = 563
    tls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connections: int = 8
    #: Lower is tried first; a segment missing on one priority is tried on the next.
    priority: int = 0
    #: BODY requests in flight per connection.
    pipelining: int = 8
    #: Seconds.
    timeout: float = 30.0

    def __post_init__(self) -> None:
        # Logs and errors name servers; the host is the natural name when none is given.
        if not self.name:
            object.__setattr__(self, "name", self.host)


@dataclass(frozen=True, slots=True)
class UsenetConfig:
    servers: tuple[UsenetServerConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class DownloadsConfig:
    #: load_config defaults this to server.data_dir / "downloads".
    dir: Path = Path("data/downloads")
    max_active: int = 1
    #: Below this much free space on the downloads' disk, Matinee is not ready; a download
    #: that would go below it deletes old movies first, or is refused.
    min_free_gb: float = 5.0
    #: At most this many GB of downloads together; 0: no limit but the disk's.
    max_disk_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Hours (fractions allowed) after which things are deleted by the retention timers."""

    #: Everything (local and R2) this long after the job was ready.
    ready_hours: float = 24.0
    #: The local copy this long after it was mirrored to R2 (it plays from R2 after that).
    #: load_config defaults this to ready_hours.
    local_hours: float = 24.0
    #: A failed job's partial files go this long after it failed (cancelled ones at once).
    failed_hours: float = 24.0
    #: Everything this long after the last saved playback position; 0: off.
    idle_hours: float = 0.0


SERVE_POLICIES = ("local", "r2", "auto")


@dataclass(frozen=True, slots=True)
class PlaybackConfig:
    #: Audio track languages in order of preference (ISO 639-1 or -2: "en", "ger"); the
    #: household's last choice in the player comes first.
    audio_languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TranscodeConfig:
    #: ffmpeg HLS sessions at once; a new one beyond it stops the least recently used.
    max_sessions: int = 2
    #: Seconds without a request after which a session's ffmpeg is stopped.
    idle_seconds: float = 60.0
    #: A hardware H.264 encoder ("vaapi", "nvenc", "qsv"), used when it works; None: libx264.
    hardware: str | None = None
    #: The VAAPI/QSV device, e.g. "/dev/dri/renderD128".
    device: str | None = None
    #: libx264 preset and threads: what keeps up on a small machine.
    preset: str = "veryfast"
    threads: int = 2


@dataclass(frozen=True, slots=True)
class R2Config:
    """Cloudflare R2 or any S3-compatible store: ready movies are mirrored there and may
    play from it (``serve``)."""

    enabled: bool = False
    endpoint: str | None = None
    bucket: str | None = None
    region: str = "auto"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    presign_seconds: int = 14400
    #: Parts uploaded at the same time.
    concurrency: int = 4
    #: Where players get the file: "local" (always Matinee), "r2" (R2 once mirrored), or
    #: "auto" (the household's networks from Matinee while the local copy exists, others
    #: from R2; everyone from R2 once the local copy is gone).
    serve: str = "auto"
    #: At most this many GB in the bucket; 0: no limit.
    max_gb: float = 0.0
    #: Path-style URLs (endpoint/bucket/key) instead of bucket.endpoint/key.
    path_style: bool = False


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    #: Serve {base}metrics (Prometheus text) at all.
    enabled: bool = True
    #: Also without a key to clients on [server] lan_networks (a Prometheus at home).
    lan_without_key: bool = False


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    #: debug, info, warning, error or critical.
    level: str = "info"
    #: "text" (one line per event; no timestamps of its own under journald) or "json".
    format: str = "text"


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    tmdb: TmdbConfig = TmdbConfig()
    indexers: tuple[IndexerConfig, ...] = ()
    usenet: UsenetConfig = UsenetConfig()
    downloads: DownloadsConfig = DownloadsConfig()
    retention: RetentionConfig = RetentionConfig()
    r2: R2Config = R2Config()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    playback: PlaybackConfig = PlaybackConfig()
    transcode: TranscodeConfig = TranscodeConfig()
