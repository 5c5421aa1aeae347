"""server.config: what a config file turns into, and what a user is told when it is wrong."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import settings as cfg
from server.config.describe import describe, secret_values
from server.config.load import load_config, parse_config
from server.config.settings import Settings
from server.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
BASE = Path("/srv/matinee")

SECTIONS: dict[str, type[Any]] = {
    "server": cfg.ServerConfig,
    "auth": cfg.AuthConfig,
    "tmdb": cfg.TmdbConfig,
    "indexers": cfg.IndexerConfig,
    "usenet": cfg.UsenetConfig,
    "usenet.servers": cfg.UsenetServerConfig,
    "downloads": cfg.DownloadsConfig,
    "retention": cfg.RetentionConfig,
    "r2": cfg.R2Config,
    "playback": cfg.PlaybackConfig,
    "transcode": cfg.TranscodeConfig,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # A developer's own MATINEE_* variables or ./config.toml must not change results.
    for name in list(os.environ):
        if name.startswith("MATINEE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def parse(text: str, env: dict[str, str] | None = None) -> Settings:
    return parse_config(tomllib.loads(text), base_dir=BASE, env=env or {})


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return list(caught.value.errors)


# --------------------------------------------------------------------------- good configs

GOOD: list[tuple[str, str, Callable[[Settings], object], object]] = [
    ("empty file: host", "", lambda s: s.server.host, "127.0.0.1"),
    ("empty file: port", "", lambda s: s.server.port, 8080),
    ("empty file: base path", "", lambda s: s.server.base_path, "/"),
    ("empty file: data dir", "", lambda s: s.server.data_dir, BASE / "data"),
    ("empty file: downloads", "", lambda s: s.downloads.dir, BASE / "data" / "downloads"),
    ("empty file: max_active", "", lambda s: s.downloads.max_active, 1),
    ("empty file: retention", "", lambda s: s.retention, cfg.RetentionConfig(24.0, 24.0)),
    ("empty file: r2", "", lambda s: s.r2.enabled, False),
    ("empty file: no indexers", "", lambda s: s.indexers, ()),
    ("empty file: no servers", "", lambda s: s.usenet.servers, ()),
    ("empty file: tmdb", "", lambda s: s.tmdb, cfg.TmdbConfig()),
    (
        "tmdb defaults",
        "",
        lambda s: (s.tmdb.base_url, s.tmdb.image_base_url, s.tmdb.language),
        ("https://api.themoviedb.org/3", "https://image.tmdb.org/t/p", "en-US"),
    ),
    ("server values", '[server]\nhost = "0.0.0.0"\nport = 9000', lambda s: s.server.port, 9000),
    (
        "relative data_dir is under the config file's directory",
        '[server]\ndata_dir = "state"',
        lambda s: s.server.data_dir,
        BASE / "state",
    ),
    (
        "downloads follow data_dir by default",
        '[server]\ndata_dir = "/var/lib/matinee"',
        lambda s: s.downloads.dir,
        Path("/var/lib/matinee/downloads"),
    ),
    (
        "relative downloads dir",
        '[downloads]\ndir = "../dl"\nmax_active = 3',
        lambda s: (s.downloads.dir, s.downloads.max_active),
        (BASE / "../dl", 3),
    ),
    (
        "absolute downloads dir",
        '[downloads]\ndir = "/mnt/big"',
        lambda s: s.downloads.dir,
        Path("/mnt/big"),
    ),
    (
        "trusted proxies: addresses become networks",
        '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "192.168.1.7/24", "::1"]',
        lambda s: [str(n) for n in s.server.trusted_proxies],
        ["127.0.0.1/32", "10.0.0.0/8", "192.168.1.0/24", "::1/128"],
    ),
    (
        "trusted proxies answer membership",
        '[server]\ntrusted_proxies = ["10.0.0.0/8"]',
        lambda s: ipaddress.ip_address("10.1.2.3") in s.server.trusted_proxies[0],
        True,
    ),
    (
        "local_hours defaults to ready_hours",
        "[retention]\nready_hours = 48",
        lambda s: s.retention,
        cfg.RetentionConfig(48.0, 48.0),
    ),
    (
        "local_hours on its own",
        "[retention]\nready_hours = 72\nlocal_hours = 1.5",
        lambda s: s.retention,
        cfg.RetentionConfig(72.0, 1.5),
    ),
    (
        "an indexer with only an API key is NZBGeek",
        '[[indexers]]\napi_key = "k"',
        lambda s: s.indexers[0],
        cfg.IndexerConfig("NZBGeek", "https://api.nzbgeek.info", "k", (2000,), 0, True),
    ),
    (
        "another indexer is named after its host; trailing slash dropped",
        '[[indexers]]\nurl = "https://Indexer.example.org/api/"\ncategories = [2040, 2045]'
        "\npriority = 2\nenabled = false",
        lambda s: s.indexers[0],
        cfg.IndexerConfig(
            "indexer.example.org", "https://Indexer.example.org/api", None, (2040, 2045), 2, False
        ),
    ),
    (
        "usenet server defaults",
        '[[usenet.servers]]\nhost = "news.example.com"',
        lambda s: s.usenet.servers[0],
        cfg.UsenetServerConfig(
            host="news.example.com",
            name="news.example.com",
            port=563,
            tls=True,
            username=None,
            password=None,
            connections=8,
            priority=0,
            pipelining=8,
            timeout=30.0,
        ),
    ),
    (
        "plain-text server defaults to port 119",
        '[[usenet.servers]]\nhost = "news.example.com"\ntls = false',
        lambda s: s.usenet.servers[0].port,
        119,
    ),
    (
        "usenet server, every key",
        '[[usenet.servers]]\nname = "backup"\nhost = "bk.example.net"\nport = 443\ntls = true'
        '\nusername = "alice"\npassword = "pw"\nconnections = 50\npriority = 1\npipelining = 32'
        "\ntimeout = 12.5",
        lambda s: s.usenet.servers[0],
        cfg.UsenetServerConfig(
            "bk.example.net", "backup", 443, True, "alice", "pw", 50, 1, 32, 12.5
        ),
    ),
    (
        "r2 enabled",
        '[r2]\nenabled = true\nendpoint = "https://acc.r2.cloudflarestorage.com/"'
        '\nbucket = "movies"\naccess_key_id = "AKID"\nsecret_access_key = "SECRET"'
        "\npresign_seconds = 3600",
        lambda s: s.r2,
        cfg.R2Config(
            True, "https://acc.r2.cloudflarestorage.com", "movies", "auto", "AKID", "SECRET", 3600
        ),
    ),
    (
        "r2 disabled may be left half-filled",
        '[r2]\nenabled = false\nbucket = "movies"',
        lambda s: (s.r2.enabled, s.r2.bucket, s.r2.endpoint),
        (False, "movies", None),
    ),
    (
        "empty strings mean not set",
        '[tmdb]\ntoken = ""\n[auth]\nsession_secret = ""\n[r2]\nendpoint = ""',
        lambda s: (s.tmdb.token, s.auth.session_secret, s.r2.endpoint),
        (None, None, None),
    ),
    (
        "auth values",
        '[auth]\npassword_hash = "scrypt$x"\napi_keys = ["0123456789abcdef", "fedcba9876543210"]'
        '\nsession_secret = "' + "s" * 32 + '"',
        lambda s: (s.auth.password_hash, s.auth.api_keys),
        ("scrypt$x", ("0123456789abcdef", "fedcba9876543210")),
    ),
]


@pytest.mark.parametrize(
    ("text", "get", "expected"), [case[1:] for case in GOOD], ids=[case[0] for case in GOOD]
)
def test_good_config(text: str, get: Callable[[Settings], object], expected: object) -> None:
    assert get(parse(text)) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("movies", "/movies/"),
        ("/movies", "/movies/"),
        ("movies/", "/movies/"),
        ("//apps//matinee/", "/apps/matinee/"),
        ("/a-b_c.d~e/", "/a-b_c.d~e/"),
    ],
)
def test_base_path_is_normalised(given: str, expected: str) -> None:
    assert parse(f'[server]\nbase_path = "{given}"').server.base_path == expected


@pytest.mark.parametrize("given", ["/a/../b", "/./", "/a b/", "/a?x=1", "/a#top"])
def test_base_path_rejects_what_is_not_a_path(given: str) -> None:
    assert errors_of(f'[server]\nbase_path = "{given}"') == [
        f"server.base_path: {given!r} is not a URL path such as /matinee/"
    ]


# --------------------------------------------------------------------------- errors

ERRORS: list[tuple[str, str]] = [
    ("[server]\nport = 0", "server.port: must be an integer from 1 to 65535"),
    ("[server]\nport = 70000", "server.port: must be an integer from 1 to 65535"),
    ('[server]\nport = "8080"', "server.port: must be an integer from 1 to 65535"),
    ("[server]\nport = true", "server.port: must be an integer from 1 to 65535"),
    ("[server]\nport = 80.0", "server.port: must be an integer from 1 to 65535"),
    ('[server]\nhost = ""', "server.host: must be an IP address or host name to listen on"),
    ("[server]\nhost = 1", "server.host: must be a string"),
    ('[server]\ndata_dir = ""', "server.data_dir: must be a path (a non-empty string)"),
    (
        '[server]\ntrusted_proxies = ["10.0.0.1", "proxy.lan"]',
        "server.trusted_proxies[1]: 'proxy.lan' is not an IP address or network (CIDR)",
    ),
    (
        '[server]\ntrusted_proxies = "10.0.0.1"',
        "server.trusted_proxies: must be a list of IP addresses or networks",
    ),
    ("server = 1", "server: must be a table ([server])"),
    (
        '[auth]\napi_keys = ["short"]',
        "auth.api_keys[0]: must be at least 16 characters, without spaces or commas",
    ),
    (
        '[auth]\nsession_secret = "tooshort"',
        "auth.session_secret: must be at least 32 characters long",
    ),
    ("[auth]\npassword_hash = 5", "auth.password_hash: must be a string"),
    ('[tmdb]\nbase_url = "api.themoviedb.org/3"', "tmdb.base_url: must be an http(s) URL"),
    ('[tmdb]\nimage_base_url = "ftp://x"', "tmdb.image_base_url: must be an http(s) URL"),
    ('[tmdb]\nlanguage = "english"', "tmdb.language: must be a language code such as en-US or fr"),
    ('[[indexers]]\nurl = "nzbgeek.info"', "indexers[0].url: must be an http(s) URL"),
    (
        '[[indexers]]\nurl = "https://x.example:99999"',
        "indexers[0].url: must be an http(s) URL with a valid port",
    ),
    (
        "[[indexers]]\ncategories = [2000, 0]",
        "indexers[0].categories[1]: must be a positive integer (a newznab category such as 2000)",
    ),
    (
        "[[indexers]]\ncategories = []",
        "indexers[0].categories: must list at least one newznab category, such as 2000",
    ),
    ('[[indexers]]\nenabled = "yes"', "indexers[0].enabled: must be true or false"),
    (
        '[[indexers]]\napi_key = "a"\n[[indexers]]\napi_key = "b"',
        "indexers[1].name: 'NZBGeek' is already the name of indexers[0]",
    ),
    ('[indexers]\nname = "x"', "indexers: must be an array of tables ([[indexers]])"),
    ("[[usenet.servers]]\nport = 563", "usenet.servers[0].host: required"),
    ('[[usenet.servers]]\nhost = " "', "usenet.servers[0].host: must not be empty"),
    (
        '[[usenet.servers]]\nhost = "nntps://news.example.com"',
        "usenet.servers[0].host: must be a host name such as news.example.com, not a URL",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\n[[usenet.servers]]\nhost = "b"\nport = 0',
        "usenet.servers[1].port: must be an integer from 1 to 65535",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\nconnections = 0',
        "usenet.servers[0].connections: must be an integer from 1 to 100",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\nconnections = 101',
        "usenet.servers[0].connections: must be an integer from 1 to 100",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\npipelining = 65',
        "usenet.servers[0].pipelining: must be an integer from 1 to 64",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\ntimeout = 0',
        "usenet.servers[0].timeout: must be a number greater than 0",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\ntimeout = inf',
        "usenet.servers[0].timeout: must be a number greater than 0",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\nusername = "alice"',
        "usenet.servers[0].password: required when username is set",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\npassword = "pw"',
        "usenet.servers[0].username: required when password is set",
    ),
    (
        '[[usenet.servers]]\nhost = "a"\n[[usenet.servers]]\nhost = "a"',
        "usenet.servers[1].name: 'a' is already the name of usenet.servers[0]",
    ),
    ("usenet = []", "usenet: must be a table ([usenet])"),
    ("[downloads]\nmax_active = 0", "downloads.max_active: must be an integer from 1 to 100"),
    ("[retention]\nready_hours = -1", "retention.ready_hours: must be a number greater than 0"),
    ("[retention]\nlocal_hours = nan", "retention.local_hours: must be a number greater than 0"),
    ("[transcode]\nmax_sessions = 0", "transcode.max_sessions: must be an integer from 1 to 32"),
    (
        '[transcode]\nhardware = "cuda"',
        "transcode.hardware: must be one of vaapi, nvenc, qsv (or unset for libx264)",
    ),
    (
        '[transcode]\npreset = "placebo"',
        "transcode.preset: must be one of ultrafast, superfast, veryfast, faster, fast, medium",
    ),
    (
        "[playback]\naudio_languages = [1]",
        'playback.audio_languages[0]: must be a language code such as "en", "eng" or "pt-BR"',
    ),
    (
        '[playback]\naudio_languages = "en"',
        "playback.audio_languages: must be a list of language codes",
    ),
    ('[r2]\nenabled = "true"', "r2.enabled: must be true or false"),
    (
        '[r2]\nbucket = "My_Bucket"',
        "r2.bucket: must be 3-63 lower-case letters, digits, dots or hyphens",
    ),
    ('[r2]\nendpoint = "r2.example.com"', "r2.endpoint: must be an http(s) URL"),
    ("[r2]\npresign_seconds = 604801", "r2.presign_seconds: must be an integer from 60 to 604800"),
    ('[r2]\nregion = ""', 'r2.region: must not be empty (R2 uses "auto")'),
    ('[r2]\nserve = "cdn"', 'r2.serve: must be "local", "r2" or "auto"'),
    ("[r2]\nconcurrency = 0", "r2.concurrency: must be an integer from 1 to 64"),
    ("[r2]\nmax_gb = -1", "r2.max_gb: must be a number of 0 (off) or more"),
    ('[r2]\npath_style = "yes"', "r2.path_style: must be true or false"),
    ("[retention]\nidle_hours = -0.5", "retention.idle_hours: must be a number of 0 (off) or more"),
    (
        '[downloads]\nmax_disk_gb = "10"',
        "downloads.max_disk_gb: must be a number of 0 (off) or more",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[1].split(":")[0] for e in ERRORS])
def test_error_names_its_key(text: str, message: str) -> None:
    assert errors_of(text) == [message]


def test_r2_enabled_lists_every_missing_setting() -> None:
    assert errors_of('[r2]\nenabled = true\nbucket = "movies"') == [
        "r2.endpoint: required when r2.enabled is true",
        "r2.access_key_id: required when r2.enabled is true",
        "r2.secret_access_key: required when r2.enabled is true",
    ]


def test_every_error_is_reported_at_once() -> None:
    text = """
[server]
port = 0
base_path = "/a/../b"

[[indexers]]
url = "nzbgeek"

[[usenet.servers]]
host = "news.example.com"

[[usenet.servers]]
host = "backup.example.com"
port = 70000
connections = 0

[r2]
enabled = true
bucket = "movies"
endpoint = "https://r2.example.com"
access_key_id = "id"
"""
    assert errors_of(text) == [
        "server.port: must be an integer from 1 to 65535",
        "server.base_path: '/a/../b' is not a URL path such as /matinee/",
        "indexers[0].url: must be an http(s) URL",
        "usenet.servers[1].port: must be an integer from 1 to 65535",
        "usenet.servers[1].connections: must be an integer from 1 to 100",
        "r2.secret_access_key: required when r2.enabled is true",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\npot = 8080", "server.pot: unknown key (did you mean 'port'?)"),
        ("[server]\ncolour = 1", "server.colour: unknown key"),
        ('[tmdb]\napikey = "x"', "tmdb.apikey: unknown key (did you mean 'api_key'?)"),
        (
            "[[indexers]]\ncategory = [2000]",
            "indexers[0].category: unknown key (did you mean 'categories'?)",
        ),
        (
            '[[usenet.servers]]\nhost = "a"\n[[usenet.servers]]\nhost = "b"\nssl = true',
            "usenet.servers[1].ssl: unknown key",
        ),
        ('[[usenet.server]]\nhost = "a"', "usenet.server: unknown key (did you mean 'servers'?)"),
        ("[retention]\nready = 3", "retention.ready: unknown key (did you mean 'ready_hours'?)"),
        ("[sever]\nport = 1", "sever: unknown section (did you mean 'server'?)"),
        ("debug = true", "debug: unknown section"),
    ],
)
def test_unknown_keys_are_errors(text: str, message: str) -> None:
    assert errors_of(text) == [message]


# --------------------------------------------------------------------------- environment

TWO_OF_EACH = """
[[indexers]]
api_key = "file-key"
[[indexers]]
url = "https://other.example"
[[usenet.servers]]
host = "a.example"
username = "file-user"
password = "file-pass"
[[usenet.servers]]
host = "b.example"
"""

ENV_CASES: list[tuple[str, str, Callable[[Settings], object], object]] = [
    ("MATINEE_TMDB_TOKEN", "tok", lambda s: s.tmdb.token, "tok"),
    ("MATINEE_TMDB_API_KEY", "v3key", lambda s: s.tmdb.api_key, "v3key"),
    ("MATINEE_SESSION_SECRET", "x" * 40, lambda s: s.auth.session_secret, "x" * 40),
    (
        "MATINEE_API_KEYS",
        " 0123456789abcdef, fedcba9876543210 ,",
        lambda s: s.auth.api_keys,
        ("0123456789abcdef", "fedcba9876543210"),
    ),
    ("MATINEE_R2_ACCESS_KEY_ID", "AKID", lambda s: s.r2.access_key_id, "AKID"),
    ("MATINEE_R2_SECRET_ACCESS_KEY", "SAK", lambda s: s.r2.secret_access_key, "SAK"),
    ("MATINEE_INDEXER_0_API_KEY", "env-key", lambda s: s.indexers[0].api_key, "env-key"),
    ("MATINEE_INDEXER_1_API_KEY", "env-key1", lambda s: s.indexers[1].api_key, "env-key1"),
    ("MATINEE_USENET_0_USERNAME", "bob", lambda s: s.usenet.servers[0].username, "bob"),
    ("MATINEE_USENET_0_PASSWORD", "env-pass", lambda s: s.usenet.servers[0].password, "env-pass"),
    ("MATINEE_INDEXER_0_API_KEY", "", lambda s: s.indexers[0].api_key, "file-key"),
]


@pytest.mark.parametrize(
    ("var", "value", "get", "expected"), ENV_CASES, ids=[f"{c[0]}={c[1]!r}" for c in ENV_CASES]
)
def test_environment_overrides_the_file(
    var: str, value: str, get: Callable[[Settings], object], expected: object
) -> None:
    file = TWO_OF_EACH + '[tmdb]\ntoken = "file-token"\napi_key = "file-v3"\n'
    assert get(parse(file, {var: value})) == expected


def test_environment_fills_credentials_missing_from_the_file() -> None:
    env = {"MATINEE_USENET_1_USERNAME": "carol", "MATINEE_USENET_1_PASSWORD": "pw"}
    server = parse(TWO_OF_EACH, env).usenet.servers[1]
    assert (server.username, server.password) == ("carol", "pw")


def test_unrelated_environment_is_ignored() -> None:
    env = {"MATINEE_COLOUR": "blue", "PATH": "/bin", "MATINEE_CONFIG": "/elsewhere.toml"}
    assert parse("", env) == parse("")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MATINEE_INDEXER_2_API_KEY": "k"},
            "MATINEE_INDEXER_2_API_KEY: there is no indexers[2] in the config file",
        ),
        (
            {"MATINEE_USENET_1_PASSWORD": "p"},
            "MATINEE_USENET_1_PASSWORD: there is no usenet.servers[1] in the config file",
        ),
        (
            {"MATINEE_SESSION_SECRET": "short"},
            "auth.session_secret: must be at least 32 characters long "
            "(from MATINEE_SESSION_SECRET)",
        ),
        (
            {"MATINEE_API_KEYS": "0123456789abcdef,tiny"},
            "auth.api_keys[1]: must be at least 16 characters, without spaces or commas "
            "(from MATINEE_API_KEYS)",
        ),
    ],
)
def test_environment_mistakes_are_errors(env: dict[str, str], message: str) -> None:
    assert errors_of('[[usenet.servers]]\nhost = "a"', env) == [message]


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "password_hash": "scrypt$hash-value-1",
    "api_key_a": "apikey-aaaaaaaaaaaa-2",
    "api_key_b": "apikey-bbbbbbbbbbbb-3",
    "session_secret": "session-secret-" + "z" * 20 + "-4",
    "tmdb_token": "tmdb-token-5",
    "tmdb_api_key": "tmdb-v3-6",
    "indexer_key": "indexer-key-7",
    "usenet_password": "usenet-pass-8",
    "r2_id": "r2-access-id-9",
    "r2_secret": "r2-secret-10",
}

SECRET_FILE = f"""
[auth]
password_hash = "{SECRETS["password_hash"]}"
api_keys = ["{SECRETS["api_key_a"]}"]
session_secret = "{SECRETS["session_secret"]}"
[tmdb]
token = "{SECRETS["tmdb_token"]}"
[[indexers]]
api_key = "{SECRETS["indexer_key"]}"
[[usenet.servers]]
host = "news.example.com"
username = "alice"
[r2]
enabled = true
endpoint = "https://acc.r2.cloudflarestorage.com"
bucket = "movies"
access_key_id = "{SECRETS["r2_id"]}"
"""

SECRET_ENV = {
    "MATINEE_API_KEYS": f"{SECRETS['api_key_a']},{SECRETS['api_key_b']}",
    "MATINEE_TMDB_API_KEY": SECRETS["tmdb_api_key"],
    "MATINEE_USENET_0_PASSWORD": SECRETS["usenet_password"],
    "MATINEE_R2_SECRET_ACCESS_KEY": SECRETS["r2_secret"],
}


def test_secrets_never_appear_in_repr_str_or_describe() -> None:
    settings = parse(SECRET_FILE, SECRET_ENV)
    shown = "\n".join([repr(settings), str(settings), *describe(settings)])
    shown += "\n".join(repr(server) for server in settings.usenet.servers)
    for name, secret in SECRETS.items():
        assert secret not in shown, name
    # The settings really hold them: the test above is not passing on empty values.
    assert settings.usenet.servers[0].password == SECRETS["usenet_password"]
    assert sorted(secret_values(settings)) == sorted(SECRETS.values())


def test_describe_says_what_is_configured() -> None:
    settings = parse(SECRET_FILE, SECRET_ENV)
    lines = describe(settings)
    assert (
        "usenet: news.example.com:563 TLS, 8 connections, priority 0, pipelining 8, "
        "timeout 30s, user alice, password ******"
    ) in lines
    assert "auth: UI password ******, 2 API key(s), session secret ******" in lines
    assert (
        "indexer NZBGeek: https://api.nzbgeek.info, categories 2000, priority 0, api key ******"
    ) in lines
    assert "tmdb: token ******, language en-US, https://api.themoviedb.org/3" in lines
    assert any(line.startswith("r2: bucket movies at https://acc.r2") for line in lines)


def test_describe_says_what_is_missing() -> None:
    lines = describe(parse(""))
    assert "server: listening on 127.0.0.1:8080, base path /" in lines
    assert "usenet: no servers configured: downloads will not work" in lines
    assert "tmdb: not configured (no token or api_key): browsing will not work" in lines
    assert "r2: disabled" in lines


def test_parse_does_not_modify_its_input() -> None:
    data = tomllib.loads('[[usenet.servers]]\nhost = "a"')
    parse_config(
        data,
        base_dir=BASE,
        env={"MATINEE_USENET_0_USERNAME": "u", "MATINEE_USENET_0_PASSWORD": "p"},
    )
    assert data == {"usenet": {"servers": [{"host": "a"}]}}


# --------------------------------------------------------------------------- files


def test_load_reads_a_file_and_resolves_paths_against_its_directory(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "matinee.toml"
    conf.parent.mkdir()
    conf.write_text('[server]\ndata_dir = "../state"\nport = 9999\n')
    settings = load_config(conf, env={})
    assert settings.server.port == 9999
    assert settings.server.data_dir == tmp_path / "etc" / ".." / "state"


def test_explicit_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: config file does not exist")):
        load_config(missing, env={})


def test_matinee_config_names_a_file_that_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(None, env={"MATINEE_CONFIG": str(missing)})
    present = tmp_path / "there.toml"
    present.write_text("[server]\nport = 1234\n")
    assert load_config(None, env={"MATINEE_CONFIG": str(present)}).server.port == 1234


def test_without_any_file_the_defaults_apply(tmp_path: Path) -> None:
    settings = load_config(None, env={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.server.data_dir == tmp_path / "data"


def test_config_toml_in_the_working_directory_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[server]\nport = 4321\n")
    assert load_config(None, env={}).server.port == 4321


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("[server]\nport = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(conf, env={})
    message = str(caught.value)
    assert message.startswith(f"{conf}: not valid TOML: ")
    assert "line 2" in message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})


# --------------------------------------------------------------------------- the example


def test_example_loads() -> None:
    settings = load_config(EXAMPLE, env={})
    assert settings.server.port == 8080
    assert settings.indexers[0].name == "NZBGeek"
    assert settings.indexers[0].url == "https://api.nzbgeek.info"
    assert settings.usenet.servers[0].host == "news.example.com"
    assert settings.downloads.dir == settings.server.data_dir / "downloads"


def test_example_sets_every_field_of_every_section() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert set(data) == {f.name for f in dataclasses.fields(Settings)}
    for section, cls in SECTIONS.items():
        table: Any = data
        for part in section.split("."):
            table = table[part]
            if isinstance(table, list):
                table = table[0]
        missing = {f.name for f in dataclasses.fields(cls)} - set(table)
        assert not missing, f"config.example.toml lacks {section}: {sorted(missing)}"


def test_example_comments_every_key() -> None:
    previous = ""
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        if re.match(r"\s*\w+\s*=", line):
            assert previous.lstrip().startswith("#"), f"line {number} has no comment: {line}"
        if line.strip():
            previous = line


def test_example_matches_the_defaults_it_claims() -> None:
    # Where the example states a default, loading it must give the same as leaving it out.
    example = load_config(EXAMPLE, env={})
    defaults = parse_config({}, base_dir=EXAMPLE.parent, env={})
    for section in ("server", "tmdb", "downloads", "retention", "playback", "transcode"):
        assert getattr(example, section) == getattr(defaults, section), section
    assert example.r2 == defaults.r2
