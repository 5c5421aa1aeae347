"""Loading the configuration: the TOML file and MATINEE_* secrets into validated ``Settings``.

Only `load_config` and `resolve_config_path` touch the file system; validation
(`parse_config`) takes a mapping and returns `Settings` or raises one `ConfigError`
listing every problem found, each naming its key path.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from server.config.reader import Invalid, Table, api_key, base_path, category, http_url, network
from server.config.settings import (
    NZBGEEK_NAME,
    NZBGEEK_URL,
    SERVE_POLICIES,
    AuthConfig,
    DownloadsConfig,
    IndexerConfig,
    LoggingConfig,
    MetricsConfig,
    PlaybackConfig,
    R2Config,
    RetentionConfig,
    ServerConfig,
    Settings,
    TmdbConfig,
    TranscodeConfig,
    UsenetConfig,
    UsenetServerConfig,
)
from server.errors import ConfigError
from server.logs import LEVELS, MASK

#: Used when no --config is given and MATINEE_CONFIG is not set; relative to the cwd.
DEFAULT_CONFIG_PATH = Path("config.toml")
CONFIG_ENV = "MATINEE_CONFIG"


def resolve_config_path(path: Path | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The file load_config will read: the given path, MATINEE_CONFIG, or ./config.toml if
    it exists. None means "no file: use the defaults"."""
    if path is not None:
        return path
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate the configuration; raise ConfigError listing every problem.

    A file named explicitly (argument or MATINEE_CONFIG) must exist; without one the
    defaults apply, which give a working server on 127.0.0.1:8080 with nothing configured.
    """
    resolved = resolve_config_path(path, env)
    if resolved is None:
        return parse_config({}, base_dir=Path.cwd(), env=env)
    try:
        with resolved.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{resolved}: config file does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{resolved}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{resolved}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{resolved}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{resolved}: not valid TOML: not UTF-8 text") from None
    return parse_config(data, base_dir=resolved.resolve().parent, env=env)


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str] | None = None
) -> Settings:
    """Validate parsed TOML (plus env overrides) into Settings; relative paths are taken
    against base_dir. No I/O."""
    errors: list[str] = []
    merged = copy.deepcopy(dict(data))
    origins = _apply_env(merged, env or {}, errors)
    root = Table(merged, "", errors, origins)

    server = _server(root.table("server"), base_dir)
    auth = _auth(root.table("auth"))
    tmdb = _tmdb(root.table("tmdb"))
    indexers = _indexers(root.array("indexers"))
    usenet = _usenet(root.table("usenet"))
    downloads = _downloads(root.table("downloads"), base_dir, server.data_dir)
    retention = _retention(root.table("retention"))
    r2 = _r2(root.table("r2"))
    logging_ = _logging(root.table("logging"))
    metrics = _metrics(root.table("metrics"))
    playback = _playback(root.table("playback"))
    transcode = _transcode(root.table("transcode"))
    root.finish()

    if errors:
        raise ConfigError(errors)
    return Settings(
        server,
        auth,
        tmdb,
        indexers,
        usenet,
        downloads,
        retention,
        r2,
        logging_,
        metrics,
        playback,
        transcode,
    )


# --------------------------------------------------------------------------- env overrides

_ENV_SIMPLE = {
    "MATINEE_TMDB_TOKEN": ("tmdb", "token"),
    "MATINEE_TMDB_API_KEY": ("tmdb", "api_key"),
    "MATINEE_SESSION_SECRET": ("auth", "session_secret"),
    "MATINEE_R2_ACCESS_KEY_ID": ("r2", "access_key_id"),
    "MATINEE_R2_SECRET_ACCESS_KEY": ("r2", "secret_access_key"),
}
_ENV_INDEXER = re.compile(r"MATINEE_INDEXER_(\d+)_API_KEY")
_ENV_USENET = re.compile(r"MATINEE_USENET_(\d+)_(USERNAME|PASSWORD)")


def _apply_env(data: dict[str, Any], env: Mapping[str, str], errors: list[str]) -> dict[str, str]:
    """Write MATINEE_* secrets into the parsed file; return {key path: variable name} so
    that a bad value is reported with the variable it came from.

    An empty variable counts as unset: unit files and .env files often carry blank lines
    for secrets that are not used.
    """
    origins: dict[str, str] = {}

    def put(table: object, key: str, value: object, path: str, var: str) -> None:
        # A section of the wrong type is reported by validation; nothing to override then.
        if isinstance(table, dict):
            table[key] = value
            origins[path] = var

    for var, (section, key) in _ENV_SIMPLE.items():
        if env.get(var):
            put(data.setdefault(section, {}), key, env[var], f"{section}.{key}", var)

    if env.get("MATINEE_API_KEYS"):
        keys = [key.strip() for key in env["MATINEE_API_KEYS"].split(",") if key.strip()]
        put(data.setdefault("auth", {}), "api_keys", keys, "auth.api_keys", "MATINEE_API_KEYS")

    usenet = data.get("usenet")
    usenet_servers = usenet.get("servers") if isinstance(usenet, dict) else None
    for var in sorted(env):
        if not env[var]:
            continue
        if match := _ENV_INDEXER.fullmatch(var):
            index, key, entries, where = int(match[1]), "api_key", data.get("indexers"), "indexers"
        elif match := _ENV_USENET.fullmatch(var):
            index, key = int(match[1]), match[2].lower()
            entries, where = usenet_servers, "usenet.servers"
        else:
            continue
        if not isinstance(entries, list) or index >= len(entries):
            # Silently dropping the credential would leave a server failing for no visible
            # reason; most likely the index is off by one (it is 0-based).
            errors.append(f"{var}: there is no {where}[{index}] in the config file")
            continue
        put(entries[index], key, env[var], f"{where}[{index}].{key}", var)
    return origins


# --------------------------------------------------------------------------- sections

_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MIN_SECRET = 32


def _server(t: Table, base_dir: Path) -> ServerConfig:
    d = ServerConfig()
    host = t.string("host", d.host)
    if not host.strip() or any(c.isspace() for c in host) or "/" in host:
        t.error("host", "must be an IP address or host name to listen on")
    config = ServerConfig(
        host=host,
        port=t.integer("port", d.port, 1, 65535),
        base_path=t.value("base_path", d.base_path, base_path),
        data_dir=t.path("data_dir", d.data_dir, base_dir),
        trusted_proxies=tuple(t.list_of("trusted_proxies", network, "IP addresses or networks")),
        lan_networks=tuple(
            t.list_of(
                "lan_networks",
                network,
                "IP addresses or networks",
                default=list(d.lan_networks),
            )
        ),
    )
    t.finish()
    return config


def _auth(t: Table) -> AuthConfig:
    api_keys = t.list_of("api_keys", api_key, "strings")
    config = AuthConfig(
        password_hash=t.optional_string("password_hash"),
        api_keys=tuple(api_keys),
        session_secret=t.optional_string("session_secret"),
    )
    if config.session_secret is not None and len(config.session_secret) < _MIN_SECRET:
        # It signs the session cookies; a short one can be guessed offline.
        t.error("session_secret", f"must be at least {_MIN_SECRET} characters long")
    t.finish()
    return config


def _tmdb(t: Table) -> TmdbConfig:
    d = TmdbConfig()
    language = t.string("language", d.language)
    if not _LANGUAGE.fullmatch(language):
        t.error("language", "must be a language code such as en-US or fr")
    config = TmdbConfig(
        token=t.optional_string("token"),
        api_key=t.optional_string("api_key"),
        base_url=t.value("base_url", d.base_url, http_url),
        image_base_url=t.value("image_base_url", d.image_base_url, http_url),
        language=language,
    )
    t.finish()
    return config


def _indexers(tables: list[Table]) -> tuple[IndexerConfig, ...]:
    result: list[IndexerConfig] = []
    seen: dict[str, str] = {}
    for t in tables:
        url = t.value("url", NZBGEEK_URL, http_url)
        if t.has_error("url"):
            # Not "NZBGeek": a bad URL must not also cause a duplicate-name error.
            default_name = t.path_name
        elif url == NZBGEEK_URL:
            default_name = NZBGEEK_NAME
        else:
            default_name = urlsplit(url).hostname or url
        name = t.string("name", default_name)
        if not name.strip():
            t.error("name", "must not be empty")
        elif name in seen:
            t.error("name", f"{name!r} is already the name of {seen[name]}")
        seen.setdefault(name, t.path_name)
        categories = t.list_of("categories", category, "positive integers", default=[2000])
        if not categories:
            t.error("categories", "must list at least one newznab category, such as 2000")
        result.append(
            IndexerConfig(
                name=name,
                url=url,
                api_key=t.optional_string("api_key"),
                categories=tuple(categories),
                priority=t.integer("priority", 0),
                enabled=t.boolean("enabled", True),
            )
        )
        t.finish()
    return tuple(result)


def _usenet(t: Table) -> UsenetConfig:
    servers: list[UsenetServerConfig] = []
    seen: dict[str, str] = {}
    for s in t.array("servers"):
        host = s.string("host", "", required=True)
        if s.has_error("host"):
            pass
        elif "://" in host:
            s.error("host", "must be a host name such as news.example.com, not a URL")
        elif any(c.isspace() or c in "/@" for c in host):
            s.error("host", "must be a host name such as news.example.com")
        name = s.string("name", host) or host
        if name and name in seen:
            s.error("name", f"{name!r} is already the name of {seen[name]}")
        seen.setdefault(name, s.path_name)
        tls = s.boolean("tls", True)
        username = s.optional_string("username")
        password = s.optional_string("password")
        if username is not None and password is None:
            s.error("password", "required when username is set")
        if password is not None and username is None:
            s.error("username", "required when password is set")
        servers.append(
            UsenetServerConfig(
                name=name,
                host=host,
                port=s.integer("port", 563 if tls else 119, 1, 65535),
                tls=tls,
                username=username,
                password=password,
                connections=s.integer("connections", 8, 1, 100),
                priority=s.integer("priority", 0),
                pipelining=s.integer("pipelining", 8, 1, 64),
                timeout=s.number("timeout", 30.0),
            )
        )
        s.finish()
    t.finish()
    return UsenetConfig(tuple(servers))


def _downloads(t: Table, base_dir: Path, data_dir: Path) -> DownloadsConfig:
    config = DownloadsConfig(
        dir=t.path("dir", data_dir / "downloads", base_dir),
        max_active=t.integer("max_active", 1, 1, 100),
        min_free_gb=t.number("min_free_gb", 5.0),
        max_disk_gb=t.limit("max_disk_gb", 0.0),
    )
    t.finish()
    return config


def _retention(t: Table) -> RetentionConfig:
    ready = t.number("ready_hours", 24.0)
    config = RetentionConfig(
        ready_hours=ready,
        local_hours=t.number("local_hours", ready),
        failed_hours=t.number("failed_hours", 24.0),
        idle_hours=t.limit("idle_hours", 0.0),
    )
    t.finish()
    return config


def _metrics(t: Table) -> MetricsConfig:
    d = MetricsConfig()
    config = MetricsConfig(
        enabled=t.boolean("enabled", d.enabled),
        lan_without_key=t.boolean("lan_without_key", d.lan_without_key),
    )
    t.finish()
    return config


def _logging(t: Table) -> LoggingConfig:
    d = LoggingConfig()
    level = t.string("level", d.level).lower()
    if level not in LEVELS:
        t.error("level", f"must be one of {', '.join(LEVELS)}")
        level = d.level
    form = t.string("format", d.format)
    if form not in ("text", "json"):
        t.error("format", 'must be "text" or "json"')
        form = d.format
    config = LoggingConfig(level=level, format=form)
    t.finish()
    return config


def _r2(t: Table) -> R2Config:
    d = R2Config()
    bucket = t.optional_string("bucket")
    if bucket is not None and not _BUCKET.fullmatch(bucket):
        t.error("bucket", "must be 3-63 lower-case letters, digits, dots or hyphens")
    region = t.string("region", d.region)
    if not region.strip():
        t.error("region", 'must not be empty (R2 uses "auto")')
    endpoint = t.value("endpoint", None, http_url)
    serve = t.string("serve", d.serve)
    if serve not in SERVE_POLICIES:
        t.error("serve", 'must be "local", "r2" or "auto"')
        serve = d.serve
    config = R2Config(
        enabled=t.boolean("enabled", d.enabled),
        endpoint=endpoint,
        bucket=bucket,
        region=region,
        access_key_id=t.optional_string("access_key_id"),
        secret_access_key=t.optional_string("secret_access_key"),
        # Seven days is the longest validity S3 signatures allow.
        presign_seconds=t.integer("presign_seconds", d.presign_seconds, 60, 7 * 24 * 3600),
        concurrency=t.integer("concurrency", d.concurrency, 1, 64),
        serve=serve,
        max_gb=t.limit("max_gb", d.max_gb),
        path_style=t.boolean("path_style", d.path_style),
    )
    if config.enabled:
        for key in ("endpoint", "bucket", "access_key_id", "secret_access_key"):
            if getattr(config, key) is None and not t.has_error(key):
                t.error(key, "required when r2.enabled is true")
    t.finish()
    return config


_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")
_HARDWARE = ("vaapi", "nvenc", "qsv")
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


def _language(value: object) -> str:
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value.strip()):
        raise Invalid('must be a language code such as "en", "eng" or "pt-BR"')
    return value.strip()


def _playback(t: Table) -> PlaybackConfig:
    languages = t.list_of("audio_languages", _language, "language codes")
    t.finish()
    return PlaybackConfig(audio_languages=tuple(languages))


def _transcode(t: Table) -> TranscodeConfig:
    d = TranscodeConfig()
    hardware = t.optional_string("hardware")
    if hardware is not None and hardware not in _HARDWARE:
        t.error("hardware", f"must be one of {', '.join(_HARDWARE)} (or unset for libx264)")
        hardware = None
    preset = t.string("preset", d.preset)
    if preset not in _PRESETS:
        t.error("preset", f"must be one of {', '.join(_PRESETS)}")
        preset = d.preset
    config = TranscodeConfig(
        max_sessions=t.integer("max_sessions", d.max_sessions, 1, 32),
        idle_seconds=t.number("idle_seconds", d.idle_seconds),
        hardware=hardware,
        device=t.optional_string("device"),
        preset=preset,
        threads=t.integer("threads", d.threads, 1, 64),
    )
    t.finish()
    return config


# --------------------------------------------------------------------------- --server URLs


def parse_server_url(url: str) -> UsenetServerConfig:
    """nntp://host, nntps://user:pass@host:port → UsenetServerConfig (user and password are
    percent-decoded, so "@", ":" and "/" in them can be written as %40, %3A and %2F)."""
    parts = urlsplit(url.strip())
    # Error messages show the URL, so the password in it must not be shown with it.
    if parts.password:
        url = url.replace(f":{parts.password}@", f":{MASK}@", 1)
    if parts.scheme not in ("nntp", "nntps"):
        raise ConfigError(f"{url!r}: must start with nntp:// or nntps://")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{url!r}: must be nntp[s]://[user:password@]host[:port] only")
    if not parts.hostname:
        raise ConfigError(f"{url!r}: has no host name")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{url!r}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ConfigError(f"{url!r}: the port must be a number from 1 to 65535")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise ConfigError(f"{url!r}: a password needs a user name (user:password@host)")
    if username is not None and password is None:
        raise ConfigError(f"{url!r}: a user name needs a password (user:password@host)")
    tls = parts.scheme == "nntps"
    return UsenetServerConfig(
        name=parts.hostname,
        host=parts.hostname,
        port=port or (563 if tls else 119),
        tls=tls,
        username=username,
        password=password,
    )
