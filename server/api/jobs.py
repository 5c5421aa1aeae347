"""The jobs part of the JSON API: submit, list, inspect, cancel, follow, stream, resume.

Handlers validate, answer, and never await a download; the JobManager owns the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import time
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from server.discovery.nzb_source import MAX_NZB_BYTES, download_nzb
from server.errors import InvalidInput, NotFound
from server.http.tokens import sign
from server.keys import HTTP, JOBS, SECRET, SETTINGS, STORE
from server.store.db import Job

routes = web.RouteTableDef()
SSE_KEEPALIVE = 15.0
STREAM_URL_SECONDS = 4 * 3600


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def job_json(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "movie_id": job.movie_id,
        "status": job.status,
        "progress": job.progress,
        "playable": job.playable,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "speed_bps": job.speed_bps,
        "eta_seconds": job.eta_seconds,
        "error_message": job.error_message,
        "release_title": job.release_title,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "ready_at": iso(job.ready_at),
        "expires_at": iso(job.expires_at),
    }


async def _read_upload(request: web.Request) -> tuple[bytes, str | None]:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != "nzb":
            continue
        data = bytearray()
        while chunk := await part.read_chunk(256 * 1024):
            data += chunk
            if len(data) > MAX_NZB_BYTES:
                raise InvalidInput("the NZB is larger than 64 MiB")
        return bytes(data), part.filename
    raise InvalidInput("the multipart body needs a file field named 'nzb'")


@routes.post("/jobs")
async def create_job(request: web.Request) -> web.Response:
    ctype = request.content_type
    settings = request.config_dict[SETTINGS]
    if ctype == "multipart/form-data":
        data, filename = await _read_upload(request)
        source = "upload"
    elif ctype == "application/json":
        body = await json_body(request)
        url = body.get("nzb_url")
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput("give a multipart file field 'nzb' or JSON {\"nzb_url\": ...}")
        data, filename = await download_nzb(
            request.config_dict[HTTP], url.strip(), settings.indexers
        )
        source = "url"
    else:
        raise InvalidInput("send multipart/form-data with a file field 'nzb', or JSON with nzb_url")
    job = await request.config_dict[JOBS].submit(data, filename=filename, source=source)
    return web.json_response({"job_id": job.job_id, "status": job.status}, status=202)


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the JSON body must be an object")
    return body


STATUSES = ("queued", "downloading", "preparing", "ready", "error", "deleted")


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    jobs = await request.config_dict[STORE].list_jobs(status)
    return web.json_response({"jobs": [job_json(j) for j in jobs]})


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].get(request.match_info["job_id"])
    return web.json_response(job_json(job))


@routes.delete("/jobs/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].delete(request.match_info["job_id"])
    return web.json_response(job_json(job))


@routes.get("/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    manager = request.config_dict[JOBS]
    job_id = request.match_info["job_id"]
    await manager.get(job_id)  # 404 before the stream starts
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx must not buffer the stream
        }
    )
    await resp.prepare(request)
    snapshots = manager.watch(job_id)
    try:
        while True:
            try:
                job = await asyncio.wait_for(anext(snapshots), SSE_KEEPALIVE)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            except StopAsyncIteration:
                break
            payload = json.dumps(job_json(job), separators=(",", ":"))
            await resp.write(f"event: job\ndata: {payload}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await snapshots.aclose()
    return resp


@routes.get("/movies/{id}/stream")
async def stream(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    store = request.config_dict[STORE]
    if ident.startswith("job_"):
        job = await request.config_dict[JOBS].get(ident)
    elif ident.isdigit() and int(ident) > 0:
        found = await store.active_job_for_movie(int(ident))
        if found is None:
            raise NotFound(f"movie {ident} has no job: press Watch first")
        job = found
    else:
        raise InvalidInput("id must be a movie id (a positive integer) or a job id")
    view = request.config_dict[JOBS].view(job.job_id)
    if not job.playable or view is None or job.status in ("error", "deleted"):
        manager = request.config_dict[JOBS]
        why = job.error_message if job.status == "error" else f"the job is {job.status}"
        if job.status in ("downloading", "preparing") and (note := manager.note(job.job_id)):
            why = f"{why}; {note}"
        raise InvalidInput(f"not playable yet ({why}); follow /jobs/{job.job_id}/events")
    expires = int(time.time()) + STREAM_URL_SECONDS
    if job.expires_at is not None:
        expires = min(expires, math.ceil(job.expires_at))
    token = sign(request.config_dict[SECRET], job.job_id, expires)
    base = request.config_dict[SETTINGS].server.base_path
    url = f"{base}media/{job.job_id}/{quote(view.name)}?token={token}"
    return web.json_response(
        {
            "job_id": job.job_id,
            "url": url,
            "kind": "file" if job.status == "ready" else "progressive",
            "content_type": view.content_type,
            "size": view.size,
            "expires_at": iso(expires),
        }
    )


@routes.get("/jobs/{job_id}/position")
async def get_position(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].get(request.match_info["job_id"])
    seconds = await request.config_dict[STORE].get_position(job.job_id)
    return web.json_response({"job_id": job.job_id, "position": seconds or 0.0})


@routes.put("/jobs/{job_id}/position")
async def put_position(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].get(request.match_info["job_id"])
    body = await json_body(request)
    value = body.get("position")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e7:
        raise InvalidInput("position must be a number of seconds (0 or more)")
    await request.config_dict[STORE].set_position(job.job_id, float(value))
    return web.json_response({"job_id": job.job_id, "position": float(value)})
