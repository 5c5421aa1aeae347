"""Configuration: read the TOML file and MATINEE_* secrets into validated, frozen settings.

Only `load_config` and `resolve_config_path` touch the file system; validation
(`parse_config`) takes a mapping and returns `Settings` or raises one `ConfigError`
listing every problem found, each naming its key path.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

#: Used when no --config is given and MATINEE_CONFIG is not set; relative to the cwd.
DEFAULT_CONFIG_PATH = Path("config.toml")
CONFIG_ENV = "MATINEE_CONFIG"
MASK = "******"

NZBGEEK_NAME = "NZBGeek"
NZBGEEK_URL = "https://api.nzbgeek.info"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """The configuration is unusable; `errors` holds one "key.path: problem" line each."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


# --------------------------------------------------------------------------- settings
# Field names are the TOML keys. Secrets are plain strings (so that they can be passed to
# clients as they are) kept out of repr() with repr=False; `describe` masks them.


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Always starts and ends with "/".
    base_path: str = "/"
    data_dir: Path = Path("data")
    trusted_proxies: tuple[IPNetwork, ...] = ()


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


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    ready_hours: float = 24.0
    #: load_config defaults this to ready_hours.
    local_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class R2Config:
    enabled: bool = False
    endpoint: str | None = None
    bucket: str | None = None
    region: str = "auto"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    presign_seconds: int = 14400


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


# --------------------------------------------------------------------------- loading


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
    root = _Table(merged, "", errors, origins)

    server = _server(root.table("server"), base_dir)
    auth = _auth(root.table("auth"))
    tmdb = _tmdb(root.table("tmdb"))
    indexers = _indexers(root.array("indexers"))
    usenet = _usenet(root.table("usenet"))
    downloads = _downloads(root.table("downloads"), base_dir, server.data_dir)
    retention = _retention(root.table("retention"))
    r2 = _r2(root.table("r2"))
    root.finish()

    if errors:
        raise ConfigError(errors)
    return Settings(server, auth, tmdb, indexers, usenet, downloads, retention, r2)


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
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+")
_MIN_SECRET = 32
_MIN_API_KEY = 16


def _server(t: _Table, base_dir: Path) -> ServerConfig:
    d = ServerConfig()
    host = t.string("host", d.host)
    if not host.strip() or any(c.isspace() for c in host) or "/" in host:
        t.error("host", "must be an IP address or host name to listen on")
    config = ServerConfig(
        host=host,
        port=t.integer("port", d.port, 1, 65535),
        base_path=t.value("base_path", d.base_path, _base_path),
        data_dir=t.path("data_dir", d.data_dir, base_dir),
        trusted_proxies=tuple(t.list_of("trusted_proxies", _network, "IP addresses or networks")),
    )
    t.finish()
    return config


def _auth(t: _Table) -> AuthConfig:
    api_keys = t.list_of("api_keys", _api_key, "strings")
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


def _tmdb(t: _Table) -> TmdbConfig:
    d = TmdbConfig()
    language = t.string("language", d.language)
    if not _LANGUAGE.fullmatch(language):
        t.error("language", "must be a language code such as en-US or fr")
    config = TmdbConfig(
        token=t.optional_string("token"),
        api_key=t.optional_string("api_key"),
        base_url=t.value("base_url", d.base_url, _http_url),
        image_base_url=t.value("image_base_url", d.image_base_url, _http_url),
        language=language,
    )
    t.finish()
    return config


def _indexers(tables: list[_Table]) -> tuple[IndexerConfig, ...]:
    result: list[IndexerConfig] = []
    seen: dict[str, str] = {}
    for t in tables:
        url = t.value("url", NZBGEEK_URL, _http_url)
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
        categories = t.list_of("categories", _category, "positive integers", default=[2000])
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


def _usenet(t: _Table) -> UsenetConfig:
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


def _downloads(t: _Table, base_dir: Path, data_dir: Path) -> DownloadsConfig:
    config = DownloadsConfig(
        dir=t.path("dir", data_dir / "downloads", base_dir),
        max_active=t.integer("max_active", 1, 1, 100),
    )
    t.finish()
    return config


def _retention(t: _Table) -> RetentionConfig:
    ready = t.number("ready_hours", 24.0)
    config = RetentionConfig(ready_hours=ready, local_hours=t.number("local_hours", ready))
    t.finish()
    return config


def _r2(t: _Table) -> R2Config:
    d = R2Config()
    bucket = t.optional_string("bucket")
    if bucket is not None and not _BUCKET.fullmatch(bucket):
        t.error("bucket", "must be 3-63 lower-case letters, digits, dots or hyphens")
    region = t.string("region", d.region)
    if not region.strip():
        t.error("region", 'must not be empty (R2 uses "auto")')
    endpoint = t.value("endpoint", None, _http_url)
    config = R2Config(
        enabled=t.boolean("enabled", d.enabled),
        endpoint=endpoint,
        bucket=bucket,
        region=region,
        access_key_id=t.optional_string("access_key_id"),
        secret_access_key=t.optional_string("secret_access_key"),
        # Seven days is the longest validity S3 signatures allow.
        presign_seconds=t.integer("presign_seconds", d.presign_seconds, 60, 7 * 24 * 3600),
    )
    if config.enabled:
        for key in ("endpoint", "bucket", "access_key_id", "secret_access_key"):
            if getattr(config, key) is None and not t.has_error(key):
                t.error(key, "required when r2.enabled is true")
    t.finish()
    return config


# --------------------------------------------------------------------------- value checks
# Each takes a value already known to be a string and returns the normalised value or
# raises _Invalid with the problem (the caller adds the key path).


class _Invalid(ValueError):
    pass


def _base_path(value: str) -> str:
    segments = [segment for segment in value.split("/") if segment]
    for segment in segments:
        if segment in (".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            raise _Invalid(f"{value!r} is not a URL path such as /matinee/")
    return "/" + "".join(segment + "/" for segment in segments)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise _Invalid("must be an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise _Invalid("must be an http(s) URL with a valid port") from None
    return value.rstrip("/")


def _network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise _Invalid("must be a string such as 10.0.0.1 or 192.168.1.0/24")
    try:
        # strict=False: "192.168.1.5/24" means that /24, not an error.
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _Invalid(f"{value!r} is not an IP address or network (CIDR)") from None


def _api_key(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    if len(value) < _MIN_API_KEY or value != value.strip() or "," in value:
        # Commas would split the key in MATINEE_API_KEYS; short keys can be guessed.
        raise _Invalid(f"must be at least {_MIN_API_KEY} characters, without spaces or commas")
    return value


def _category(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid("must be a positive integer (a newznab category such as 2000)")
    return value


# --------------------------------------------------------------------------- table reader

_T = TypeVar("_T")
_MISSING: Any = object()


class _Table:
    """Typed access to one TOML table that records problems instead of stopping at the
    first, and reports keys nobody asked for as unknown (typos must not pass silently)."""

    def __init__(
        self, data: object, path: str, errors: list[str], origins: Mapping[str, str]
    ) -> None:
        self.path_name = path
        self._errors = errors
        self._origins = origins
        self._seen: set[str] = set()
        self._failed: set[str] = set()
        self._data: Mapping[str, object] = data if isinstance(data, dict) else {}

    def _key(self, key: str) -> str:
        return f"{self.path_name}.{key}" if self.path_name else key

    def error(self, key: str, problem: str) -> None:
        path = self._key(key)
        # A list item ("auth.api_keys[1]") came from the variable that set the list.
        source = self._origins.get(path) or self._origins.get(path.partition("[")[0])
        self._failed.add(key)
        self._errors.append(f"{path}: {problem}" + (f" (from {source})" if source else ""))

    def has_error(self, key: str) -> bool:
        return key in self._failed

    def _get(self, key: str) -> object:
        self._seen.add(key)
        return self._data.get(key, _MISSING)

    def table(self, key: str) -> _Table:
        raw = self._get(key)
        if raw is not _MISSING and not isinstance(raw, dict):
            self.error(key, f"must be a table ([{self._key(key)}])")
        return _Table(raw, self._key(key), self._errors, self._origins)

    def array(self, key: str) -> list[_Table]:
        raw = self._get(key)
        if raw is _MISSING:
            return []
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.error(key, f"must be an array of tables ([[{self._key(key)}]])")
            return []
        path = self._key(key)
        return [
            _Table(item, f"{path}[{i}]", self._errors, self._origins) for i, item in enumerate(raw)
        ]

    def string(self, key: str, default: str, *, required: bool = False) -> str:
        raw = self._get(key)
        if raw is _MISSING:
            if required:
                self.error(key, "required")
            return default
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return default
        if required and not raw.strip():
            self.error(key, "must not be empty")
        return raw

    def optional_string(self, key: str) -> str | None:
        """An empty string means "not set", so the example file can leave secrets blank."""
        raw = self._get(key)
        if raw is _MISSING or raw == "":
            return None
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return None
        return raw

    def value(self, key: str, default: _T, check: Callable[[str], str]) -> _T | str:
        raw = self._get(key)
        if raw is _MISSING or (raw == "" and default is None):
            return default
        if not isinstance(raw, str):
            self.error(key, "must be a string")
            return default
        try:
            return check(raw)
        except _Invalid as exc:
            self.error(key, str(exc))
            return default

    def integer(
        self, key: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        raw = self._get(key)
        if raw is _MISSING:
            return default
        # bool is an int in Python, but `port = true` is a mistake in TOML.
        if (
            isinstance(raw, int)
            and not isinstance(raw, bool)
            and (low is None or raw >= low)
            and (high is None or raw <= high)
        ):
            return raw
        if low is not None and high is not None:
            self.error(key, f"must be an integer from {low} to {high}")
        elif low is not None:
            self.error(key, f"must be an integer of at least {low}")
        else:
            self.error(key, "must be an integer")
        return default

    def number(self, key: str, default: float) -> float:
        """A positive, finite number of (fractional) hours or seconds."""
        raw = self._get(key)
        if raw is _MISSING:
            return default
        if (
            isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and raw > 0
        ):
            return float(raw)
        self.error(key, "must be a number greater than 0")
        return default

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._get(key)
        if raw is _MISSING:
            return default
        if not isinstance(raw, bool):
            self.error(key, "must be true or false")
            return default
        return raw

    def path(self, key: str, default: Path, base_dir: Path) -> Path:
        raw = self._get(key)
        if raw is _MISSING:
            return default if default.is_absolute() else base_dir / default
        if not isinstance(raw, str) or not raw.strip():
            self.error(key, "must be a path (a non-empty string)")
            return base_dir / default
        return base_dir / Path(raw).expanduser()

    def list_of(
        self,
        key: str,
        check: Callable[[object], _T],
        what: str,
        *,
        default: list[_T] | None = None,
    ) -> list[_T]:
        raw = self._get(key)
        if raw is _MISSING:
            return list(default or [])
        if not isinstance(raw, list):
            self.error(key, f"must be a list of {what}")
            return list(default or [])
        result: list[_T] = []
        for i, item in enumerate(raw):
            try:
                result.append(check(item))
            except _Invalid as exc:
                self.error(f"{key}[{i}]", str(exc))
        return result

    def finish(self) -> None:
        for key in self._data:
            if key not in self._seen:
                hint = difflib.get_close_matches(key, sorted(self._seen), n=1)
                what = "unknown key" if self.path_name else "unknown section"
                self.error(key, what + (f" (did you mean {hint[0]!r}?)" if hint else ""))


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


# --------------------------------------------------------------------------- describe


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
    lines.append(f"downloads: {s.downloads.dir}, {s.downloads.max_active} at a time")
    lines.append(
        f"retention: ready for {s.retention.ready_hours:g} h"
        f", local files kept {s.retention.local_hours:g} h"
    )
    if s.r2.enabled:
        lines.append(
            f"r2: bucket {s.r2.bucket} at {s.r2.endpoint}, region {s.r2.region}"
            f", access key {_mask(s.r2.access_key_id)}"
            f", secret {_mask(s.r2.secret_access_key)}"
            f", links valid {s.r2.presign_seconds / 3600:g} h"
        )
    else:
        lines.append("r2: disabled")
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
