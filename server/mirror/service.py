"""The mirror: ready movies uploaded to R2, their objects deleted with their jobs, presigned
links to play them from R2, and the start-up sweep of what an earlier run left behind.

One `Mirror` per app, made by the cleanup context in ``server.mirror.setup``, which owns the
S3 client (in an AsyncExitStack) and every upload task. Uploads run one file at a time (its
parts ``[r2] concurrency`` at a time); each is an owned task, cancelled when its job is
deleted or the app stops, and resumed from the store at the next start.

A failure never loses the local copy: the job stays ready and plays from disk, its
``mirror`` says ``failed`` with the reason, its history has the event, and a permanent one
(credentials, no bucket) is what the Status page shows as R2's problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from server.config.settings import Settings
from server.errors import StorageError
from server.jobs.lifecycle import MirrorState, Status
from server.jobs.manager import JobManager
from server.metrics import Metrics
from server.mirror.client import Client, R2Error, probe_bucket, with_retries
from server.mirror.parts import PREFIX, job_of_key, job_prefix, object_key
from server.mirror.remote import RemoteObject, open_remote
from server.mirror.upload import Target, Uploader
from server.store.db import Store
from server.store.jobs import Job

log = logging.getLogger(__name__)

#: Seconds between two progress writes of one upload (each part's completion would be many).
PROGRESS_EVERY = 0.5
#: The longest a SigV4 presigned URL may live (R2 and S3 refuse longer).
PRESIGN_MAX = 7 * 24 * 3600
DELETE_BATCH = 1000


class Mirror:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        jobs: JobManager,
        metrics: Metrics,
        client: Client | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.r2 = settings.r2
        self.store = store
        self.jobs = jobs
        self.metrics = metrics
        self.client: Client = client  # None when R2 is off
        self.clock = clock
        self.bucket = settings.r2.bucket or ""
        self.uploader = (
            Uploader(client, self.bucket, store, concurrency=settings.r2.concurrency, clock=clock)
            if client is not None
            else None
        )
        #: The last permanent failure in words (bad credentials, no bucket): the Status page.
        self.problem: str | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Objects played from R2, as one HEAD found them (dropped with the job's copy).
        self._remote: dict[str, RemoteObject] = {}
        self._slot = asyncio.Semaphore(1)  # one file at a time; its parts run side by side
        #: Room in the bucket for (job id, bytes) ([r2] max_gb): ``server.mirror.space``'s.
        self.make_room: Callable[[str, int], Awaitable[None]] | None = None

    @property
    def enabled(self) -> bool:
        return self.uploader is not None

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.jobs.listeners.append(self._on_change)
        self.jobs.on_delete.append(self.forget)
        if not self.enabled:
            return
        try:
            await self.sweep()
        except StorageError as exc:
            log.warning("R2: the start-up sweep failed: %s", exc.message)
            self._permanent(exc)
        for job in await self.store.jobs.unmirrored():
            self.enqueue(job.job_id)
        for job in await self.store.jobs.list(Status.READY):
            if job.mirror == MirrorState.FAILED and job.has_local:
                self.enqueue(job.job_id)  # a restart is when a fixed configuration shows

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ValueError):
            self.jobs.listeners.remove(self._on_change)
        with contextlib.suppress(ValueError):
            self.jobs.on_delete.remove(self.forget)

    # -- uploads -----------------------------------------------------------------------
    def _on_change(self, job: Job) -> None:
        if (
            self.enabled
            and job.status == Status.READY
            and job.mirror in (None, MirrorState.PENDING)
            and job.has_local
            and job.media_name
        ):
            self.enqueue(job.job_id)

    def enqueue(self, job_id: str) -> None:
        """Upload the job's movie (or go on uploading it), unless that is under way."""
        if job_id not in self._tasks:
            self._tasks[job_id] = asyncio.create_task(self._mirror(job_id), name=f"mirror {job_id}")

    async def idle(self) -> None:
        """Until no upload is running (for tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _mirror(self, job_id: str) -> None:
        try:
            job = await self.store.jobs.get(job_id)
            if job is None or job.status != Status.READY or not job.has_local:
                return
            if job.mirror not in (MirrorState.PENDING, MirrorState.MIRRORING):
                self.jobs.publish(await self.store.jobs.mirror_pending(job_id))
            async with self._slot:
                await self._upload(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("R2: the upload of %s failed", job_id)
            with contextlib.suppress(Exception):
                await self._failed(job_id, "internal error; the server log has the details")
        finally:
            self._tasks.pop(job_id, None)

    async def _upload(self, job: Job) -> None:
        assert self.uploader is not None and job.media_name is not None
        job_id = job.job_id
        size = job.media_size or 0
        try:
            if self.make_room is not None:
                await self.make_room(job_id, size)
        except StorageError as exc:
            await self._failed(job_id, exc.message)
            return
        view = self.jobs.view(job_id)
        if view is None or view.size != size:
            await self._failed(job_id, "the local copy cannot be read")
            return
        target = Target(
            job_id=job_id,
            pieces=view.pieces,
            size=size,
            key=object_key(job_id, job.media_name),
            content_type=job.content_type or "application/octet-stream",
        )
        seen: int | None = None
        written = 0.0

        async def progress(total: int) -> None:
            nonlocal seen, written
            if seen is not None and total > seen:
                self.metrics.mirror_bytes.inc(total - seen)
            seen = total
            now = time.monotonic()
            if now - written >= PROGRESS_EVERY:
                written = now
                self.jobs.publish(await self.store.jobs.mirror_progress(job_id, total))

        if job.mirror != MirrorState.MIRRORING:
            await self.store.events.add(job_id, "mirroring", f"uploading {job.media_name} to R2")
        try:
            done = await self.uploader.upload(target, progress)
        except R2Error as exc:
            self.metrics.mirror_uploads.labels(outcome="failed").inc()
            if exc.permanent:
                self._permanent(exc)
            await self._failed(job_id, exc.message)
            return
        except OSError as exc:  # the local file is gone or unreadable: that upload is over
            self.metrics.mirror_uploads.labels(outcome="failed").inc()
            with contextlib.suppress(StorageError):
                await self.uploader.abort(job_id)
            await self._failed(job_id, f"cannot read {job.media_name}: {exc.strerror or exc}")
            return
        now = self.clock()
        local = now + self.settings.retention.local_hours * 3600
        self.jobs.publish(
            await self.store.jobs.mark_mirrored(job_id, at=now, size=size, local_expires_at=local)
        )
        self.metrics.mirror_uploads.labels(outcome="ok").inc()
        self.problem = None
        await self.store.events.add(
            job_id,
            "mirrored",
            f"in R2 ({size / 1e9:.2f} GB, sha256 checked"
            + (f"; {done.parts_sent} parts sent by this run" if done.parts_sent else "")
            + ")",
            {"key": done.key, "sha256": done.sha256, "parts_sent": str(done.parts_sent)},
        )

    async def _failed(self, job_id: str, message: str) -> None:
        log.warning("R2: %s: %s", job_id, message)
        self.jobs.publish(await self.store.jobs.mirror_failed(job_id, message))
        await self.store.events.add(job_id, "mirror_failed", f"{message}; the local copy stays")

    def _permanent(self, exc: StorageError) -> None:
        self.problem = exc.message

    # -- deleting ----------------------------------------------------------------------
    async def forget(self, job_id: str) -> None:
        """Before a job is deleted: its upload stops and is aborted, its objects deleted. A
        failure is written down and the start-up sweep tries again; it never keeps the job."""
        self._remote.pop(job_id, None)
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not self.enabled:
            return
        try:
            await self.remove_objects(job_id)
        except StorageError as exc:
            log.warning("R2: cannot delete the copy of %s: %s", job_id, exc.message)
            with contextlib.suppress(Exception):
                await self.store.events.add(
                    job_id,
                    "mirror_failed",
                    f"{exc.message}; the next start tries to delete it again",
                )

    async def remove_objects(self, job_id: str) -> None:
        """Abort the job's unfinished upload and delete its objects in R2."""
        assert self.uploader is not None
        await self.uploader.abort(job_id)
        await self._delete_prefix(job_prefix(job_id))

    async def remove_remote(self, job: Job, why: str) -> Job:
        """The job's copy in R2 goes (room for another); the job plays from disk."""
        self._remote.pop(job.job_id, None)
        await self.remove_objects(job.job_id)
        job = self.jobs.publish(await self.store.jobs.mirror_removed(job.job_id))
        await self.store.events.add(job.job_id, "mirror_removed", why)
        return job

    async def _delete_prefix(self, prefix: str) -> None:
        client = self.client
        keys = await self._keys(prefix)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            await with_retries(
                lambda b=batch: client.delete_objects(  # type: ignore[misc]
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in b], "Quiet": True},
                ),
                "delete a movie",
            )

    async def _keys(self, prefix: str) -> list[str]:
        client = self.client
        keys: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await with_retries(
                lambda e=extra: client.list_objects_v2(  # type: ignore[misc]
                    Bucket=self.bucket, Prefix=prefix, **e
                ),
                "list the bucket",
            )
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            token = str(page["NextContinuationToken"])

    async def sweep(self) -> tuple[int, int]:
        """What an earlier run left under Matinee's prefix: unfinished uploads nobody will go
        on with are aborted, objects of jobs that are gone deleted. (aborted, deleted)"""
        assert self.uploader is not None
        client = self.client
        ours = {u.upload_id for u in await self.store.uploads.list()}
        aborted = 0
        key_marker, id_marker = "", ""
        while True:
            page = await with_retries(
                lambda k=key_marker, i=id_marker: client.list_multipart_uploads(  # type: ignore[misc]
                    Bucket=self.bucket,
                    Prefix=PREFIX,
                    **({"KeyMarker": k, "UploadIdMarker": i} if k else {}),
                ),
                "list unfinished uploads",
            )
            for item in page.get("Uploads", []):
                if item["UploadId"] not in ours:
                    await self.uploader.abort_upload(str(item["Key"]), str(item["UploadId"]))
                    aborted += 1
            if not page.get("IsTruncated"):
                break
            key_marker = str(page.get("NextKeyMarker") or "")
            id_marker = str(page.get("NextUploadIdMarker") or "")
            if not key_marker:
                break
        deleted = 0
        gone: set[str] = set()
        for key in await self._keys(PREFIX):
            job_id = job_of_key(key)
            if job_id is None or job_id in gone:
                continue
            job = await self.store.jobs.get(job_id)
            if job is None or job.status == Status.DELETED or job.mirror is None:
                gone.add(job_id)
        for job_id in gone:
            await self._delete_prefix(job_prefix(job_id))
            deleted += 1
        if aborted or deleted:
            log.info("R2: aborted %d stale uploads, deleted %d movies' leftovers", aborted, deleted)
        return aborted, deleted

    async def probe(self) -> str | None:
        """None when the bucket answers (HEAD), else the problem in words."""
        return await probe_bucket(self.client, self.bucket)

    # -- playing from R2 ---------------------------------------------------------------
    async def presign(self, job: Job, *, seconds: float | None = None) -> tuple[str, float]:
        """A GET URL for the job's object, valid [r2] presign_seconds or ``seconds`` (ffmpeg's
        reads outlive a browser's link), never past the job's own end nor R2's limit; the
        browser gets the type, a file name and ``no-store`` with the bytes."""
        assert self.client is not None and job.media_name is not None
        now = self.clock()
        expires = now + min(seconds or self.r2.presign_seconds, PRESIGN_MAX)
        if job.deletes_at is not None:
            expires = max(now + 60, min(expires, job.deletes_at))
        name = job.media_name
        url = await self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": object_key(job.job_id, name),
                "ResponseContentType": job.content_type or "application/octet-stream",
                "ResponseCacheControl": "no-store",
                "ResponseContentDisposition": f"inline; filename*=UTF-8''{quote(name)}",
            },
            ExpiresIn=int(expires - now),
        )
        return str(url), expires

    async def remote(self, job: Job) -> RemoteObject:
        """The job's object in R2 to read from (its index, for playback), found once."""
        assert self.client is not None and job.media_name is not None
        found = self._remote.get(job.job_id)
        if found is None or found.name != job.media_name:
            key = object_key(job.job_id, job.media_name)
            found = await open_remote(self.client, self.bucket, key, job.media_name)
            self._remote[job.job_id] = found
        return found
