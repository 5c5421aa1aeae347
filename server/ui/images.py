"""Posters and photos through Matinee: TMDB's images, kept in a disk cache under data_dir/images.

A browser outside the LAN then needs nothing but Matinee, and TMDB's image server sees one
request per picture, not one per page view. The cache is bounded (``MAX_CACHE_BYTES``): when
it grows past the bound the least recently used files go first (recency is the file's mtime,
refreshed on a hit at most once an hour). Files are written atomically (a temporary file in
the same directory, then ``os.replace``), so a reader never sees half an image; concurrent
requests for the same picture share one fetch.

The route (``{base}img/{size}/{file}``, named "image") needs a session like any page.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from server.discovery.tmdb_shapes import check_image
from server.keys import DISCOVERY, IMAGES, SETTINGS

MAX_CACHE_BYTES = 500 * 1024 * 1024
#: Eviction goes down to this share of the bound, so it does not run on every new file.
EVICT_TO = 0.9
#: A hit refreshes the file's mtime (its recency) only when it is older than this.
TOUCH_AFTER = 3600.0
#: Temporary files older than this are leftovers of a crash and are removed by eviction.
STALE_TEMP = 3600.0

#: The type comes from the name TMDB gave the file, never from what the server said.
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".svg": "image/svg+xml"}
#: Private: the route needs a session, so no shared cache may keep a copy.
CACHE_CONTROL = "private, max-age=31536000, immutable"
#: An SVG opened on its own is a document that could run script; it gets none of that.
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

Fetch = Callable[[], Awaitable[bytes]]


@dataclass(slots=True)
class _Flight:
    """One picture being fetched; later requests for it wait on the lock, then read the file."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ImageCache:
    """Files ``root/{size}/{file}``; no I/O until first used."""

    def __init__(self, root: Path, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._total: int | None = None  # bytes on disk; counted at the first store
        self._flights: dict[str, _Flight] = {}
        self._evicting = asyncio.Lock()

    def path(self, size: str, name: str) -> Path:
        check_image(size, f"/{name}")  # the name is then a plain file name: no way out of root
        return self.root / size / name

    async def get(self, size: str, name: str, fetch: Fetch) -> Path:
        """The cached file for ``size/name``, fetched with ``fetch`` and stored when missing.
        InvalidInput for a size or name TMDB cannot have; fetch's errors pass through."""
        path = self.path(size, name)
        if await asyncio.to_thread(_touch, path):
            return path
        key = f"{size}/{name}"
        flight = self._flights.setdefault(key, _Flight())
        flight.users += 1
        try:
            async with flight.lock:
                if await asyncio.to_thread(_touch, path):
                    return path  # another request stored it while this one waited
                data = await fetch()
                await asyncio.to_thread(_write_atomic, path, data)
                await self._stored(len(data), path)
        finally:
            flight.users -= 1
            if flight.users == 0:
                self._flights.pop(key, None)
        return path

    async def _stored(self, size: int, newest: Path) -> None:
        if self._total is None:
            self._total = await asyncio.to_thread(_disk_usage, self.root)
        else:
            self._total += size
        if self._total <= self.max_bytes or self._evicting.locked():
            return
        async with self._evicting:
            target = int(self.max_bytes * EVICT_TO)
            self._total = await asyncio.to_thread(_evict, self.root, target, newest)

    @property
    def total(self) -> int | None:
        """Bytes in the cache as last counted; None before the first store."""
        return self._total


def _touch(path: Path) -> bool:
    """Whether ``path`` is cached; a hit refreshes its recency now and then."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False
    now = time.time()
    if now - mtime > TOUCH_AFTER:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (now, now))
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _files(root: Path) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every cached file; stale temporary files are removed."""
    found: list[tuple[float, int, Path]] = []
    now = time.time()
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if path.name.startswith("."):
                if now - info.st_mtime > STALE_TEMP:
                    path.unlink(missing_ok=True)
                continue
            found.append((info.st_mtime, info.st_size, path))
    return found


def _disk_usage(root: Path) -> int:
    return sum(size for _, size, _ in _files(root))


def _evict(root: Path, target: int, keep: Path) -> int:
    """Remove the least recently used files until at most ``target`` bytes remain (never
    ``keep``, the file just stored); returns the bytes left."""
    files = sorted(_files(root), key=lambda f: f[0])
    total = sum(size for _, size, _ in files)
    for _, size, path in files:
        if total <= target:
            break
        if path == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size
    return total


async def image(request: web.Request) -> web.StreamResponse:
    size, name = request.match_info["size"], request.match_info["file"]
    tmdb = request.config_dict[DISCOVERY].tmdb

    async def fetch() -> bytes:
        data, _ = await tmdb.image(size, f"/{name}")
        return data

    path = await request.config_dict[IMAGES].get(size, name, fetch)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[path.suffix],
            "Cache-Control": CACHE_CONTROL,
            "Content-Security-Policy": IMAGE_CSP,
            "X-Content-Type-Options": "nosniff",
        },
    )


def image_url(app: web.Application, size: str, path: str | None) -> str | None:
    """The proxy's URL for a TMDB image path ("/abc.jpg"); None when there is no image."""
    if not path:
        return None
    resource = app.router["image"]
    return str(resource.url_for(size=size, file=path.lstrip("/")))


def setup(app: web.Application) -> None:
    """The route ``{base}img/{size}/{file}`` and its cache (opened lazily, no I/O here)."""
    settings = app[SETTINGS]
    app[IMAGES] = ImageCache(settings.server.data_dir / "images")
    base = settings.server.base_path
    app.router.add_get(f"{base}img/{{size}}/{{file}}", image, name="image")
