"""Where a player gets a mirrored movie: from Matinee or from R2 (``[r2] serve``), and which
origin the pages must allow media from. Pure: the caller says whether the browser is on the
household's networks."""

from __future__ import annotations

from urllib.parse import urlsplit

from server.config.settings import R2Config
from server.jobs.lifecycle import MirrorState, Status
from server.store.jobs import Job


def plays_from_r2(job: Job, r2: R2Config, *, from_lan: bool) -> bool:
    """``local``: always Matinee (while its copy is there); ``r2``: R2 once mirrored; ``auto``:
    the household's networks from Matinee while the local copy is there, everyone else from
    R2, so the home uplink is not the bottleneck. Without a local copy, everyone from R2."""
    if not r2.enabled or job.status != Status.READY or job.mirror != MirrorState.MIRRORED:
        return False
    if not job.has_local:
        return True
    if r2.serve == "r2":
        return True
    if r2.serve == "auto":
        return not from_lan
    return False


def only_in_r2(job: Job, r2: R2Config) -> bool:
    """The local copy is gone and R2 has the film: ffmpeg and ffprobe read it from there."""
    return not job.has_local and plays_from_r2(job, r2, from_lan=True)


def media_origin(r2: R2Config) -> str | None:
    """The origin presigned links point at (for the pages' ``media-src``); None when off."""
    if not r2.enabled or not r2.endpoint:
        return None
    parts = urlsplit(r2.endpoint)
    host = parts.netloc if r2.path_style else f"{r2.bucket}.{parts.netloc}"
    return f"{parts.scheme}://{host}"
