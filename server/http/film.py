"""Where playback reads a job's film: the bytes (for its keyframe index) and the URL ffmpeg
and ffprobe read, whether the job has its local copy or only R2 has the film. ``/stream``
and ``/hls/...`` both ask here, so a film plans and plays the same from either place.

* Local: the job's ``MediaView`` and ``loopback_source``, Matinee's own media URL on the
  address the request reached, so ffmpeg's reads prioritise the download like a player's.
* R2 (``[retention] local_hours`` deleted the local copy): the object as one HEAD found it,
  read through the mirror's S3 client, and a presigned GET for ffmpeg, signed as long as an
  HLS session may live. Each request signs it again, so a restarted ffmpeg gets a fresh one.

Both URLs are credentials: ``without_urls`` takes them out of anything a person or the log
sees.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from nntp.media import MediaView
from server.errors import PlaybackError
from server.http.tokens import sign
from server.keys import CREDENTIALS, JOBS, MIRROR, SETTINGS
from server.mirror.remote import RemoteObject
from server.mirror.serve import only_in_r2
from server.store.jobs import Job

#: ffmpeg's URL outlives a player's (a long film, paused): sign it for a day.
SOURCE_SECONDS = 24 * 3600

_URL = re.compile(r"https?://[^/\s]+/[^\s:'\"]*")


@dataclass(frozen=True, slots=True)
class Film:
    view: MediaView | RemoteObject
    source: str  # what ffmpeg and ffprobe read
    remote: bool  # only R2 has it

    @property
    def background(self) -> str:
        """``source`` for a read that must not hurry the download (a presigned URL's query
        is signed: nothing may be added to it, and nothing is downloading anyway)."""
        return self.source if self.remote else f"{self.source}&background=1"


def loopback_source(request: web.Request, job_id: str, view: MediaView) -> str:
    """The movie's media URL on this server's own socket (the address the request reached),
    with a media token: what ffmpeg and ffprobe read."""
    app = request.config_dict
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if not sock:
        raise PlaybackError("the server's own address is unknown")
    host, port = sock[0], sock[1]
    if ":" in host:
        host = f"[{host}]"
    token = sign(app[CREDENTIALS].media_key(), job_id, int(time.time()) + SOURCE_SECONDS)
    base = app[SETTINGS].server.base_path
    return f"http://{host}:{port}{base}media/{job_id}/{quote(view.name)}?token={token}"


async def film_of(request: web.Request, job_id: str, *, job: Job | None = None) -> Film | None:
    """The job's film, local while the job has a view of it, else in R2 when only R2 has it;
    None when neither (not playable yet, or gone). ``job`` when the caller read it already
    (else it is read only when there is no local view)."""
    app = request.config_dict
    view = app[JOBS].view(job_id)
    if view is not None:
        return Film(view, loopback_source(request, job_id, view), remote=False)
    if job is None:
        job = await app[JOBS].get(job_id)
    if not only_in_r2(job, app[SETTINGS].r2):
        return None
    mirror = app[MIRROR]
    found = await mirror.remote(job)
    url, _ = await mirror.presign(job, seconds=SOURCE_SECONDS)
    return Film(found, url, remote=True)


def without_urls(message: str) -> str:
    """ffmpeg's or ffprobe's words without the URLs they read (a media token or a presigned
    R2 link is in each)."""
    return _URL.sub("the movie", message)
