"""The `matinee` command: parse arguments, load the configuration, set up logging, and hand
over to the web server or the download engine. No logic of its own beyond that."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import os
import sqlite3
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from server.config.describe import describe, secret_values
from server.config.load import (
    load_config,
    parse_server_url,
    resolve_config_path,
)
from server.config.settings import LoggingConfig, UsenetServerConfig
from server.errors import ConfigError, StoreError
from server.logs import LEVELS, setup_logging

#: Exit status for a bad command line or configuration, as argparse uses for usage errors.
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; return the status instead
        # so that callers (and tests) get an int like every other outcome.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = args.command or "serve"
    try:
        if command == "check-config":
            return _check_config(args)
        if command == "download":
            return _download(args)
        if command == "backup":
            return _backup(args)
        if command == "doctor":
            return _doctor(args)
        if command == "set-password":
            return _set_password(args)
        return _serve(args)
    except ConfigError as exc:
        print(f"matinee: invalid configuration ({_config_label(args)}):", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    # Options shared by every subcommand. SUPPRESS as the default keeps a subcommand's
    # parser from overwriting a value given before the subcommand name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="log messages at this level and above (default: info)",
    )
    common.add_argument(
        "--log-json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log one JSON object per line",
    )
    config_help = (
        "the TOML configuration file (default: $MATINEE_CONFIG, else ./config.toml if it "
        "exists, else built-in defaults)"
    )

    parser = argparse.ArgumentParser(
        prog="matinee",
        parents=[common],
        description="Self-hosted movies on demand. Without a command, runs `serve`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the web server (default)")
    serve.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )

    check = commands.add_parser(
        "check-config", parents=[common], help="validate the configuration and show it"
    )
    check.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )

    doctor = commands.add_parser(
        "doctor",
        parents=[common],
        help="check the configuration, the programs Matinee runs and every service it uses",
        description="Checks what a new installation most often gets wrong: the "
        "configuration, ffmpeg, ffprobe, par2 and unar, free disk space, each Usenet server "
        "(connect, TLS, login, STAT), each indexer, and TMDB; prints what to fix. Exit "
        "status 1 when something must be fixed.",
    )
    doctor.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )

    backup = commands.add_parser(
        "backup",
        parents=[common],
        help="copy Matinee's database to FILE, safely while it runs",
        description="A consistent copy of the database (jobs, history, password, sessions) "
        "made with SQLite's online backup, while Matinee runs or not. To restore: stop "
        "Matinee and put the copy in place of matinee.sqlite3 in the data_dir.",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy")
    backup.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )

    set_password = commands.add_parser(
        "set-password",
        parents=[common],
        help="set the web UI password (its scrypt hash, in Matinee's database)",
        description="Ask for the web UI password twice and store its scrypt hash in "
        "Matinee's database (in the data_dir the configuration names). A running Matinee "
        "uses it at once; every browser has to log in again.",
    )
    set_password.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )
    set_password.add_argument(
        "--stdin", action="store_true", help="read the password from one line of standard input"
    )

    download = commands.add_parser(
        "download",
        parents=[common],
        help="download one NZB with the Usenet engine alone (no web server)",
        description="Download the files of one NZB into DIR, for scripts and benchmarks.",
    )
    download.add_argument("nzb", type=Path, metavar="NZB", help="the .nzb file")
    download.add_argument(
        "--out", type=Path, metavar="DIR", required=True, help="directory to write into"
    )
    source = download.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="take the Usenet servers from this configuration file",
    )
    source.add_argument(
        "--server",
        type=_server_argument,
        metavar="URL",
        help="nntp[s]://user:password@host:port instead of the configured servers",
    )
    download.add_argument(
        "--connections",
        type=_connections_argument,
        metavar="N",
        help="connections to open (1-100)",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = load_config(_config_path(args))
    _setup_logging(args, secret_values(settings), settings.logging)
    # Imported here so that check-config and download do not load the web stack.
    from server.app import create_app
    from server.cli.serve import serve

    app = create_app(settings)
    asyncio.run(serve(app, settings.server.host, settings.server.port))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    path = _config_path(args)
    settings = load_config(path)
    resolved = resolve_config_path(path)
    print(f"config file: {resolved}" if resolved else "config file: none, using the defaults")
    for line in describe(settings):
        print(line)
    print("Configuration OK")
    return 0


def _download(args: argparse.Namespace) -> int:
    """The engine alone: the servers from --server or from the configuration, typed into a
    DownloadRequest (the namespace stops here)."""
    if args.server is not None and "config" in args:
        # Only reachable as `matinee --config FILE download --server URL`; the download
        # parser itself rejects the pair.
        print("matinee download: give either --config or --server, not both", file=sys.stderr)
        return EXIT_USAGE
    args.config = getattr(args, "config", None)
    if args.server is not None:
        servers: tuple[UsenetServerConfig, ...] = (args.server,)
        secrets = [args.server.password] if args.server.password else []
    else:
        settings = load_config(args.config)
        servers = settings.usenet.servers
        if not servers:
            print(
                f"matinee download: no Usenet server in {_config_label(args)}; "
                "give --server nntps://user:password@host or add [[usenet.servers]]",
                file=sys.stderr,
            )
            return EXIT_USAGE
        secrets = secret_values(settings)
    if args.connections is not None:
        servers = tuple(dataclasses.replace(s, connections=args.connections) for s in servers)
    _setup_logging(args, secrets)
    from server.cli.download import DownloadRequest, run_download

    return run_download(DownloadRequest(Path(args.nzb), Path(args.out), servers))


def _doctor(args: argparse.Namespace) -> int:
    try:
        settings = load_config(_config_path(args))
    except ConfigError as exc:
        print(f"[FAIL] configuration ({_config_label(args)}):", file=sys.stderr)
        for line in exc.errors:
            print(f"       {line}", file=sys.stderr)
        return EXIT_USAGE
    print(f"[ ok ] configuration: {_config_label(args)} loads")
    # The report is the output; log lines (its scratch cache's set-up) only when asked for.
    quiet = dataclasses.replace(settings.logging, level="warning")
    _setup_logging(args, secret_values(settings), quiet)
    from server.cli.doctor import run_doctor

    return run_doctor(settings)


def _backup(args: argparse.Namespace) -> int:
    from server.store.db import FILE_NAME, backup

    settings = load_config(_config_path(args))
    source = settings.server.data_dir / FILE_NAME
    if not source.is_file():
        print(f"matinee backup: there is no database at {source}", file=sys.stderr)
        return 1
    try:
        asyncio.run(backup(source, Path(args.file)))
    except (OSError, sqlite3.Error) as exc:
        print(f"matinee backup: cannot copy {source} to {args.file}: {exc}", file=sys.stderr)
        return 1
    print(f"Copied {source} to {args.file}.")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    # Imported here so that the other commands do not load the web stack.
    from server.http.passwords import MAX_PASSWORD, MIN_PASSWORD, hash_password
    from server.store.db import FILE_NAME

    settings = load_config(_config_path(args))
    try:
        if args.stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("New web UI password: ")
            if getpass.getpass("The same again: ") != password:
                message = "the passwords differ; nothing changed"
                print(f"matinee set-password: {message}", file=sys.stderr)
                return 1
    except (EOFError, KeyboardInterrupt):
        print("\nmatinee set-password: no password given; nothing changed", file=sys.stderr)
        return 1
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        print(
            f"matinee set-password: the password must be at least {MIN_PASSWORD} characters"
            f" (and at most {MAX_PASSWORD}); nothing changed",
            file=sys.stderr,
        )
        return 1
    path = settings.server.data_dir / FILE_NAME
    try:
        asyncio.run(_store_password(path, hash_password(password)))
    except (OSError, StoreError) as exc:
        print(f"matinee set-password: cannot store it in {path}: {exc}", file=sys.stderr)
        return 1
    print(f"The password is set (in {path}). Matinee uses it at once;")
    print("every browser has to log in again.")
    return 0


async def _store_password(path: Path, encoded: str) -> None:
    from server.store.db import store_context

    await asyncio.to_thread(path.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
    async with store_context(path) as store:
        await store.credentials.set_password(encoded)


# --------------------------------------------------------------------------- helpers


def _config_path(args: argparse.Namespace) -> Path | None:
    path: Path | None = getattr(args, "config", None)
    return path


def _config_label(args: argparse.Namespace) -> str:
    path = resolve_config_path(_config_path(args), os.environ)
    return str(path) if path else "no config file"


def _setup_logging(
    args: argparse.Namespace, secrets: list[str], configured: LoggingConfig | None = None
) -> None:
    """The command line's --log-level and --log-json win over [logging] of the config."""
    configured = configured or LoggingConfig()
    setup_logging(
        getattr(args, "log_level", configured.level),
        json=getattr(args, "log_json", configured.format == "json"),
        secrets=secrets,
    )


def _server_argument(value: str) -> UsenetServerConfig:
    try:
        return parse_server_url(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _connections_argument(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError(f"{value!r}: must be an integer from 1 to 100")
    return number


def _version() -> str:
    try:
        return version("matinee")
    except PackageNotFoundError:
        return "(not installed)"


if __name__ == "__main__":
    sys.exit(main())
