"""``make demo``: the whole of Matinee on this machine, with no accounts anywhere.

    python -m tests.support.demo [--port 8080] [--seconds 90] [--rate KBPS]

Everything runs on loopback in this one process, until Ctrl-C:

* the stand-in TMDB of the tests (`tests.support.fake_tmdb`: a handful of films, posters);
* a stand-in newznab indexer listing two releases for every one of those films, all pointing
  at one NZB of a short film generated here with ffmpeg (H.264/AAC MP4, moov at the end as
  most releases have it);
* a stand-in Usenet server holding that film as yEnc articles, throttled to about twice the
  film's bit rate, so that "Play now" lights up and playback starts well before the download
  has finished;
* Matinee itself, created with ``MATINEE_DEMO=1`` (every page says it shows demo data), a
  fresh data directory in a temporary folder (deleted at exit) and the password ``demo``.

Tests use the same pieces in-process: ``async with run_demo(port=0) as demo: ...``.
The stand-ins live with the tests; nothing here is part of the shipped packages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import secrets
import signal
import socket
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from server.app import create_app
from server.config.load import parse_config
from server.config.settings import Settings
from server.http.passwords import hash_password
from tests.support.app import usenet_of
from tests.support.fake_newznab import FakeNewznab, FakeRelease
from tests.support.fake_nntp import FakeNntpServer
from tests.support.fake_tmdb import TOKEN, FakeMovie, FakeTmdb
from tests.support.media import make_movie
from tests.support.yenc import Article, NzbEntry, build_nzb, iter_articles

DEMO_ENV = "MATINEE_DEMO"
HOST = "127.0.0.1"
PASSWORD = "demo"
INDEXER_NAME = "Demo indexer"
INDEXER_KEY = "demo0000000000000000000000000000"
FILM_NAME = "Matinee.Demo.Film.2024.1080p.WEB-DL.AAC2.0.H.264-MATINEE.mp4"
PART_SIZE = 256 * 1024
#: The film: seconds, frame size and video bit rate (what make_movie takes).
FILM_SECONDS = 90.0
FILM_SIZE = "854x480"
FILM_BITRATE = "2M"
#: Default throttle of the Usenet server, as a multiple of the film's average byte rate.
RATE_FACTOR = 2.0


@dataclass(frozen=True)
class Film:
    path: Path
    seconds: float
    articles: tuple[Article, ...]
    nzb: bytes

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def byte_rate(self) -> float:
        """Average bytes per second of playback."""
        return self.size / self.seconds


@dataclass
class Demo:
    """A running demo: Matinee's URL and the stand-ins behind it."""

    url: str  # Matinee's root, ending in "/"
    password: str
    api_key: str  # for programs (X-Api-Key); the UI logs in with the password
    film: Film
    settings: Settings
    app: web.Application
    tmdb: FakeTmdb
    indexer: FakeNewznab
    nntp: FakeNntpServer

    @property
    def api(self) -> str:
        return f"{self.url}api/movies-on-demand"


def make_film(folder: Path, *, seconds: float = FILM_SECONDS, faststart: bool = False) -> Film:
    """The demo film (ffmpeg test pattern and a tone), as articles and an NZB."""
    path = make_movie(
        folder / FILM_NAME, seconds=seconds, size=FILM_SIZE, bitrate=FILM_BITRATE,
        faststart=faststart,
    )  # fmt: skip
    articles = tuple(iter_articles(path, part_size=PART_SIZE, id_domain="demo.matinee.test"))
    return Film(path, seconds, articles, build_nzb([NzbEntry.from_articles(articles)]))


def release_name(movie: FakeMovie) -> str:
    """A scene-style name for a film: ASCII words joined by dots, then the year if known."""
    ascii_title = unicodedata.normalize("NFKD", movie.title).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z0-9]+", ascii_title.replace("'", ""))
    year = [str(movie.year)] if movie.year else []
    return ".".join([*words, *year])


def demo_releases(movies: Iterable[FakeMovie], size: int) -> list[FakeRelease]:
    """Two releases per film (1080p and 720p), matched by IMDb id where the film has one,
    and by title otherwise; ``size`` is what the NZB really holds."""
    posted = format_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    releases = []
    for movie in movies:
        name = release_name(movie)
        imdb = movie.imdb_id.removeprefix("tt") if movie.imdb_id else None
        for tail, grabs in (
            ("1080p.WEB-DL.AAC2.0.H.264-MATINEE", 420),
            ("720p.BluRay.x264-DEMO", 90),
        ):
            releases.append(FakeRelease(f"{name}.{tail}", size, (2000, 2040), posted, imdb, grabs))
    return releases


@contextlib.contextmanager
def _demo_env() -> Iterator[None]:
    """MATINEE_DEMO=1 while the demo runs (create_app and the pages read it)."""
    before = os.environ.get(DEMO_ENV)
    os.environ[DEMO_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DEMO_ENV, None)
        else:
            os.environ[DEMO_ENV] = before


def demo_settings(
    data_dir: Path, *, host: str, port: int, tmdb: FakeTmdb, indexer: FakeNewznab,
    nntp: FakeNntpServer, api_key: str, base_path: str = "/",
) -> Settings:  # fmt: skip
    raw: dict[str, Any] = {
        "server": {"host": host, "port": port, "base_path": base_path, "data_dir": str(data_dir)},
        "auth": {"password_hash": hash_password(PASSWORD), "api_keys": [api_key]},
        "tmdb": {"token": TOKEN, "base_url": tmdb.url, "image_base_url": tmdb.image_url},
        "indexers": [{"name": indexer.name, "url": indexer.url, "api_key": INDEXER_KEY}],
        "usenet": usenet_of(nntp, name="Demo Usenet server", timeout=10),
        "downloads": {"max_active": 2},
    }
    return parse_config(raw, base_dir=data_dir, env={})


@contextlib.asynccontextmanager
async def run_demo(
    port: int = 8080,
    *,
    seconds: float = FILM_SECONDS,
    bytes_per_second: float | None = None,
    throttle: bool = True,
    base_path: str = "/",
    faststart: bool = False,
) -> AsyncIterator[Demo]:
    """Start the stand-ins and Matinee, all on 127.0.0.1; stop them and delete the data on
    leaving. ``port=0`` lets the OS choose. The Usenet server is throttled to ``bytes_per_second``,
    by default RATE_FACTOR times the film's byte rate; ``throttle=False`` serves at full speed.
    """
    with tempfile.TemporaryDirectory(prefix="matinee-demo-") as tmp, _demo_env():
        folder = Path(tmp)
        film = await asyncio.to_thread(make_film, folder, seconds=seconds, faststart=faststart)
        rate = (bytes_per_second or film.byte_rate * RATE_FACTOR) if throttle else None
        async with contextlib.AsyncExitStack() as stack:
            tmdb = FakeTmdb(token=TOKEN, api_key=None)
            await tmdb.start()
            stack.push_async_callback(tmdb.stop)
            indexer = FakeNewznab(
                name=INDEXER_NAME,
                apikey=INDEXER_KEY,
                releases=demo_releases(tmdb.movies.values(), film.size),
            )
            for release in indexer.releases:
                indexer.add_nzb(release.title, film.nzb)
            await indexer.start()
            stack.push_async_callback(indexer.stop)
            nntp = FakeNntpServer(film.articles, bytes_per_second=rate)
            await nntp.start()
            stack.push_async_callback(nntp.stop)

            # Bind first, so that port 0 (any free port) ends up in the settings as it is.
            sock = socket.create_server((HOST, port))
            stack.callback(sock.close)
            bound = int(sock.getsockname()[1])
            api_key = secrets.token_urlsafe(24)
            settings = demo_settings(
                folder / "data", host=HOST, port=bound, tmdb=tmdb, indexer=indexer, nntp=nntp,
                api_key=api_key, base_path=base_path,
            )  # fmt: skip
            app = create_app(settings)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.SockSite(runner, sock).start()
            url = f"http://{HOST}:{bound}{settings.server.base_path}"
            yield Demo(url, PASSWORD, api_key, film, settings, app, tmdb, indexer, nntp)


async def _serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    print("Matinee demo: generating the demo film with ffmpeg...", flush=True)
    rate = args.rate * 1000 if args.rate else None
    async with run_demo(
        args.port, seconds=args.seconds, bytes_per_second=rate,
        throttle=args.rate != 0,
    ) as demo:  # fmt: skip
        speed = demo.nntp.bytes_per_second
        shown = f"{speed / 1e6:.1f} MB/s" if speed else "full speed"
        print(
            f"""
Matinee demo is running ({time.monotonic() - started:.1f} s to start); all data is made up.

    open      {demo.url}
    password  {demo.password}
    API key   {demo.api_key}   (header X-Api-Key, for programs)

Every film has releases on the demo indexer; they all hold one generated {demo.film.seconds:.0f} s
film ({demo.film.size / 1e6:.0f} MB) served by the demo Usenet server at {shown}.
Press Ctrl-C to stop; the demo's data is deleted then.""",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        print("\nStopping the demo...", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.demo",
        description="Matinee with stand-in TMDB, indexer and Usenet server, on loopback.",
    )
    parser.add_argument("--port", type=int, default=8080, help="Matinee's port (default 8080)")
    parser.add_argument(
        "--seconds", type=float, default=FILM_SECONDS, help="length of the demo film"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="Usenet server speed in kB/s (default: twice the film's bit rate; 0: unthrottled)",
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the server was up
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
