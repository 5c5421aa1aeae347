"""One file to R2 as a multipart upload: resumable, bounded in memory and in concurrency, and
checked at the end.

* The part size makes the file fit in 10 000 parts (at least 8 MiB); ``concurrency`` parts
  are in flight at once, each read from disk when its turn comes, so memory holds at most
  ``concurrency`` parts whatever the file's size.
* The UploadId is stored before the first part is sent and each part R2 confirms is stored
  as it comes back. After a restart (or a ``kill -9``) the upload goes on: ``ListParts``
  says what R2 holds, and only the other parts are sent. An upload R2 no longer knows is
  started again; one that cannot go on (the file changed) is aborted.
* The file's SHA-256 goes into the object's metadata; after ``CompleteMultipartUpload`` a
  ``HEAD`` checks size and digest, so "mirrored" means the bytes are there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.mirror.client import Client, R2Error, error_code, with_retries
from server.mirror.parts import (
    Pieces,
    part_count,
    part_size,
    part_span,
    part_with_md5,
    sha256_of,
)
from server.store.db import Store
from server.store.uploads import Part, Upload

log = logging.getLogger(__name__)

LIST_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Target:
    """What to upload where: a job's movie file and its object."""

    job_id: str
    pieces: Pieces  # where its bytes lie on disk (one file, or RAR volumes read in place)
    size: int
    key: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Done:
    key: str
    size: int
    sha256: str
    parts_sent: int  # by this run (a resumed upload sends fewer than the file has)


class Uploader:
    def __init__(
        self,
        client: Client,
        bucket: str,
        store: Store,
        *,
        concurrency: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.store = store
        self.concurrency = max(1, concurrency)
        self.clock = clock

    async def upload(self, target: Target, progress: Callable[[int], Awaitable[None]]) -> Done:
        """Upload (or go on uploading) ``target``; ``progress(bytes in R2)`` as parts land."""
        upload, held = await self._resume_or_start(target)
        parts = dict(held)
        await progress(sum(p.size for p in parts.values()))
        todo = [
            n for n in range(1, part_count(target.size, upload.part_size) + 1) if n not in parts
        ]
        sent = await self._send_parts(target, upload, todo, parts, progress)
        await with_retries(
            lambda: self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target.key,
                UploadId=upload.upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": parts[n].etag} for n in sorted(parts)]
                },
            ),
            "complete the upload",
        )
        await self.store.uploads.finish(target.job_id)
        await self._check(target, upload.sha256)
        return Done(target.key, target.size, upload.sha256, sent)

    async def abort(self, job_id: str) -> None:
        """Abort the job's unfinished upload, if any, so R2 keeps no orphan parts."""
        upload = await self.store.uploads.get(job_id)
        if upload is None:
            return
        await self.abort_upload(upload.object_key, upload.upload_id)
        await self.store.uploads.finish(job_id)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            await with_retries(
                lambda: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ),
                "abort an unfinished upload",
            )
        except R2Error as exc:
            if error_code(exc.__cause__ or exc) != "NoSuchUpload":
                raise

    # -- the steps ---------------------------------------------------------------------
    async def _resume_or_start(self, target: Target) -> tuple[Upload, dict[int, Part]]:
        old = await self.store.uploads.get(target.job_id)
        if old is not None:
            if old.object_key == target.key and old.size == target.size:
                held = await self._listed_parts(old, target)
                if held is not None:
                    log.info(
                        "R2: going on with the upload of %s (%d parts already there)",
                        target.key,
                        len(held),
                    )
                    return old, held
            else:  # the file is not what was being uploaded: that upload cannot go on
                await self.abort_upload(old.object_key, old.upload_id)
        digest = await asyncio.to_thread(sha256_of, target.pieces, target.size)
        answer = await with_retries(
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=target.key,
                ContentType=target.content_type,
                Metadata={"sha256": digest},
            ),
            "start an upload",
        )
        upload = Upload(
            job_id=target.job_id,
            object_key=target.key,
            upload_id=str(answer["UploadId"]),
            size=target.size,
            part_size=part_size(target.size),
            sha256=digest,
            started_at=self.clock(),
        )
        await self.store.uploads.start(upload)
        return upload, {}

    async def _listed_parts(self, upload: Upload, target: Target) -> dict[int, Part] | None:
        """The parts R2 holds of ``upload`` (those of the right size); None when R2 no longer
        knows the upload (it expired, or was aborted): it starts again."""
        held: dict[int, Part] = {}
        marker = 0
        while True:
            try:
                page = await with_retries(
                    lambda m=marker: self.client.list_parts(  # type: ignore[misc]
                        Bucket=self.bucket,
                        Key=upload.object_key,
                        UploadId=upload.upload_id,
                        MaxParts=LIST_PAGE,
                        PartNumberMarker=m,
                    ),
                    "list the parts of an unfinished upload",
                )
            except R2Error as exc:
                if error_code(exc.__cause__ or exc) == "NoSuchUpload":
                    log.info("R2: the upload of %s is gone; starting again", upload.object_key)
                    await self.store.uploads.finish(upload.job_id)
                    return None
                raise
            for item in page.get("Parts", []):
                number, size = int(item["PartNumber"]), int(item["Size"])
                if size == part_span(number, target.size, upload.part_size)[1]:
                    held[number] = Part(number, str(item["ETag"]), size)
            if not page.get("IsTruncated"):
                break
            marker = int(page["NextPartNumberMarker"])
        await self.store.uploads.replace_parts(upload.job_id, list(held.values()))
        return held

    async def _send_parts(
        self,
        target: Target,
        upload: Upload,
        todo: list[int],
        parts: dict[int, Part],
        progress: Callable[[int], Awaitable[None]],
    ) -> int:
        """Send the parts in ``todo``, ``concurrency`` at a time; returns how many."""
        queue = list(reversed(todo))
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while queue:
                part = await self._send_part(target, upload, queue.pop())
                await self.store.uploads.add_part(target.job_id, part)
                parts[part.number] = part
                sent += 1
                await progress(sum(p.size for p in parts.values()))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(todo))):
                    group.create_task(worker())
        except ExceptionGroup as failed:  # the first failure stopped the others: say it
            raise failed.exceptions[0] from None
        return sent

    async def _send_part(self, target: Target, upload: Upload, number: int) -> Part:
        """One part, read from disk now (the bytes live only while it is sent)."""
        data, md5 = await asyncio.to_thread(
            part_with_md5, target.pieces, number, target.size, upload.part_size
        )
        answer = await with_retries(
            lambda: self.client.upload_part(
                Bucket=self.bucket,
                Key=target.key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=data,
                ContentLength=len(data),
                ContentMD5=md5,
            ),
            f"upload part {number}",
        )
        return Part(number, str(answer["ETag"]), len(data))

    async def _check(self, target: Target, digest: str) -> None:
        head = await with_retries(
            lambda: self.client.head_object(Bucket=self.bucket, Key=target.key),
            "check the uploaded file",
        )
        stored = (head.get("Metadata") or {}).get("sha256")
        length = int(head.get("ContentLength", -1))
        if stored != digest or length != target.size:
            raise R2Error(
                f"the copy in R2 does not match the file ({length} of {target.size} bytes,"
                f" sha256 {'matches' if stored == digest else 'differs'})",
                permanent=True,
            )
