"""The `matinee` command line: what it prints, its exit status, and what it hands over to the
web server and the download engine. Also the log set-up it performs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.cli import download as download_cmd
from server.cli import serve as serve_module
from server.cli.download import DownloadRequest
from server.cli.main import main
from server.config.load import parse_server_url
from server.config.settings import Settings, UsenetServerConfig
from server.errors import ConfigError
from server.http.tokens import load_or_create_secret
from server.logs import setup_logging
from server.store.db import store_context

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[server]
port = 9123
[auth]
session_secret = "session-secret-that-is-long-enough-1"
[tmdb]
token = "tmdb-token-secret-2"
[[indexers]]
api_key = "indexer-key-secret-3"
[[usenet.servers]]
host = "news.example.com"
username = "alice"
password = "usenet-password-secret-4"
connections = 20
"""
GOOD_SECRETS = [
    "session-secret-that-is-long-enough-1",
    "tmdb-token-secret-2",
    "indexer-key-secret-3",
    "usenet-password-secret-4",
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("MATINEE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    level = root.level
    yield
    # main() installs a handler on stderr, which capsys closes after the test.
    for handler in [h for h in root.handlers if h.get_name() == "matinee"]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    path = tmp_path / "matinee.toml"
    path.write_text(GOOD)
    return path


# --------------------------------------------------------------------------- check-config


def test_check_config_describes_and_approves(
    good_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(good_config)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"config file: {good_config}"
    assert "server: listening on 127.0.0.1:9123, base path /" in lines
    assert (
        "usenet: news.example.com:563 TLS, 20 connections, priority 0, pipelining 8, "
        "timeout 30s, user alice, password ******"
    ) in lines
    assert lines[-1] == "Configuration OK"
    assert err == ""


def test_check_config_masks_secrets_from_file_and_environment(
    good_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATINEE_R2_SECRET_ACCESS_KEY", "r2-secret-from-env-5")
    monkeypatch.setenv("MATINEE_API_KEYS", "api-key-from-env-0006")
    assert main(["check-config", "--config", str(good_config)]) == 0
    out, err = capsys.readouterr()
    assert "auth: UI password not set, 1 API key(s), session secret ******" in out
    for secret in [*GOOD_SECRETS, "r2-secret-from-env-5", "api-key-from-env-0006"]:
        assert secret not in out + err


def test_check_config_without_any_file_uses_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config file: none, using the defaults\n")
    assert "server: listening on 127.0.0.1:8080, base path /" in out
    assert out.endswith("Configuration OK\n")


def test_check_config_finds_matinee_config(
    good_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATINEE_CONFIG", str(good_config))
    assert main(["check-config"]) == 0
    assert "127.0.0.1:9123" in capsys.readouterr().out


def test_check_config_reports_every_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\npot = 80\n[[usenet.servers]]\nhost = "a"\n'
        '[[usenet.servers]]\nhost = "b"\nport = 0\npassword = "secret-in-bad-file"\n'
    )
    assert main(["check-config", "--config", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"matinee: invalid configuration ({bad}):",
        "  server.pot: unknown key (did you mean 'port'?)",
        "  usenet.servers[1].username: required when password is set",
        "  usenet.servers[1].port: must be an integer from 1 to 65535",
    ]
    assert "secret-in-bad-file" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server\n", "not valid TOML"),
        ("[r2]\nenabled = true\n", "r2.endpoint: required when r2.enabled is true"),
    ],
)
def test_check_config_fails_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_check_config_with_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["check-config", "--config", str(missing)]) == 2
    assert f"{missing}: config file does not exist" in capsys.readouterr().err


def test_check_config_rejects_a_bad_environment_override(
    good_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATINEE_USENET_3_PASSWORD", "x")
    assert main(["check-config", "--config", str(good_config)]) == 2
    err = capsys.readouterr().err
    assert "  MATINEE_USENET_3_PASSWORD: there is no usenet.servers[3] in the config file" in err


# --------------------------------------------------------------------------- global options


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"matinee {version('matinee')}"


def test_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "loud", "check-config"]) == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


# --------------------------------------------------------------------------- serve


class FakeServe:
    """Stands in for server.app and the serving loop (tests/test_serve.py runs the real one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings: Settings | None = None
        self.run: dict[str, Any] | None = None
        module = types.ModuleType("server.app")
        module.create_app = self.create_app  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "server.app", module)
        monkeypatch.setattr(serve_module, "serve", self.serve)

    def create_app(self, settings: Settings) -> str:
        self.settings = settings
        return "the app"

    async def serve(self, app: object, host: str, port: int) -> None:
        self.run = {"app": app, "host": host, "port": port}
        logging.getLogger("aiohttp.access").info("GET /?apikey=%s", "tmdb-token-secret-2")


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--config", "{config}"],
        ["--config", "{config}"],
        ["--log-level", "debug", "serve", "--config", "{config}"],
        ["serve", "--config", "{config}", "--log-level", "debug"],
    ],
)
def test_serve_runs_the_app_on_the_configured_address(
    good_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    fake = FakeServe(monkeypatch)
    assert main([arg.format(config=good_config) for arg in argv]) == 0
    assert fake.settings is not None and fake.settings.server.port == 9123
    assert fake.run == {"app": "the app", "host": "127.0.0.1", "port": 9123}
    err = capsys.readouterr().err
    # Logging is set up before the app runs, with the configured secrets masked.
    assert "GET /?apikey=******" in err
    assert "tmdb-token-secret-2" not in err


def test_serve_is_the_default_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeServe(monkeypatch)
    assert main([]) == 0
    assert fake.run is not None and (fake.run["host"], fake.run["port"]) == ("127.0.0.1", 8080)


def test_serve_with_a_bad_config_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeServe(monkeypatch)
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert fake.run is None
    assert "server.port: must be an integer from 1 to 65535" in capsys.readouterr().err


# --------------------------------------------------------------------------- download


class FakeDownload:
    """Stands in for server.cli.download's engine run: the CLI's part is the request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[DownloadRequest] = []
        monkeypatch.setattr(download_cmd, "run_download", self.run_download)

    def run_download(self, request: DownloadRequest) -> int:
        self.calls.append(request)
        return 7


def test_download_with_a_server_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(monkeypatch)
    argv = ["download", "movie.nzb", "--out", "dl", "--server", "nntps://bob:p%40ss@news.example"]
    assert main([*argv, "--connections", "30"]) == 7
    [request] = fake.calls
    assert (request.nzb, request.out) == (Path("movie.nzb"), Path("dl"))
    assert request.servers == (
        UsenetServerConfig(
            host="news.example", port=563, tls=True, username="bob", password="p@ss", connections=30
        ),
    )


def test_download_with_a_config_file(
    good_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(monkeypatch)
    assert main(["download", "a.nzb", "--out", "/tmp/x", "--config", str(good_config)]) == 7
    [request] = fake.calls
    assert [s.host for s in request.servers] == ["news.example.com"]
    assert [s.connections for s in request.servers] == [20]  # as configured


def test_download_needs_a_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(monkeypatch)
    assert main(["download", "a.nzb", "--out", "dl"]) == 2
    assert fake.calls == []
    assert "no Usenet server in no config file; give --server" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["download", "a.nzb"], "the following arguments are required: --out"),
        (["download", "--out", "dl"], "the following arguments are required: NZB"),
        (
            ["download", "a.nzb", "--out", "dl", "--config", "c.toml", "--server", "nntp://h"],
            "argument --server: not allowed with argument --config",
        ),
        (
            ["--config", "c.toml", "download", "a.nzb", "--out", "dl", "--server", "nntp://h"],
            "give either --config or --server, not both",
        ),
        (
            ["download", "a.nzb", "--out", "dl", "--server", "http://user:hunter22@h"],
            "argument --server: 'http://user:******@h': must start with nntp:// or nntps://",
        ),
        (
            ["download", "a.nzb", "--out", "dl", "--server", "nntp://h", "--connections", "0"],
            "argument --connections: '0': must be an integer from 1 to 100",
        ),
        (
            ["download", "a.nzb", "--out", "dl", "--server", "nntp://h", "--connections", "x"],
            "argument --connections: 'x': must be an integer from 1 to 100",
        ),
    ],
)
def test_download_usage_errors(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    fake = FakeDownload(monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "hunter22" not in err
    assert fake.calls == []


# --------------------------------------------------------------------------- --server URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nntp://news.example.com", ("news.example.com", 119, False, None, None)),
        ("nntps://news.example.com", ("news.example.com", 563, True, None, None)),
        ("nntps://News.Example.COM:443/", ("news.example.com", 443, True, None, None)),
        ("nntp://u:p@127.0.0.1:1119", ("127.0.0.1", 1119, False, "u", "p")),
        ("nntps://[::1]:5563", ("::1", 5563, True, None, None)),
        (
            "nntps://me%40example.com:p%3Ass%2Fw%25rd@news.example.com",
            ("news.example.com", 563, True, "me@example.com", "p:ss/w%rd"),
        ),
        ("nntps://alice:@news.example.com", ("news.example.com", 563, True, "alice", "")),
    ],
)
def test_parse_server_url(url: str, expected: tuple[object, ...]) -> None:
    server = parse_server_url(url)
    assert (server.host, server.port, server.tls, server.username, server.password) == expected
    assert server.name == server.host
    assert (server.connections, server.pipelining, server.timeout) == (8, 8, 30.0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("news.example.com", "'news.example.com': must start with nntp:// or nntps://"),
        ("https://news.example.com", "must start with nntp:// or nntps://"),
        ("nntps://", "'nntps://': has no host name"),
        ("nntps://:pw@", "has no host name"),
        ("nntps://h:0", "'nntps://h:0': the port must be a number from 1 to 65535"),
        ("nntps://h:70000", "the port must be a number from 1 to 65535"),
        ("nntps://h:port", "the port must be a number from 1 to 65535"),
        ("nntps://h/alt.binaries", "must be nntp[s]://[user:password@]host[:port] only"),
        ("nntps://h?connections=4", "must be nntp[s]://[user:password@]host[:port] only"),
        ("nntps://alice@h", "a user name needs a password (user:password@host)"),
        ("nntps://:hunter22@h", "a password needs a user name (user:password@host)"),
        ("nntps://bob:hunter22@h:99999", "'nntps://bob:******@h:99999': the port must be"),
    ],
)
def test_parse_server_url_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_server_url(url)
    assert message in str(caught.value)
    assert "hunter22" not in str(caught.value)


# --------------------------------------------------------------------------- logs


def test_logs_mask_secrets_in_messages_urls_and_tracebacks() -> None:
    stream = io.StringIO()
    setup_logging("debug", secrets=["s3cr3t+/key", "ab"], stream=stream)
    log = logging.getLogger("nntp.connection")
    log.info("login with %s", "s3cr3t+/key")
    log.debug("GET https://indexer/api?apikey=s3cr3t%2B%2Fkey&t=movie")
    log.debug("form body apikey=s3cr3t%2B%2Fkey")
    try:
        raise RuntimeError("server refused s3cr3t+/key")
    except RuntimeError:
        log.exception("failed")
    log.info("a tab is not a secret")
    text = stream.getvalue()
    assert "s3cr3t" not in text
    assert "login with ******" in text
    assert "apikey=******&t=movie" in text
    assert "RuntimeError: server refused ******" in text
    # Too short to mask without wrecking every line.
    assert "a tab is not a secret" in text


def test_logs_as_json_lines() -> None:
    stream = io.StringIO()
    setup_logging("info", json=True, secrets=["hunter22"], stream=stream)
    logging.getLogger("server.jobs.manager").warning("job %s failed: password hunter22", "job_1")
    logging.getLogger("server.jobs.manager").debug("not shown at info")
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "server.jobs.manager"
    assert entry["message"] == "job job_1 failed: password ******"


def test_setting_up_logging_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", stream=first)
    setup_logging("info", stream=second)
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


async def test_the_access_log_never_holds_a_media_token(tmp_path: Path) -> None:
    # A real request through aiohttp's access log, as `matinee serve` writes it.
    stream = io.StringIO()
    setup_logging("info", stream=stream)

    async def media(request: web.Request) -> web.Response:
        return web.Response(text="bytes")

    app = web.Application()
    app.router.add_get("/media/{job}/{name}", media)
    token = "1900000000.AbCdEfGhIjKlMnOpQrStUvWx"
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/media/job_1_0123abcd/movie.mkv?token={token}&x=1")
        assert resp.status == 200
    text = stream.getvalue()
    assert "GET /media/job_1_0123abcd/movie.mkv?token=******&x=1" in text
    assert "AbCdEf" not in text


def test_make_run_writes_a_private_config_and_the_server_a_private_data_dir(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    done = subprocess.run(
        ["make", "--no-print-directory", f"CONFIG={config}", str(config)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    assert config.read_text() == (ROOT / "config.example.toml").read_text()
    data = tmp_path / "data"
    load_or_create_secret(None, data)
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600


def test_under_journald_lines_carry_no_timestamp_of_their_own(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    code = (
        "import logging; from server.logs import setup_logging;"
        " setup_logging('info'); logging.getLogger('server.x').warning('job %s: disk full', 'j1')"
    )
    for journald in (True, False):
        with err.open("w") as out:
            st = os.fstat(out.fileno())
            env = {**os.environ}
            env.pop("JOURNAL_STREAM", None)
            if journald:  # what systemd sets when stderr is its journal stream
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            subprocess.run([sys.executable, "-c", code], stderr=out, env=env, cwd=ROOT, check=True)
        line = err.read_text().strip()
        if journald:
            assert line == "WARNING server.x: job j1: disk full"
        else:
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING server.x: job j1", line)


async def test_backup_copies_the_database_of_a_running_matinee(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    copy = tmp_path / "matinee-backup.sqlite3"
    assert await asyncio.to_thread(main, ["backup", str(copy), "--config", str(config)]) == 1
    assert "there is no database" in capsys.readouterr().err
    await asyncio.to_thread((tmp_path / "data").mkdir)
    async with store_context(tmp_path / "data" / "matinee.sqlite3") as store:  # in use
        await store.credentials.set_password("scrypt$whatever")
        status = await asyncio.to_thread(main, ["backup", str(copy), "--config", str(config)])
    assert status == 0 and f"to {copy}" in capsys.readouterr().out
    async with store_context(copy) as restored:
        assert (await restored.credentials.get()).password_hash == "scrypt$whatever"
