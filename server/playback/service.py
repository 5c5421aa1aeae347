"""Playback for browsers: what each job's film holds (probed once), the HLS sessions that make
it playable where the file itself is not, and the subtitle files beside it.

``Playback`` owns a ``transcode.sessions.HlsSessions`` (bounded by ``[transcode]
max_sessions``, idle ones stopped), started and closed by the cleanup context in ``setup``.
Sessions are keyed by job and output (``job_..-v0c.a1t2``) and stopped with their job. Every
ffmpeg and ffprobe reads the film at the URL the HTTP layer hands in as ``source``: Matinee's
own loopback media URL (a read of bytes not yet downloaded moves them to the front of the
download exactly as a player's read does), or a presigned URL once only R2 has the film.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from nntp.media import wait_size
from server.config.settings import Settings, TranscodeConfig
from server.errors import NotFound, PlaybackError
from server.jobs.manager import JobManager
from server.keys import JOBS, PLAYBACK, SETTINGS
from server.playback.outputs import BadOutput, parse_output
from server.playback.subtitles import (
    ExternalSubtitle,
    external_subtitles,
    kept_subtitles,
)
from transcode.argv import HardwareEncoder, VideoEncoder
from transcode.hardware import choose_encoder
from transcode.keyframes import read_keyframes
from transcode.probe import MediaInfo, ProbeError, probe
from transcode.session import HlsSession
from transcode.sessions import HlsSessions
from transcode.subtitles import SubtitleError, decode_subtitle_file, srt_to_webvtt

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 30.0
HLS_DIR = "hls"  # under the data dir: the sessions' segments, removed with each session


class FilmBytes(Protocol):
    """What a film's keyframe index is read through: the job's ``MediaView`` while it has a
    local copy, or its object in R2 (``server.mirror.remote``) once only R2 has it."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    async def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Facts:
    """What one version of a job's film holds: ffprobe's view and the keyframe index, or
    why ffprobe could not tell (``info`` None: the file is offered as it is)."""

    identity: tuple[str, int]  # the view's name and size: a new release is a new film
    info: MediaInfo | None
    keyframes: tuple[float, ...] | None
    problem: str | None = None

    def readable(self) -> MediaInfo:
        if self.info is None:
            raise PlaybackError(f"the movie cannot be converted: {self.problem}")
        return self.info


class Playback:
    def __init__(self, settings: Settings, jobs: JobManager) -> None:
        self.settings = settings
        self.jobs = jobs
        config = settings.transcode
        self.sessions = HlsSessions(
            settings.server.data_dir / HLS_DIR,
            max_sessions=config.max_sessions,
            idle_timeout=config.idle_seconds,
        )
        self._facts: dict[str, Facts] = {}
        self._probing: dict[str, asyncio.Lock] = {}
        self._encoder: VideoEncoder | None = None
        self.encoder_note: str | None = None  # why a configured hardware encoder is not used

    async def start(self) -> None:
        await self.sessions.start()

    async def close(self) -> None:
        await self.sessions.close()

    # -- the film ----------------------------------------------------------------------

    async def facts(self, job_id: str, view: FilmBytes, source: str) -> Facts:
        """Probe the film once per job and version (the view's name and size)."""
        identity = (view.name, view.size)
        known = self._facts.get(job_id)
        if known is not None and known.identity == identity:
            return known
        lock = self._probing.setdefault(job_id, asyncio.Lock())
        async with lock:
            known = self._facts.get(job_id)
            if known is not None and known.identity == identity:
                return known
            try:
                info = await probe(source, timeout=PROBE_TIMEOUT)
            except ProbeError as exc:
                problem = _without_url(str(exc), source).removeprefix("cannot probe the movie: ")
                log.warning("job %s: %s", job_id, problem)
                facts = Facts(identity, None, None, problem)
            else:
                index = await read_keyframes(view.read, view.size, info.container)
                facts = Facts(identity, info, index.times if index is not None else None)
                log.info(
                    "job %s: %s, %s keyframes", job_id, info.container,
                    len(facts.keyframes) if facts.keyframes else "no",
                )  # fmt: skip
            self._facts[job_id] = facts
            return facts

    # -- HLS -----------------------------------------------------------------------------

    async def session(self, job_id: str, output: str, view: FilmBytes, source: str) -> HlsSession:
        """The session making ``output`` of the job's film, made (again) when there is none."""
        facts = await self.facts(job_id, view, source)
        encoder = await self.encoder()
        try:
            hls_output = parse_output(output, facts.readable(), encoder)
        except BadOutput as exc:
            raise NotFound(f"no stream {output!r} for job {job_id}: {exc}") from None

        kind = "copy" if hls_output.copy_video else "transcode"
        speed = self.jobs.metrics.hls_speed.labels(kind).observe

        async def make(directory: Path) -> HlsSession:
            return HlsSession(
                source,
                hls_output,
                directory,
                keyframes=facts.keyframes,
                duration=facts.readable().duration,
                on_speed=speed,
            )

        session = await self.sessions.open(f"{job_id}-{output}", make)
        # The movie's URL changes when the job becomes ready (a joined or renamed file), and
        # a presigned one expires: a restarted ffmpeg must read the current one.
        session.source = source
        return session

    async def stop_job(self, job_id: str) -> None:
        """Stop every session of a job (its files are gone) and forget its film."""
        await self.sessions.stop_matching(f"{job_id}-")
        self._facts.pop(job_id, None)
        self._probing.pop(job_id, None)

    async def encoder(self) -> VideoEncoder:
        """libx264 with the configured preset, or the configured hardware encoder once a test
        encode showed it works here (checked once)."""
        if self._encoder is None:
            self._encoder, self.encoder_note = await pick_encoder(self.settings.transcode)
            if self.encoder_note:
                log.warning("transcode: %s", self.encoder_note)
        return self._encoder

    # -- subtitle files ------------------------------------------------------------------

    def external(self, job_id: str, job_dir: Path) -> list[ExternalSubtitle]:
        """Subtitle files of the release: among the download's files while it runs (whole
        ones only), else those the ready job kept."""
        download = self.jobs.download(job_id)
        if download is not None:
            files = [(f.name, f.path) for f in download.files if f.selected]
            return external_subtitles(files)
        return external_subtitles(kept_subtitles(job_dir))

    async def external_webvtt(self, job_id: str, job_dir: Path, track: str) -> str:
        """An external subtitle file as WebVTT, waiting for its bytes if it is downloading."""
        found = {s.id: s for s in self.external(job_id, job_dir)}.get(track)
        if found is None:
            raise NotFound(f"job {job_id} has no subtitle file {track}")
        download = self.jobs.download(job_id)
        if download is not None:
            task = next((f for f in download.files if f.path == found.path), None)
            if task is not None and not task.complete:
                size = await wait_size(download, task.index)
                await download.wait_range(task.index, 0, size)
        try:
            data = await asyncio.to_thread(found.path.read_bytes)
            return srt_to_webvtt(decode_subtitle_file(data))
        except (OSError, SubtitleError) as exc:
            raise PlaybackError(f"subtitle file {found.name} cannot be read: {exc}") from None


def _without_url(message: str, source: str) -> str:
    """ffprobe's complaint without the URL it read (a media token or a presigned link)."""
    return message.replace(source, "the movie")


async def _playback_ctx(app: web.Application) -> AsyncIterator[None]:
    playback = Playback(app[SETTINGS], app[JOBS])
    await playback.start()
    app[PLAYBACK] = playback
    app[JOBS].on_files_gone.append(playback.stop_job)
    try:
        yield
    finally:
        await playback.close()


async def _stop_sessions(app: web.Application) -> None:
    # At shutdown, before the server waits for its requests: ffmpeg's own reads of a film
    # still downloading would otherwise hold it up until their bytes arrive.
    if PLAYBACK in app:
        await app[PLAYBACK].sessions.close()


async def pick_encoder(config: TranscodeConfig) -> tuple[VideoEncoder, str | None]:
    """The configured hardware encoder when a test encode works here, else libx264 with the
    configured preset and threads; and why the hardware one is not used."""
    hardware: HardwareEncoder | None = config.hardware  # type: ignore[assignment]
    chosen, why = await choose_encoder(hardware, device=config.device)
    if chosen.hardware is None:
        chosen = VideoEncoder(preset=config.preset, threads=config.threads)
    return chosen, why


def setup(app: web.Application) -> None:
    """HLS sessions and probes; after the job runners, whose films they read."""
    app.cleanup_ctx.append(_playback_ctx)
    app.on_shutdown.append(_stop_sessions)
