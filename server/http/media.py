"""``GET``/``HEAD /media/{job_id}/{name}``: byte ranges of a movie that may still be downloading.

The handler reads through a ``MediaView`` (``nntp.media``: the one interface to a movie) and
never holds media bytes in Python when it can avoid it: bytes already on disk go from the
page cache to the socket with ``loop.sendfile``, one call per on-disk piece of whatever is
contiguous and present. Only bytes that are not there yet cost a wait, and that wait also
tells the download where the player is.

A request with ``?background=1`` (Matinee's own subtitle extraction, which reads the whole
film) waits for missing bytes without moving them to the front: it must never compete with
what a player is waiting for.

Guarantees a player relies on: the status and Content-Range are decided before the first
byte (TOTAL is the final size even while downloading), and a body that cannot be completed
is cut short with the connection closed, so a client sees a short read, never wrong bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import BinaryIO, TypeVar

from aiohttp import hdrs, web

from nntp.download import DownloadError
from nntp.errors import NntpError, SegmentsMissing
from nntp.media import MediaView, Piece
from server.errors import NotFound
from server.http.ranges import UNSATISFIABLE, RangeSpec, if_range_matches, parse_range
from server.jobs.readers import Movie, Reading
from server.keys import JOBS, METRICS, SETTINGS
from server.metrics import Metrics

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/{job_id}/{name}"

#: What a stalled response waits for at once: the segment that holds the next byte, not a
#: whole MiB, so a seek plays as soon as its first article has arrived.
CHUNK_SIZE = 64 * 1024

#: The most a response sends before it looks for a newer view of the movie: a response
#: moves on to the finished file soon after the job is ready, so that the files only the
#: downloading view reads can go.
ROUND_BYTES = 16 * 1024 * 1024

#: How often a response that waits for the download checks that its client is still there.
#: aiohttp does not cancel handlers when a client disconnects unless the server was started
#: with ``handler_cancellation=True``, so a waiting response has to look for itself.
GONE_POLL_SECONDS = 0.5


_T = TypeVar("_T")

Lookup = Callable[[str, str], Awaitable[MediaView | Reading | None]]


class _ClientGone(Exception):
    """The client closed the connection while its response was being produced."""


class _Unservable(Exception):
    """Bytes of the response cannot be had, or the view contradicts itself."""


def _strong_etag(etag: str) -> str:
    # The Protocol asks for a quoted tag; quote a bare one rather than send an invalid header.
    return etag if etag.startswith('"') else f'"{etag}"'


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _open_binary(path: str) -> BinaryIO:
    # Media are files Matinee wrote; a link where one was expected is never followed.
    return open(path, "rb", opener=_no_follow)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _close_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def media_handler(
    lookup: Lookup,
    *,
    use_sendfile: bool = True,
    chunk_size: int = CHUNK_SIZE,
    gone_poll: float = GONE_POLL_SECONDS,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler for ``MEDIA_PATH``; ``lookup(job_id, name)`` finds the view or gives None.

    A ``Reading`` (``server.jobs.readers``) lets the response follow the job's view from
    the downloading files to the finished file mid-body; the handler releases it at the end.

    Register it with ``router.add_get(MEDIA_PATH, handler)`` (which also answers HEAD).
    ``use_sendfile=False`` forces the read-and-write path that TLS or compression would take.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        job_id, name = request.match_info["job_id"], request.match_info["name"]
        found = await lookup(job_id, name)
        if found is None:
            raise NotFound(f"no media {name!r} in job {job_id}")
        reading = found if isinstance(found, Reading) else Movie(found, final=True).read()
        assert reading is not None  # a movie made from a view has that view
        try:
            return await respond(request, reading, job_id, name, started)
        finally:
            reading.release()

    async def respond(
        request: web.Request, reading: Reading, job_id: str, name: str, started: float
    ) -> web.StreamResponse:
        view = reading.view
        etag = _strong_etag(view.etag)
        header: str | None = None
        # RFC 9110 14.2: range handling is defined for GET only, so HEAD answers like a
        # plain GET would (size and Accept-Ranges are what HEAD is used to learn).
        if request.method == hdrs.METH_GET:
            header = request.headers.get(hdrs.RANGE)
            if_range = request.headers.get(hdrs.IF_RANGE)
            if header is not None and if_range is not None and not if_range_matches(if_range, etag):
                header = None  # the client's copy is stale: send it all (RFC 9110 13.1.5)
        spec = parse_range(header, view.size)

        resp = web.StreamResponse(status=spec.status)
        resp.headers[hdrs.ACCEPT_RANGES] = "bytes"
        resp.headers[hdrs.ETAG] = etag
        # Bytes are deleted when the job expires and a shared cache must never keep them.
        resp.headers[hdrs.CACHE_CONTROL] = "no-store"
        if spec.content_range is not None:
            resp.headers[hdrs.CONTENT_RANGE] = spec.content_range
        if spec.status == UNSATISFIABLE:
            resp.content_length = 0
            await resp.prepare(request)
            return resp
        resp.content_type = view.content_type
        resp.content_length = spec.length
        await resp.prepare(request)
        if request.method == hdrs.METH_HEAD or spec.length == 0:
            return resp

        sender = _Sender(request, resp, reading, use_sendfile, chunk_size, gone_poll)
        sender.metrics = request.config_dict.get(METRICS)
        sender.started = started
        sender.background = request.query.get("background") == "1"
        try:
            await sender.send(spec)
        except (_ClientGone, ConnectionError):
            log.debug("media %s/%s: client went away at byte %d", job_id, name, sender.pos)
            resp.force_close()
        except (NntpError, _Unservable, OSError) as exc:
            # A Content-Length promise that cannot be kept: close the connection so that the
            # client sees a short body instead of waiting for bytes or misreading the next
            # response as the rest of this one.
            log.warning(
                "media %s/%s: bytes %d-%d of %d cannot all be served; response cut at byte %d: %s",
                job_id,
                name,
                spec.start,
                spec.stop - 1,
                spec.size,
                sender.pos,
                str(exc) or type(exc).__name__,
            )
            resp.force_close()
        return resp

    return handle


class _Sender:
    """Writes [start, stop) of a movie to one prepared response; owns its files and priority.

    It reads through ``reading``'s view and moves on to a newer view of the same movie
    between rounds, and when the download under its view cannot bring the bytes (the job
    is being repaired or prepared: the finished view will have them).
    """

    def __init__(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        reading: Reading,
        use_sendfile: bool,
        chunk_size: int,
        gone_poll: float,
    ) -> None:
        self.request = request
        self.resp = resp
        self.reading = reading
        self.view = reading.view
        self.release: Callable[[], None] | None = None
        self.use_sendfile = use_sendfile
        self.chunk_size = chunk_size
        self.gone_poll = gone_poll
        self.pos = 0
        self.files: dict[str, BinaryIO] = {}
        self.loop = asyncio.get_running_loop()
        self.metrics: Metrics | None = None  # the app's, when it has them
        self.started = self.loop.time()
        self.first_byte_seen = False
        self.background = False  # wait for the download without steering it

    async def send(self, spec: RangeSpec) -> None:
        self.pos, stop = spec.start, spec.stop
        try:
            while self.pos < stop:
                view = self._follow(stop)
                count = min(view.available(self.pos), stop - self.pos)
                if count <= 0:
                    view = await self._wait(self.pos, min(stop, self.pos + self.chunk_size), stop)
                    count = min(view.available(self.pos), stop - self.pos)
                    if count <= 0:
                        # Waiting again at once would spin the event loop.
                        raise _Unservable(f"byte {self.pos} is still missing after its wait")
                if not self.first_byte_seen and self.metrics is not None:
                    self.metrics.first_byte.observe(self.loop.time() - self.started)
                self.first_byte_seen = True
                # What is present goes out at once (one sendfile per on-disk piece), a
                # round at a time so that a newer view is taken up soon.
                count = min(count, ROUND_BYTES)
                await self._send_present(view, self.pos, count)
                self.pos += count
        finally:
            self._unprioritise()
            for f in self.files.values():
                f.close()
            self.files.clear()

    def _follow(self, stop: int) -> MediaView:
        """The view to read now; the download is told where this response is going."""
        view = self.reading.follow()
        if view is not self.view:
            self._unprioritise()
            self.view = view
        if (
            self.release is None
            and not self.background
            and view.available(self.pos) < stop - self.pos
        ):
            # Held until this response ends or moves on, however it ends: send's finally
            # runs on a clean end, a lost client and a cancelled handler alike.
            self.release = view.prioritise(self.pos, stop)
        return view

    def _unprioritise(self) -> None:
        if self.release is not None:
            self.release()
            self.release = None

    async def _wait(self, offset: int, end: int, stop: int) -> MediaView:
        """view.wait(offset, end), given up as soon as the client is seen to be gone.

        When the download cannot bring the bytes (they are missing on every server, or it
        stopped first), the wait goes on for the job's next view of the movie: the finished
        one has them once PAR2 repaired the post; if the job fails instead, the error stands.
        Returns the view to read then."""
        if _client_gone(self.request):
            raise _ClientGone
        began = self.loop.time()
        try:
            if self.background:
                await self._until_present(offset)
            else:
                await self._until_done(self.view.wait(offset, end))
        except (DownloadError, SegmentsMissing):
            if await self._until_done(self.reading.next_view()) is None:
                raise
        finally:
            if self.metrics is not None and not self.background:
                self.metrics.seek_wait.observe(self.loop.time() - began)
        return self._follow(stop)

    async def _until_present(self, offset: int) -> None:
        """Until the byte at ``offset`` is on disk, without moving it ahead of the player's
        (a subtitle extraction reading along behind the film)."""
        while self.reading.follow().available(offset) <= 0:
            await asyncio.sleep(self.gone_poll)
            if _client_gone(self.request):
                raise _ClientGone

    async def _until_done(self, awaitable: Awaitable[_T]) -> _T:
        waiter = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=self.gone_poll)
                if done:
                    return waiter.result()  # SegmentsMissing surfaces here
                if _client_gone(self.request):
                    raise _ClientGone
        finally:
            if not waiter.done():
                waiter.cancel()
                await asyncio.wait({waiter})
            if not waiter.cancelled():
                waiter.exception()  # retrieved, so asyncio does not report it as lost

    async def _send_present(self, view: MediaView, offset: int, count: int) -> None:
        pieces = view.pieces(offset, count)
        if sum(p.length for p in pieces) != count or any(p.length < 0 for p in pieces):
            raise _Unservable(f"the view mapped {count} bytes at {offset} to {pieces!r}")
        for piece in pieces:
            if piece.length == 0:
                continue
            f = await self._open(piece.path)
            if self.use_sendfile and not self.resp.compression:
                sent = await self._sendfile(f, piece)
            else:
                sent = await self._copy(f, piece)
            if sent != piece.length:
                # A file shorter than the view claims: stop before the body goes out of step.
                raise _Unservable(
                    f"{piece.path} gave {sent} of {piece.length} bytes at {piece.offset}"
                )

    async def _open(self, path: str) -> BinaryIO:
        f = self.files.get(path)
        if f is None:
            # open() may touch the disk; do it off the event loop like every other file access.
            opening = self.loop.run_in_executor(None, _open_binary, path)
            try:
                f = await asyncio.shield(opening)
            except asyncio.CancelledError:
                # The thread finishes the open anyway: close what it opens, not leak it.
                opening.add_done_callback(_close_opened)
                raise
            self.files[path] = f
        return f

    async def _sendfile(self, f: BinaryIO, piece: Piece) -> int:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise _ClientGone
        try:
            return await self.loop.sendfile(transport, f, piece.offset, piece.length)
        except NotImplementedError:
            # Event loops without sendfile (uvloop, for one) take the copying path.
            self.use_sendfile = False
            return await self._copy(f, piece)
        except ConnectionError as exc:
            raise _ClientGone from exc

    async def _copy(self, f: BinaryIO, piece: Piece) -> int:
        fd, offset, left, sent = f.fileno(), piece.offset, piece.length, 0
        while left > 0:
            data = await self.loop.run_in_executor(
                None, os.pread, fd, min(self.chunk_size, left), offset
            )
            if not data:
                break
            try:
                await self.resp.write(data)
            except ConnectionError as exc:
                raise _ClientGone from exc
            offset += len(data)
            left -= len(data)
            sent += len(data)
        return sent


def setup(app: web.Application) -> None:
    """``{base}media/{job_id}/{name}``, reading through the job's current view."""

    async def lookup(job_id: str, name: str) -> Reading | None:
        return app[JOBS].reading(job_id, name) if JOBS in app else None

    base = app[SETTINGS].server.base_path
    handler = media_handler(lookup)
    app.router.add_route("GET", f"{base}media/{{job_id}}/{{name}}", handler, name="media")
    app.router.add_route("HEAD", f"{base}media/{{job_id}}/{{name}}", handler)
