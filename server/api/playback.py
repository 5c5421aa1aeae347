"""The playback part of the JSON API: ``/movies/{id}/stream`` (how this browser plays the job's
film, and the URLs) and the household's playback preferences (audio and subtitle language).

A stream answer is decided per request: from the capabilities the player measured
(``?capabilities=``), the film's streams (probed once), an explicit ``?audio=`` track or the
preferred languages, and an image subtitle to burn in (``?burn=``, which makes it a
transcode). ``kind`` is ``progressive`` or ``file`` (the file itself, byte ranges), ``r2`` (the
file itself, presigned in R2) or ``hls``. A film only R2 still has plans the same way: ffprobe
and ffmpeg read it there (``server.http.film``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from server.api.params import is_job_id, json_body
from server.api.shapes import iso
from server.errors import Conflict, InvalidInput, NotFound
from server.http.film import film_of
from server.http.forwarded import is_trusted, parse_address
from server.http.hls import hls_path, subtitle_path
from server.http.tokens import sign
from server.jobs.failures import failure_error
from server.jobs.lifecycle import Status, can_play
from server.keys import CREDENTIALS, JOBS, MIRROR, PLAYBACK, SETTINGS, STORE
from server.mirror.serve import plays_from_r2
from server.playback.choice import (
    PREFERENCE_KEYS,
    capabilities_of,
    choose,
    parse_preferences,
    preference_json,
)
from server.store.jobs import Job
from transcode.compat import HLS_CONTENT_TYPE

routes = web.RouteTableDef()
STREAM_URL_SECONDS = 4 * 3600


def _stream_index(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 4:
        raise InvalidInput(f"{name} must be a stream index (a whole number)")
    return int(raw)


async def _job_of(request: web.Request) -> Job:
    ident = request.match_info["id"]
    if is_job_id(ident):
        return await request.config_dict[JOBS].get(ident)
    if ident.isdigit() and int(ident) > 0:
        found = await request.config_dict[STORE].jobs.current_for_movie(int(ident))
        if found is None:
            raise NotFound(f"movie {ident} has no job: press Watch first")
        return found
    raise InvalidInput("id must be a movie id (a positive integer) or a job id")


async def _r2_link(request: web.Request, job: Job) -> tuple[str, float] | None:
    """A presigned GET in R2 when ``[r2] serve`` says this browser plays the file from there
    (the household's networks are told by the client's address, as for /metrics)."""
    settings = request.config_dict[SETTINGS]
    address = parse_address(request.remote or "")
    lan = address is not None and is_trusted(address, settings.server.lan_networks)
    if not plays_from_r2(job, settings.r2, from_lan=lan):
        return None
    return await request.config_dict[MIRROR].presign(job)


@routes.get("/movies/{id}/stream")
async def stream(request: web.Request) -> web.Response:
    job = await _job_of(request)
    app = request.config_dict
    manager = app[JOBS]
    if job.status == Status.ERROR:
        raise failure_error(job)
    if job.status == Status.DELETED:
        raise Conflict(f"job {job.job_id} was deleted: its files are gone")
    film = await film_of(request, job.job_id, job=job)
    if film is None or not (film.remote or can_play(job.status, job.playable)):
        why = f"the job is {job.status.value}"
        if job.status in (Status.DOWNLOADING, Status.PREPARING) and (
            note := manager.note(job.job_id)
        ):
            why = f"{why}; {note}"
        raise InvalidInput(f"not playable yet ({why}); follow /jobs/{job.job_id}/events")
    view = film.view
    caps = capabilities_of(request.query, request.headers.get("User-Agent", ""))
    audio, burn = _stream_index(request, "audio"), _stream_index(request, "burn")

    expires = int(time.time()) + STREAM_URL_SECONDS
    if job.expires_at is not None:
        expires = min(expires, math.ceil(job.expires_at))
    query = f"?token={sign(app[CREDENTIALS].media_key(), job.job_id, expires)}"
    base = app[SETTINGS].server.base_path
    media_url = f"{base}media/{job.job_id}/{quote(view.name)}{query}"

    playback = app[PLAYBACK]
    facts = await playback.facts(job.job_id, view, film.source)
    preferences = await app[STORE].preferences.get_all()
    languages = [preferences["audio_language"]] if "audio_language" in preferences else []
    languages += app[SETTINGS].playback.audio_languages
    # [r2] serve: this browser gets the file itself from R2 (HLS stays Matinee's).
    presigned = await _r2_link(request, job)
    file_url, file_kind = media_url, "file" if job.status == Status.READY else "progressive"
    if presigned is not None:
        file_url, file_kind = presigned[0], "r2"
        expires = min(expires, int(presigned[1]))
        if film.remote:
            media_url = file_url  # /media has no local copy to serve
    if facts.info is None:
        # Not a film ffprobe can read (or not yet): the file as it is, saying so.
        return web.json_response(
            {
                "job_id": job.job_id,
                "url": file_url,
                "kind": file_kind,
                "plan": "direct",
                "reasons": [f"its streams could not be read ({facts.problem}): given as it is"],
                "description": view.name,
                "content_type": view.content_type,
                "size": view.size,
                "duration": None,
                "media_url": media_url,
                "audio_tracks": [],
                "subtitles": [],
                "preferences": preference_json(preferences),
                "expires_at": iso(expires),
            }
        )
    gone = ["read from R2: the local copy was deleted ([retention] local_hours)"]
    choice = choose(
        facts.info,
        caps,
        languages=languages,
        audio=audio,
        burn=burn,
        external=playback.external(job.job_id, Path(job.dir)),
    )
    subtitles: list[dict[str, Any]] = [
        {
            **track,
            "url": subtitle_path(base, job.job_id, track["id"]) + query
            if track["kind"] == "text"
            else None,
        }
        for track in choice.subtitles
    ]
    if choice.output is None:
        url, content_type, kind = file_url, view.content_type, file_kind
    else:
        url, content_type = hls_path(base, job.job_id, choice.output) + query, HLS_CONTENT_TYPE
        kind = "hls"
    return web.json_response(
        {
            "job_id": job.job_id,
            "url": url,
            "kind": kind,
            "plan": choice.kind,
            "reasons": (gone if film.remote else []) + list(choice.reasons),
            "description": choice.plan.description,
            "content_type": content_type,
            "size": view.size,
            "duration": facts.info.duration,
            "media_url": media_url,
            "audio_tracks": list(choice.audio),
            "subtitles": subtitles,
            "preferences": preference_json(preferences),
            "expires_at": iso(expires),
        }
    )


@routes.get("/preferences")
async def get_preferences(request: web.Request) -> web.Response:
    preferences = await request.config_dict[STORE].preferences.get_all()
    return web.json_response(preference_json(preferences))


@routes.put("/preferences")
async def put_preferences(request: web.Request) -> web.Response:
    changes = parse_preferences(await json_body(request))
    store = request.config_dict[STORE]
    for key in PREFERENCE_KEYS:
        if key in changes:
            await store.preferences.set(key, changes[key])
    return web.json_response(preference_json(await store.preferences.get_all()))
