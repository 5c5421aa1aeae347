"""The jobs part of the JSON API: submit, list, inspect, cancel, follow, resume.

Handlers validate, answer, and never await a download; the JobManager owns the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from server.api.params import job_id, json_body
from server.api.shapes import event_json, job_json
from server.discovery.nzb_source import MAX_NZB_BYTES, download_nzb
from server.errors import InvalidInput
from server.http.costs import spend
from server.http.forms import read_upload
from server.http.limits import event_stream_slot
from server.jobs.lifecycle import Source, Status
from server.jobs.manager import JobManager
from server.keys import HTTP, JOBS, RETENTION, SETTINGS, STORE

routes = web.RouteTableDef()
SSE_KEEPALIVE = 15.0


@routes.post("/jobs")
async def create_job(request: web.Request) -> web.Response:
    ctype = request.content_type
    settings = request.config_dict[SETTINGS]
    if ctype == "multipart/form-data":
        data, filename = await read_upload(request, "nzb", MAX_NZB_BYTES)
        source = Source.UPLOAD
    elif ctype == "application/json":
        body = await json_body(request)
        url = body.get("nzb_url")
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput("give a multipart file field 'nzb' or JSON {\"nzb_url\": ...}")
        spend(request, "fetch")
        data, filename = await download_nzb(
            request.config_dict[HTTP], url.strip(), settings.indexers
        )
        source = Source.URL
    else:
        raise InvalidInput("send multipart/form-data with a file field 'nzb', or JSON with nzb_url")
    job = await request.config_dict[JOBS].submit(data, filename=filename, source=source)
    return web.json_response({"job_id": job.job_id, "status": job.status.value}, status=202)


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    raw = request.query.get("status") or None
    try:
        status = Status(raw) if raw is not None else None
    except ValueError:
        raise InvalidInput(f"status must be one of {', '.join(Status)}") from None
    jobs = await request.config_dict[STORE].jobs.list(status)
    if status is None:  # deleted jobs only when asked for: they are history, not downloads
        jobs = [j for j in jobs if j.status != Status.DELETED]
    return web.json_response({"jobs": [job_json(j) for j in jobs]})


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].get(job_id(request))
    return web.json_response(job_json(job))


@routes.delete("/jobs/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].delete(job_id(request))
    return web.json_response(job_json(job))


@routes.get("/jobs/{job_id}/log")
async def job_log(request: web.Request) -> web.Response:
    """What the runner did and why: the release chosen, failovers, repairs, retries, errors."""
    job = await request.config_dict[JOBS].get(job_id(request))
    events = await request.config_dict[STORE].events.list(job.job_id)
    return web.json_response({"job_id": job.job_id, "events": [event_json(e) for e in events]})


@routes.get("/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    manager = request.config_dict[JOBS]
    ident = job_id(request)
    await manager.get(ident)  # 404 before the stream starts
    with event_stream_slot(request):
        return await _stream_events(request, manager, ident)


async def _stream_events(
    request: web.Request, manager: JobManager, ident: str
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx must not buffer the stream
        }
    )
    await resp.prepare(request)
    snapshots = manager.watch(ident)
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


@routes.get("/jobs/{job_id}/position")
async def get_position(request: web.Request) -> web.Response:
    job = await request.config_dict[JOBS].get(job_id(request))
    seconds = await request.config_dict[STORE].positions.get(job.job_id)
    return web.json_response({"job_id": job.job_id, "position": seconds or 0.0})


@routes.put("/jobs/{job_id}/position")
async def put_position(request: web.Request) -> web.Response:
    ident = job_id(request)
    body = await json_body(request)  # a bad body is the caller's mistake, job or no job
    job = await request.config_dict[JOBS].get(ident)
    value = body.get("position")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e7:
        raise InvalidInput("position must be a number of seconds (0 or more)")
    await request.config_dict[STORE].positions.set(job.job_id, float(value))
    await request.config_dict[RETENTION].watched(job.job_id)  # the idle timer starts again
    return web.json_response({"job_id": job.job_id, "position": float(value)})


@routes.post("/jobs/{job_id}/keep")
async def keep_longer(request: web.Request) -> web.Response:
    """Every deadline of the job (local and in R2) 24 h later."""
    job = await request.config_dict[RETENTION].keep_longer(job_id(request))
    return web.json_response(job_json(job))
