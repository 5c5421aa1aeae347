"""A mirrored movie as R2 holds it, read-only: its name, size, type and ETag (from one HEAD)
and ranged reads through the mirror's S3 client. What ``server.playback`` reads a film's
index through once only R2 has it (ffmpeg and ffprobe get a presigned URL instead)."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import StorageError
from server.mirror.client import Client, R2Error, error_code, with_retries

#: How S3 stores say an object is not there (a HEAD has no body: only the status).
MISSING = frozenset({"404", "NoSuchKey"})
#: Tries of one read: ffprobe's reads come right after, so do not wait long for a dead store.
READ_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RemoteObject:
    client: Client
    bucket: str
    key: str
    name: str
    size: int
    content_type: str
    etag: str

    async def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)``, clamped to the object's end (as a MediaView)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        end = min(offset + length, self.size)
        if end <= offset:
            return b""

        async def get() -> bytes:
            answer = await self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={offset}-{end - 1}"
            )
            async with answer["Body"] as body:
                return bytes(await body.read())

        return await with_retries(get, "read the movie", attempts=READ_ATTEMPTS)


async def open_remote(client: Client, bucket: str, key: str, name: str) -> RemoteObject:
    """The object at ``key``, as R2 describes it now; a `StorageError` saying so when it is
    not there (a mirrored movie whose copy went missing has nowhere else to play from)."""
    try:
        head = await with_retries(
            lambda: client.head_object(Bucket=bucket, Key=key), "find the movie", attempts=2
        )
    except R2Error as exc:
        if error_code(exc.__cause__ or exc) in MISSING:
            raise StorageError(
                f"R2 does not have the movie ({key}) and its local copy was deleted:"
                " it cannot play any more"
            ) from None
        raise
    return RemoteObject(
        client,
        bucket,
        key,
        name,
        int(head["ContentLength"]),
        str(head.get("ContentType") or "application/octet-stream"),
        str(head.get("ETag") or ""),
    )
