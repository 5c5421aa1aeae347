"""``{base}hls/{job_id}/...``: HLS playlists and segments made by ``server.playback``, and
subtitles as WebVTT, for players that cannot send headers (hls.js, Safari's own player, a
``<track>`` element): they carry the job's signed ``?token=``, which every URI of a playlist
carries on.

* ``hls/{job_id}/{output}/index.m3u8``, ``.../init.mp4``, ``.../{n}.m4s``: one output of
  the film (``server.playback.outputs`` names it), made again from the URL alone if its
  session was stopped meanwhile;
* ``hls/{job_id}/subtitles/{track}.vtt``: a text track of the film (``s3``: stream 3,
  extracted cue by cue as ffmpeg reaches it) or a subtitle file of the release (``x0``).

ffmpeg and ffprobe read the film where ``server.http.film`` says: Matinee's own media URL on
the address this request came in on (their reads prioritise the download like a player's), or
a presigned URL in R2 once only R2 has the film.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from aiohttp import web

from server.errors import NotFound, PlaybackError
from server.http.film import Film, film_of, without_urls
from server.jobs.failures import failure_error
from server.jobs.lifecycle import Status
from server.keys import JOBS, METRICS, PLAYBACK, SETTINGS, STORE
from transcode.compat import HLS_CONTENT_TYPE, TEXT_SUBTITLES
from transcode.session import HlsError, HlsSession
from transcode.subtitles import WEBVTT_CONTENT_TYPE, SubtitleError, stream_webvtt

SEGMENT_TYPE = "video/mp4"
GONE_POLL = 0.5
T = TypeVar("T")
CUE_DONE = 0.1  # seconds without a line from ffmpeg after which its last cue is complete


def hls_path(base: str, job_id: str, output: str) -> str:
    return f"{base}hls/{job_id}/{output}/index.m3u8"


def subtitle_path(base: str, job_id: str, track: str) -> str:
    return f"{base}hls/{job_id}/subtitles/{track}.vtt"


def _failed(request: web.Request, exc: Exception) -> PlaybackError:
    """ffmpeg's complaint for the player, without the URL it read (a token or a presigned
    link is in it)."""
    request.config_dict[METRICS].playback_failures.inc()
    return PlaybackError(without_urls(str(exc)))


async def _film(request: web.Request, job_id: str) -> Film:
    film = await film_of(request, job_id)
    if film is None:
        job = await request.config_dict[JOBS].get(job_id)
        if job.status == Status.ERROR:  # the player says why: the job's own words
            raise failure_error(job)
        raise NotFound(f"job {job_id} has no playable movie")
    return film


def _token_query(request: web.Request) -> str:
    token = request.query.get("token")
    return f"?token={quote(token)}" if token else ""


async def _session_for(request: web.Request) -> HlsSession:
    job_id, output = request.match_info["job_id"], request.match_info["output"]
    film = await _film(request, job_id)
    return await request.config_dict[PLAYBACK].session(job_id, output, film.view, film.source)


async def _unless_gone(request: web.Request, work: Awaitable[T]) -> T:
    """``work``, given up when the player closes its connection: a segment request a seek
    abandoned must not wait for the download (nor hold up the server's shutdown)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=GONE_POLL)
            if done:
                return task.result()
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the player went away")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, HlsError):
                await task


async def playlist(request: web.Request) -> web.Response:
    session = await _session_for(request)
    query = _token_query(request)
    try:
        text = await _unless_gone(
            request,
            session.playlist(init_uri=f"init.mp4{query}", segment_uri=lambda n: f"{n}.m4s{query}"),
        )
    except HlsError as exc:
        raise _failed(request, exc) from None
    return web.Response(
        text=text, content_type=HLS_CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )


async def init(request: web.Request) -> web.Response:
    session = await _session_for(request)
    try:
        data = await _unless_gone(request, session.init())
    except HlsError as exc:
        raise _failed(request, exc) from None
    return web.Response(body=data, content_type=SEGMENT_TYPE, headers={"Cache-Control": "no-store"})


async def segment(request: web.Request) -> web.Response:
    session = await _session_for(request)
    index = int(request.match_info["index"])
    if session.segments is not None and index >= len(session.segments):
        raise NotFound(f"the stream has {len(session.segments)} segments, not {index + 1}")
    began = time.monotonic()
    try:
        data = await _unless_gone(request, session.segment(index))
    except HlsError as exc:
        raise _failed(request, exc) from None
    request.config_dict[METRICS].hls_segment.observe(time.monotonic() - began)
    return web.Response(body=data, content_type=SEGMENT_TYPE, headers={"Cache-Control": "no-store"})


async def subtitles(request: web.Request) -> web.StreamResponse:
    job_id, track = request.match_info["job_id"], request.match_info["track"]
    app = request.config_dict
    job = await app[STORE].jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    playback = app[PLAYBACK]
    headers = {"Cache-Control": "no-store"}
    if track.startswith("x"):
        text = await playback.external_webvtt(job_id, Path(job.dir), track)
        return web.Response(text=text, headers={**headers, "Content-Type": WEBVTT_CONTENT_TYPE})
    if not track.startswith("s") or not track[1:].isdigit():
        raise NotFound(f"no subtitle track {track!r}")
    film = await _film(request, job_id)
    facts = await playback.facts(job_id, film.view, film.source)
    index = int(track[1:])
    stream = next((s for s in facts.readable().subtitle_streams if s.index == index), None)
    if stream is None or stream.codec not in TEXT_SUBTITLES:
        raise NotFound(f"the film has no text subtitle track {index}")
    resp = web.StreamResponse(headers={**headers, "Content-Type": WEBVTT_CONTENT_TYPE})
    await resp.prepare(request)
    # Extraction reads the whole film: in the background, never ahead of what a player waits for.
    cues = stream_webvtt(film.background, index)
    try:
        async for chunk in _cues_until_gone(request, cues):
            await resp.write(chunk)
    except (ConnectionError, SubtitleError):
        # Headers are out: a failed track just ends (the player keeps the cues it has).
        resp.force_close()
    finally:
        await cues.aclose()
    return resp


async def _cues_until_gone(
    request: web.Request, lines: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """ffmpeg's WebVTT lines, each cue closed by a blank line as soon as it is complete, and
    given up when the client closes its connection while ffmpeg waits for the download
    (nothing is written then, so a write would not notice).

    ffmpeg's WebVTT muxer puts the blank line *before* each cue, so the last cue written so
    far would stay open until the next one (seconds or minutes later). It writes a whole cue
    at once: when no line follows for ``CUE_DONE`` seconds, the cue is complete."""
    open_cue = False
    while True:
        step = asyncio.ensure_future(anext(lines))
        try:
            while True:
                done, _ = await asyncio.wait({step}, timeout=CUE_DONE if open_cue else GONE_POLL)
                if done:
                    break
                if open_cue:
                    open_cue = False
                    yield b"\n"
                    continue
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("the player went away")
        finally:
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
        if isinstance(step.exception(), StopAsyncIteration):
            return
        line = step.result()
        open_cue = bool(line.strip())
        yield line


def setup(app: web.Application) -> None:
    """The HLS and subtitle routes (token or session, like /media)."""
    base = app[SETTINGS].server.base_path
    router = app.router
    router.add_get(f"{base}hls/{{job_id}}/subtitles/{{track}}.vtt", subtitles, name="subtitles")
    router.add_get(f"{base}hls/{{job_id}}/{{output}}/index.m3u8", playlist, name="hls")
    router.add_get(f"{base}hls/{{job_id}}/{{output}}/init.mp4", init)
    router.add_get(f"{base}hls/{{job_id}}/{{output}}/{{index:\\d{{1,6}}}}.m4s", segment)
