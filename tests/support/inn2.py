"""A private INN2 news server for tests and benchmarks, and a fast feeder that posts to it.

`Inn2Server(directory)` writes a complete INN2 tree into `directory` (every `path*` key of
its own inn.conf points there, so the system's /etc/news is never read and several
instances can coexist), then runs, as the `news` user:

* innd on a loopback port that accepts feeds (IHAVE / streaming TAKETHIS) from loopback,
* nnrpd on `port` (no authentication), on `auth_port` (AUTHINFO USER/PASS checked by
  ckpasswd) and on `tls_port` (implicit TLS with a fresh self-signed certificate, `cafile`).

Each daemon runs in its own process group and a small watchdog process kills those groups
if this process dies without stopping them (a hard timeout, a crash, SIGKILL).

`python -m tests.support.inn2 serve --dir DIR` runs one from the command line (for the
benchmarks, which may not import tests/): it prints one JSON line with the addresses and
credentials once every port answers, and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.support.yenc import Article, dot_stuff

NEWS_BIN = Path("/usr/lib/news/bin")
NEWS_USER = "news"
DEFAULT_GROUP = "alt.binaries.test"
LOOPBACK = "127.0.0.1"
DEFAULT_FROM = "matinee <poster@matinee.test>"
# The pathhost innd puts in Path; also what the feeder claims to come from.
PATH_HOST = "matinee-inn2.test.invalid"
START_TIMEOUT = 20.0
# Articles in flight per streaming connection: enough to keep innd busy while it answers,
# small enough that a failure is reported promptly and memory stays bounded (~750 KB each).
STREAM_WINDOW = 8


class Inn2Error(RuntimeError):
    """INN2 could not be set up, started, or refused an article or a command."""


def inn2_available() -> bool:
    """Whether Debian's inn2 is installed (the binaries the harness runs)."""
    return all((NEWS_BIN / b).is_file() for b in ("innd", "nnrpd", "ctlinnd", "makedbz"))


class Inn2Server:
    """A private INN2 instance living in one directory; see the module docstring."""

    host = LOOPBACK

    def __init__(
        self,
        directory: Path,
        *,
        group: str = DEFAULT_GROUP,
        username: str = "matinee",
        password: str | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.group = group
        self.username = username
        self.password = password if password is not None else secrets.token_hex(8)
        self.port = 0  # nnrpd, no authentication
        self.innd_port = 0  # innd: feeds (IHAVE / TAKETHIS) from loopback
        self.auth_port = 0  # nnrpd, AUTHINFO USER/PASS required
        self.tls_port = 0  # nnrpd, implicit TLS
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reaper: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- layout ---------------------------------------------------------------------------

    @property
    def etc(self) -> Path:
        return self.directory / "etc"

    @property
    def db(self) -> Path:
        return self.directory / "db"

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    @property
    def spool(self) -> Path:
        return self.directory / "spool"

    @property
    def inn_conf(self) -> Path:
        return self.etc / "inn.conf"

    @property
    def cafile(self) -> Path:
        """The self-signed certificate of `tls_port` (it is its own CA)."""
        return self.etc / "cert.pem"

    def info(self) -> dict[str, Any]:
        """What the command line prints: enough for a client in another process."""
        return {
            "host": self.host,
            "port": self.port,
            "innd_port": self.innd_port,
            "auth_port": self.auth_port,
            "tls_port": self.tls_port,
            "username": self.username,
            "password": self.password,
            "cafile": str(self.cafile),
        }

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> Inn2Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the tree, start innd and the nnrpds, return when all four ports greet."""
        if self._procs:
            raise Inn2Error("already started")
        if not inn2_available():
            raise Inn2Error(f"INN2 is not installed (no {NEWS_BIN}/innd): apt-get install inn2")
        self._check_user()
        # Unix sockets (control, nntpin) live in pathrun and sun_path holds 108 bytes.
        if len(str(self.run_dir / "nntpin.XXXXXXXX")) > 100:
            raise Inn2Error(f"directory path too long for INN2's Unix sockets: {self.directory}")
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        # A free port can be taken by someone else between our probe and the daemon's bind;
        # a start that fails on that is retried with fresh ports.
        for attempt in range(3):
            try:
                self._start_once()
                return
            except Inn2Error:
                self.stop()
                if attempt == 2 or not self._bind_failure():
                    raise

    def _start_once(self) -> None:
        self.port, self.innd_port, self.auth_port, self.tls_port = _free_ports(4)
        self._prepare_tree()
        self._start_reaper()
        self._spawn(
            "innd",
            # -d: stay in the foreground (our child, our process group) and write messages
            # to stdout (log/innd.out: there is often no syslog); -N: no filters;
            # -c 0 / -l 0 / -i 0: no article age, size or connection-count limits.
            [str(NEWS_BIN / "innd"), "-d", "-N", "-c", "0", "-l", "0", "-i", "0"],
        )
        self._await_greeting("innd", self.innd_port)
        active = (self.db / "active").read_text().split("\n")
        if not any(line.split(" ", 1)[0] == self.group for line in active):
            self.create_group(self.group)  # a reused directory made for another group
        readers = self.etc / "readers.conf"
        auth_readers = self.etc / "readers-auth.conf"
        for name, port, conf, tls in (
            ("nnrpd", self.port, readers, False),
            ("nnrpd-auth", self.auth_port, auth_readers, False),
            ("nnrpd-tls", self.tls_port, readers, True),
        ):
            # -D -f: a listening daemon in the foreground, one child per connection;
            # -n: no reverse DNS for the loopback peer.
            args = [str(NEWS_BIN / "nnrpd"), "-D", "-f", "-n", "-b", LOOPBACK]
            args += ["-p", str(port), "-c", str(conf)] + (["-S"] if tls else [])
            self._spawn(name, args)
        self._await_greeting("nnrpd", self.port)
        self._await_greeting("nnrpd-auth", self.auth_port)
        self._await_greeting("nnrpd-tls", self.tls_port, tls=True)

    def stop(self) -> None:
        """Stop every daemon (connection children first) and the watchdog. Idempotent."""
        # Readers first, innd last: innd's clean shutdown writes active and history.
        for name in sorted(self._procs, key=lambda n: n == "innd"):
            proc = self._procs.pop(name)
            if name == "innd" and proc.poll() is None:
                # innd acts on SIGTERM only when its main loop next wakes up (seconds to
                # minutes when idle); ctlinnd shutdown is immediate and just as clean.
                with contextlib.suppress(Inn2Error, subprocess.TimeoutExpired):
                    self.ctlinnd("shutdown", "matinee harness stopping")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            _stop_group(proc)
            if self._reaper is not None and self._reaper.stdin is not None:
                with contextlib.suppress(OSError):
                    self._reaper.stdin.write(f"-{proc.pid}\n".encode())
                    self._reaper.stdin.flush()
        if self._reaper is not None:
            reaper, self._reaper = self._reaper, None
            if reaper.stdin is not None:
                with contextlib.suppress(OSError):
                    reaper.stdin.close()
            try:
                reaper.wait(10)
            except subprocess.TimeoutExpired:
                reaper.kill()
                reaper.wait()

    # -- groups, cancel, posting ----------------------------------------------------------

    def ctlinnd(self, *args: str) -> str:
        """Run ctlinnd against this instance (as news, with its INNCONF); its output."""
        res = self._run([str(NEWS_BIN / "ctlinnd"), "-t", "30", *args], check=False, timeout=40)
        out = (res.stdout + res.stderr).decode(errors="replace").strip()
        if res.returncode != 0:
            raise Inn2Error(f"ctlinnd {' '.join(args)} failed ({res.returncode}): {out}")
        return out

    def create_group(self, name: str) -> None:
        """Create a newsgroup (status y: posting allowed). Existing groups are left alone."""
        self.ctlinnd("newgroup", name, "y", "matinee")

    def cancel(self, message_id: str) -> None:
        """Remove an article so that every reader answers 430 for it from now on."""
        self.ctlinnd("cancel", _bracket(message_id))

    def flush(self) -> None:
        """Write innd's history and active file to disk (`ctlinnd flush ''`)."""
        self.ctlinnd("flush", "")

    async def post(
        self,
        articles: Iterable[Article],
        group: str = DEFAULT_GROUP,
        connections: int = 4,
    ) -> None:
        """Feed articles straight to innd (streaming TAKETHIS); readable when this returns.

        Streams: `articles` may be a generator over a multi-GB file (yenc.iter_articles).
        Raises Inn2Error on the first article innd does not accept (OSError when a
        connection fails); articles already accepted stay posted.
        """
        last = await feed(self.host, self.innd_port, articles, group=group, connections=connections)
        if last is None:
            return
        # Accepted articles have been visible to nnrpd at once in every measurement; the
        # flush (history and active to disk) and the STAT below make that certain.
        await asyncio.to_thread(self.flush)
        await self._await_visible(last)

    async def _await_visible(self, message_id: str) -> None:
        conn = await _Conn.open(self.host, self.port)
        try:
            await conn.expect({200, 201}, "nnrpd greeting")
            for _ in range(100):
                await conn.send(f"STAT {_bracket(message_id)}\r\n".encode())
                line = await conn.readline()
                if line.startswith(b"223"):
                    await conn.quit()
                    return
                if not line.startswith(b"430"):
                    raise Inn2Error(f"STAT after posting: {_show(line)}")
                await asyncio.sleep(0.05)
            raise Inn2Error(f"posted article {message_id} is not visible through nnrpd")
        finally:
            conn.close()

    # -- internals ------------------------------------------------------------------------

    def _check_user(self) -> None:
        try:
            pwd.getpwnam(NEWS_USER)
        except KeyError:
            raise Inn2Error("no `news` user: is inn2 installed?") from None
        if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != NEWS_USER:
            raise Inn2Error("INN2 daemons run as `news`: run the tests as root or as news")

    def _news_ids(self) -> tuple[int, int]:
        pw = pwd.getpwnam(NEWS_USER)
        return pw.pw_uid, pw.pw_gid

    def _as_news(self) -> dict[str, Any]:
        """Popen keywords that drop to news (when we are root) with this instance's env."""
        env = {
            "INNCONF": str(self.inn_conf),
            "PATH": f"{NEWS_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.directory),
            "LANG": "C",
            "TMPDIR": str(self.spool / "incoming" / "tmp"),
        }
        kw: dict[str, Any] = {"env": env, "cwd": str(self.directory)}
        if os.geteuid() == 0:
            uid, gid = self._news_ids()
            kw.update(user=uid, group=gid, extra_groups=[])
        return kw

    def _run(
        self, args: list[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        res = subprocess.run(
            args, capture_output=True, check=False, timeout=timeout, **self._as_news()
        )
        if check and res.returncode != 0:
            out = (res.stdout + res.stderr).decode(errors="replace").strip()
            raise Inn2Error(f"{' '.join(args)} failed ({res.returncode}): {out}")
        return res

    def _prepare_tree(self) -> None:
        d = self.directory
        for sub in (
            "etc",
            "etc/filter",
            "db",
            "run",
            "log",
            "http",
            "spool/articles",
            "spool/overview",
            "spool/outgoing",
            "spool/incoming/tmp",
            "spool/archive",
        ):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # Leftovers of an earlier run (pid files, sockets) would stop innd from starting.
        for p in self.run_dir.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        self._write_configs()
        if not self.cafile.exists():
            self._make_certificate()
        fresh_db = not (self.db / "active").exists()
        if fresh_db:
            self._write_db()
        uid, gid = self._news_ids()
        for root, dirs, files in os.walk(d):
            os.chown(root, uid, gid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, gid)
        _make_traversable(d, uid)
        if fresh_db:
            # An empty history database; makedbz finds pathdb through INNCONF.
            self._run([str(NEWS_BIN / "makedbz"), "-i", "-o", "-s", "100000"])

    def _write_configs(self) -> None:
        d = self.directory
        spool = self.spool
        settings: dict[str, str | int] = {
            # Identity: set here because the system inn.conf may lack `domain:` and the
            # host name may have no domain part, which stops innd and nnrpd from starting.
            "domain": "test.invalid",
            "fromhost": "test.invalid",
            "pathhost": PATH_HOST,
            "server": LOOPBACK,
            "organization": '"Matinee test server"',
            "mta": '"/usr/sbin/sendmail -oi -oem %s"',
            "mailcmd": str(NEWS_BIN / "innmail"),
            # Where everything lives: all inside the directory, owned by news.
            "pathnews": "/usr/lib/news",
            "pathbin": str(NEWS_BIN),
            "pathcontrol": str(NEWS_BIN / "control"),
            "pathfilter": str(self.etc / "filter"),
            "pathetc": str(self.etc),
            "pathdb": str(self.db),
            "pathrun": str(self.run_dir),
            "pathlog": str(self.log_dir),
            "pathhttp": str(d / "http"),
            "pathspool": str(spool),
            "patharticles": str(spool / "articles"),
            "pathoverview": str(spool / "overview"),
            "pathoutgoing": str(spool / "outgoing"),
            "pathincoming": str(spool / "incoming"),
            "pathtmp": str(spool / "incoming" / "tmp"),
            "patharchive": str(spool / "archive"),
            # Storage: one file per article, overview for GROUP/OVER, wire format so that
            # nnrpd serves articles straight from the file.
            "ovmethod": "tradindexed",
            "hismethod": "hisv6",
            "enableoverview": "true",
            "wireformat": "true",
            "storeonxref": "true",
            "articlemmap": "true",
            # Ports: innd on its own loopback port; readers are separate nnrpd daemons.
            "port": self.innd_port,
            "bindaddress": LOOPBACK,
            "nnrpdpostport": self.innd_port,
            "noreader": "true",
            "readerswhenstopped": "false",
            # Nothing that refuses or throttles a flood of large test articles.
            "maxartsize": 0,
            "localmaxartsize": 0,
            "artcutoff": 0,
            "maxconnections": 0,
            "nnrpdloadlimit": 0,
            "backoffauth": "false",
            "backoffpostfast": 0,
            "backoffpostslow": 1,
            "backofftrigger": 10000,
            "clienttimeout": 1800,
            "peertimeout": 3600,
            "initialtimeout": 60,
            "wipcheck": 5,
            "wipexpire": 10,
            "hiscachesize": 256,
            "icdsynccount": 10,
            "pgpverify": "false",
            "nicekids": 0,
            "maxlisten": 128,
            # No periodic chores or chatty logs.
            "doinnwatch": "false",
            "docnfsstat": "false",
            "status": 0,
            "timer": 0,
            "logartsize": "false",
            "logipaddr": "false",
            "logsitename": "false",
            "logtrash": "true",  # log/innd.out tells why an article was refused (buffered)
            "nnrpdoverstats": "false",
            "readertrack": "false",
            "keywords": "false",
            "addinjectiondate": "true",
            "addinjectionpostinghost": "false",
            # Implicit TLS for the nnrpd started with -S.
            "tlscapath": str(self.etc),
            "tlscertfile": str(self.cafile),
            "tlskeyfile": str(self.etc / "key.pem"),
        }
        conf = "".join(f"{k}: {v}\n" for k, v in settings.items())
        (self.etc / "inn.conf").write_text("# Written by tests/support/inn2.py\n" + conf)
        (self.etc / "newsfeeds").write_text("ME:*::\n")
        (self.etc / "incoming.conf").write_text(
            "streaming: true\n"
            "max-connections: 0\n"
            # Addresses, not names: nothing here should wait for a resolver.
            'peer ME {\n  hostname: "127.0.0.1, ::1"\n}\n'
        )
        (self.etc / "storage.conf").write_text(
            "method tradspool {\n  newsgroups: *\n  class: 0\n}\n"
        )
        (self.etc / "expire.ctl").write_text("/remember/:11\n*:A:never:never:never\n")
        (self.etc / "readers.conf").write_text(
            'auth "loopback" {\n  hosts: "127.0.0.1, ::1"\n'
            '  default: "<loopback>"\n}\n'
            'access "loopback" {\n  users: "<loopback>"\n  newsgroups: "*"\n'
            "  access: RPA\n}\n"
        )
        passwd = self.etc / "passwd"
        (self.etc / "readers-auth.conf").write_text(
            # No `default:` identity: every command but AUTHINFO gets 480 until it succeeds.
            f'auth "password" {{\n  hosts: "*"\n  auth: "ckpasswd -f {passwd}"\n}}\n'
            'access "password" {\n  users: "*"\n  newsgroups: "*"\n  access: RPA\n}\n'
        )
        passwd.write_text(f"{self.username}:{_crypt(self.password)}\n")
        passwd.chmod(0o600)
        for name in ("moderators", "distrib.pats", "subscriptions", "passwd.nntp"):
            (self.etc / name).touch()

    def _write_db(self) -> None:
        groups = ["control", "control.cancel", "control.newgroup", "junk", self.group]
        active = "".join(
            f"{g} 0000000000 0000000001 {'n' if g.startswith('control') or g == 'junk' else 'y'}\n"
            for g in dict.fromkeys(groups)
        )
        (self.db / "active").write_text(active)
        (self.db / "active.times").write_text("")
        (self.db / "newsgroups").write_text("".join(f"{g}\t{g}\n" for g in dict.fromkeys(groups)))
        (self.db / "history").write_text("")

    def _make_certificate(self) -> None:
        key = self.etc / "key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(self.cafile),
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
                "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
                "-addext", "extendedKeyUsage=serverAuth",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
        self.cafile.chmod(0o644)

    def _start_reaper(self) -> None:
        if self._reaper is not None:
            return
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        out = (self.log_dir / f"{name}.out").open("ab")
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own process group: stop() and the watchdog kill the daemon together with
                # its per-connection children; Ctrl-C on the terminal does not reach it.
                start_new_session=True,
                **self._as_news(),
            )
        finally:
            out.close()
        self._procs[name] = proc
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.write(f"+{proc.pid}\n".encode())
            self._reaper.stdin.flush()

    def _await_greeting(self, name: str, port: int, *, tls: bool = False) -> None:
        """Readiness: connect and read the 200 greeting (retrying while nothing listens)."""
        proc = self._procs[name]
        ctx = ssl.create_default_context(cafile=str(self.cafile)) if tls else None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise Inn2Error(f"{name} exited with status {proc.returncode}\n{self.logs()}")
            try:
                greeting = _greet(port, ctx)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise Inn2Error(f"{name} not answering on {port}: {e}\n{self.logs()}") from e
                time.sleep(0.02)
                continue
            if not greeting.startswith((b"200", b"201")):
                raise Inn2Error(f"{name} on {port} greeted {greeting!r}\n{self.logs()}")
            return

    def logs(self) -> str:
        """The tail of every log file, for error messages."""
        parts = []
        for p in sorted(self.log_dir.glob("*")):
            if p.is_file() and p.stat().st_size:
                text = p.read_bytes()[-2000:].decode(errors="replace")
                parts.append(f"--- {p.name}\n{text}")
        return "\n".join(parts) or "(no log output)"

    def _bind_failure(self) -> bool:
        text = self.logs().lower()
        return "address already in use" in text or "cant bind" in text or "can't bind" in text


# -- feeding innd -------------------------------------------------------------------------


class WireArticle(NamedTuple):
    """An article ready to send: `head` is the header block with the blank line, `body` the
    dot-stuffed body without the terminating dot line (sent separately, so never copied)."""

    message_id: str
    head: bytes
    body: bytes


_END = b"\r\n.\r\n"
# innd answers a refused TAKETHIS without a reason (its log has it, written much later).
_REFUSED = " (a message-id it already has, a newsgroup it does not carry, or a bad article)"


def article_headers(
    article: Article, group: str, *, from_: str = DEFAULT_FROM, path: bool = True
) -> bytes:
    """The header block (with the blank line) of a posted yEnc article."""
    headers = [
        f"From: {from_}",
        f"Newsgroups: {group}",
        f"Subject: {article.subject}",
        f"Message-ID: {_bracket(article.message_id)}",
        f"Date: {format_datetime(datetime.now(UTC), usegmt=True)}",
    ]
    if path:
        # A feed must carry Path; innd prepends its own pathhost. (nnrpd writes its own.)
        headers.insert(0, "Path: matinee.test!not-for-mail")
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


def wire_article(article: Article, group: str, *, path: bool = True) -> WireArticle:
    # sabctools escapes a leading dot itself, so dot_stuff almost never has to copy.
    return WireArticle(
        article.message_id, article_headers(article, group, path=path), dot_stuff(article.body)
    )


async def feed(
    host: str,
    port: int,
    articles: Iterable[Article],
    *,
    group: str = DEFAULT_GROUP,
    connections: int = 4,
    on_article: Callable[[Article], None] | None = None,
) -> str | None:
    """Feed articles to innd over `connections` streaming connections (TAKETHIS).

    Articles are produced (read, yEnc-encoded) in a worker thread while the event loop
    sends, so a multi-GB file is streamed rather than held. Falls back to IHAVE when the
    server does not stream. `on_article` sees each article as it is produced (in that
    thread). Returns the message-id of the last article, or None when there was none.
    """
    return await _Pipeline(
        articles, group, connections, on_article, lambda q: _feed_connection(host, port, q)
    ).run()


async def post_via_reader(
    host: str,
    port: int,
    articles: Iterable[Article],
    *,
    group: str = DEFAULT_GROUP,
    connections: int = 4,
    on_article: Callable[[Article], None] | None = None,
) -> str | None:
    """POST articles through a reader server (nnrpd), one at a time per connection.

    Slower than `feed` (nnrpd relays each article to innd), but needs only a reader port.
    """
    return await _Pipeline(
        articles,
        group,
        connections,
        on_article,
        lambda q: _post_connection(host, port, q),
        path=False,
    ).run()


_Item = WireArticle | None


class _Pipeline:
    """One producer thread building wire articles, N connection coroutines sending them."""

    def __init__(
        self,
        articles: Iterable[Article],
        group: str,
        connections: int,
        on_article: Callable[[Article], None] | None,
        worker: Callable[[asyncio.Queue[_Item]], Coroutine[Any, Any, None]],
        *,
        path: bool = True,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.articles = articles
        self.group = group
        self.connections = connections
        self.on_article = on_article
        self.worker = worker
        self.path = path

    def _produce(self, it: Iterator[Article], n: int) -> list[WireArticle]:
        """Up to n wire articles (runs in a thread: file reads and yEnc release the GIL)."""
        out = []
        for article in it:
            if self.on_article is not None:
                self.on_article(article)
            out.append(wire_article(article, self.group, path=self.path))
            if len(out) >= n:
                break
        return out

    async def run(self) -> str | None:
        # Bounded: at most ~2 queued articles per connection plus each one's window.
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=2 * self.connections)
        it = iter(self.articles)
        last: str | None = None
        workers = [asyncio.create_task(self.worker(queue)) for _ in range(self.connections)]
        try:
            while batch := await asyncio.to_thread(self._produce, it, 4):
                for item in batch:
                    await _put(queue, item, workers)
                    last = item.message_id
            for _ in workers:
                await _put(queue, None, workers)
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            # Report a connection's error (the cause) rather than the put that noticed it.
            for r in await asyncio.gather(*workers, return_exceptions=True):
                if isinstance(r, Exception):
                    raise r from None
            raise
        return last


async def _put(queue: asyncio.Queue[_Item], item: _Item, workers: list[asyncio.Task[None]]) -> None:
    """queue.put that gives up when a connection has failed (it would never take)."""
    while True:
        for w in workers:
            if w.done() and (w.cancelled() or w.exception() is not None):
                raise Inn2Error("a posting connection failed")
        try:
            await asyncio.wait_for(queue.put(item), 0.5)
            return
        except TimeoutError:
            continue


class _Conn:
    """An NNTP client connection on a raw non-blocking socket.

    loop.sock_sendall sends a 700 KB body from the bytes object itself, where a
    StreamWriter copies whatever the kernel does not take at once into its buffer.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        loop = asyncio.get_running_loop()
        error: OSError = OSError(f"cannot resolve {host}")
        for family, kind, proto, _, addr in await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as e:
                sock.close()
                error = e
                continue
            # Commands and dot lines are tiny separate sends: no Nagle delay on them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return cls(sock)
        raise error

    async def readline(self) -> bytes:
        """One response line; b"" when the server closed the connection."""
        while (i := self.buf.find(b"\n")) < 0:
            data = await self.loop.sock_recv(self.sock, 65536)
            if not data:
                line = bytes(self.buf)
                self.buf.clear()
                return line
            self.buf += data
        line = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return line

    async def send(self, *parts: bytes) -> None:
        for part in parts:
            await self.loop.sock_sendall(self.sock, part)

    async def expect(self, codes: set[int], what: str) -> bytes:
        line = await self.readline()
        code = int(line[:3]) if line[:3].isdigit() else -1
        if code not in codes:
            raise Inn2Error(f"{what}: expected {sorted(codes)}, got {_show(line)}")
        return line

    async def quit(self) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            await self.send(b"QUIT\r\n")
            await asyncio.wait_for(self.readline(), 5)

    def close(self) -> None:
        self.sock.close()


async def _feed_connection(host: str, port: int, queue: asyncio.Queue[_Item]) -> None:
    conn = await _Conn.open(host, port)
    try:
        await conn.expect({200}, f"innd greeting on {host}:{port}")
        await conn.send(b"MODE STREAM\r\n")
        if (await conn.readline()).startswith(b"203"):
            await _stream(conn, queue)
        else:
            await _ihave(conn, queue)
        await conn.quit()
    finally:
        conn.close()


async def _stream(conn: _Conn, queue: asyncio.Queue[_Item]) -> None:
    """TAKETHIS without waiting: answers (239 / 439) come back in order on a reader task."""
    inflight: asyncio.Queue[str | None] = asyncio.Queue()
    window = asyncio.Semaphore(STREAM_WINDOW)

    async def answers() -> None:
        while (mid := await inflight.get()) is not None:
            line = await conn.readline()
            if not line.startswith(b"239"):
                raise Inn2Error(f"TAKETHIS <{mid}> refused: {_show(line)}{_REFUSED}")
            window.release()

    answer_task = asyncio.create_task(answers())
    try:
        while (item := await queue.get()) is not None:
            await _acquire(window, answer_task)
            inflight.put_nowait(item.message_id)
            command = f"TAKETHIS {_bracket(item.message_id)}\r\n".encode()
            try:
                await conn.send(command + item.head, item.body, _END)
            except OSError:
                # innd hung up: its last answer (read by answer_task) says why.
                await asyncio.wait({answer_task}, timeout=2)
                if answer_task.done() and answer_task.exception() is not None:
                    answer_task.result()
                raise
        inflight.put_nowait(None)
        await answer_task
    finally:
        if not answer_task.done():
            answer_task.cancel()
        # Also collects an error nobody else will read (the writer failed first).
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await answer_task


async def _acquire(window: asyncio.Semaphore, answer_task: asyncio.Task[None]) -> None:
    """Wait for a window slot, failing fast when the answer reader has failed."""
    if not answer_task.done() and not window.locked():
        await window.acquire()
        return
    acquire = asyncio.ensure_future(window.acquire())
    try:
        await asyncio.wait({acquire, answer_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not acquire.done():
            acquire.cancel()
    if not answer_task.done():
        return
    answer_task.result()  # raises the reader's error
    raise Inn2Error("innd stopped answering")


async def _ihave(conn: _Conn, queue: asyncio.Queue[_Item]) -> None:
    while (item := await queue.get()) is not None:
        mid = _bracket(item.message_id)
        await conn.send(f"IHAVE {mid}\r\n".encode())
        await conn.expect({335}, f"IHAVE {mid}")
        await conn.send(item.head, item.body, _END)
        await conn.expect({235}, f"IHAVE {mid} transfer")


async def _post_connection(host: str, port: int, queue: asyncio.Queue[_Item]) -> None:
    conn = await _Conn.open(host, port)
    try:
        await conn.expect({200}, f"greeting on {host}:{port} (200: posting allowed)")
        while (item := await queue.get()) is not None:
            mid = _bracket(item.message_id)
            await conn.send(b"POST\r\n")
            await conn.expect({340}, f"POST {mid}")
            await conn.send(item.head, item.body, _END)
            await conn.expect({240}, f"POST {mid} transfer")
        await conn.quit()
    finally:
        conn.close()


# -- helpers ------------------------------------------------------------------------------


def _bracket(message_id: str) -> str:
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _show(line: bytes) -> str:
    return repr(line.rstrip(b"\r\n")) if line else "connection closed"


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _greet(port: int, ctx: ssl.SSLContext | None) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as raw:
        sock: socket.socket = raw
        if ctx is not None:
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
        with sock, sock.makefile("rb") as f:
            line = f.readline()
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
                f.readline()
            return line


def _crypt(password: str) -> str:
    """A crypt(3) SHA-512 hash for ckpasswd (the stdlib crypt module is deprecated)."""
    res = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password.encode(),
        capture_output=True,
        check=True,
    )
    return res.stdout.decode().strip()


def _make_traversable(directory: Path, news_uid: int) -> None:
    """Let news reach `directory`: add search permission (only) to ancestors lacking it.

    pytest's tmp dirs sit under /tmp/pytest-of-root, which is mode 0700.
    """
    for parent in directory.parents:
        st = parent.stat()
        if st.st_uid != news_uid and not st.st_mode & 0o001:
            parent.chmod(st.st_mode | 0o001)


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of the processes in a process group, read from /proc."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid:
            out.append((int(entry.name), fields[0].decode()))
    return out


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon and its process group: children first, so the daemon reaps them."""
    pgid = proc.pid
    children = [pid for pid, state in _group_members(pgid) if pid != pgid and state != "Z"]
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(
        pid != pgid and state != "Z" for pid, state in _group_members(pgid)
    ):
        time.sleep(0.01)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Anything left (a child that ignored SIGTERM) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# Watchdog: reads "+pgid" / "-pgid" lines; on EOF (this process died or stopped) it kills
# the process groups still registered. Started in its own session so Ctrl-C spares it.
_REAPER = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in list(groups):
        try:
            os.killpg(g, sig)
        except ProcessLookupError:
            groups.discard(g)
    if groups and sig == signal.SIGTERM:
        time.sleep(3)
"""


def _missing_inn2() -> None:
    # On CI a missing peer is a broken install, not a reason to pass quietly.
    if os.environ.get("CI"):
        pytest.fail("INN2 is not installed: .ci/system-deps.sh should have installed it")
    pytest.skip("INN2 is not installed (make system-deps)")


# -- pytest fixture -----------------------------------------------------------------------


def private_dir(prefix: str = "matinee-inn2-") -> Path:
    """A fresh directory for a server, under the system temp dir.

    Not under pytest's basetemp: /tmp/pytest-of-root is mode 0700 and every pytest start
    (another session, another engineer) resets it to 0700, which cuts the news user off
    from a server that is running in there.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def inn2() -> Iterator[Inn2Server]:
    """A started private INN2, shared by the session; post with unique message-ids."""
    if not inn2_available():
        _missing_inn2()
    directory = private_dir()
    server = Inn2Server(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def inn2_dir() -> Iterator[Path]:
    """An empty directory for a test's own Inn2Server (removed afterwards)."""
    if not inn2_available():
        _missing_inn2()
    directory = private_dir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.inn2", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a private INN2 until SIGTERM/SIGINT")
    serve.add_argument("--dir", type=Path, required=True, help="directory for the INN2 tree")
    serve.add_argument("--group", default=DEFAULT_GROUP)
    serve.add_argument("--username", default="matinee")
    serve.add_argument("--password", default=None)
    args = parser.parse_args(argv)

    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = Inn2Server(args.dir, group=args.group, username=args.username, password=args.password)
    try:
        server.start()
        print(json.dumps(server.info()), flush=True)
        while not stop["signal"]:
            time.sleep(0.2)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
