"""A small HTTP server of one file with Range support, as Matinee's /media serves a movie,
optionally *progressive*: only the bytes made ``available`` so far are served, and a read
beyond them waits (as a read of a file still downloading does), so ffmpeg can be tested on a
download in progress.

    async with RangeServer(path, progressive=True) as server:
        await server.make_available(0, 1 << 20)      # the head, as the engine fetches first
        await server.make_available(size - (1 << 20), size)
        ... ffmpeg reads server.url ...
        await server.make_available(0, size)         # the rest arrives
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import TracebackType

from aiohttp import web

CHUNK = 64 * 1024
CONTENT_TYPES = {
    ".mkv": "video/x-matroska",
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".ts": "video/mp2t",
    ".webm": "video/webm",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeServer:
    def __init__(self, path: Path, *, progressive: bool = False) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.progressive = progressive
        self._available: list[tuple[int, int]] = [] if progressive else [(0, self.size)]
        self._changed = asyncio.Condition()
        self.requests: list[str | None] = []  # Range headers, in order
        self.bytes_served = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- what is "downloaded" ----------------------------------------------------------

    async def make_available(self, start: int, end: int) -> None:
        """Bytes [start, end) are now on disk."""
        spans = sorted([*self._available, (max(0, start), min(end, self.size))])
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        self._available = merged
        async with self._changed:
            self._changed.notify_all()

    def available_from(self, offset: int) -> int:
        """How many bytes from ``offset`` on are there."""
        for lo, hi in self._available:
            if lo <= offset < hi:
                return hi - offset
        return 0

    @property
    def available_bytes(self) -> int:
        return sum(hi - lo for lo, hi in self._available)

    async def _wait_for_bytes(self, offset: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.available_from(offset) > 0)

    # -- HTTP --------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Range")
        self.requests.append(header)
        start, end = 0, self.size - 1
        if header:
            match = _RANGE.match(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise web.HTTPRequestRangeNotSatisfiable()
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else self.size - 1
            else:
                start = max(0, self.size - int(match.group(2)))
            end = min(end, self.size - 1)
            if start >= self.size or start > end:
                raise web.HTTPRequestRangeNotSatisfiable(
                    headers={"Content-Range": f"bytes */{self.size}"}
                )
        response = web.StreamResponse(status=206 if header else 200)
        response.content_length = end - start + 1
        # ffmpeg takes the type as a hint for the demuxer: it must be the file's.
        response.content_type = CONTENT_TYPES.get(self.path.suffix, "application/octet-stream")
        response.headers["Accept-Ranges"] = "bytes"
        if header:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{self.size}"
        await response.prepare(request)
        position = start
        with self.path.open("rb") as f:
            while position <= end:
                ready = self.available_from(position)
                if ready == 0:
                    await self._wait_for_bytes(position)
                    continue
                length = min(ready, CHUNK, end - position + 1)
                f.seek(position)
                data = f.read(length)
                await response.write(data)
                self.bytes_served += len(data)
                position += len(data)
        await response.write_eof()
        return response

    async def __aenter__(self) -> RangeServer:
        app = web.Application()
        app.router.add_get("/media/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/media/{self.path.name}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
