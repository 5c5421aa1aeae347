"""The ``uploads`` and ``upload_parts`` tables: a multipart upload to R2 that is not finished
yet (its UploadId, the part size it was cut with, the file's sha256) and the parts R2
confirmed, so that a restart goes on where it stopped instead of sending them again."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.errors import NotFound

if TYPE_CHECKING:
    from server.store.db import Database


@dataclass(frozen=True, slots=True)
class Upload:
    job_id: str
    object_key: str
    upload_id: str
    size: int
    part_size: int
    sha256: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int


class UploadsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, job_id: str) -> Upload | None:
        rows = await self._db.rows("SELECT * FROM uploads WHERE job_id = ?", (job_id,))
        return Upload(**dict(rows[0])) if rows else None

    async def list(self) -> builtins.list[Upload]:
        rows = await self._db.rows("SELECT * FROM uploads ORDER BY started_at, job_id")
        return [Upload(**dict(row)) for row in rows]

    async def start(self, upload: Upload) -> Upload:
        """Remember a multipart upload R2 just created (one per job; a new one replaces an
        old one, whose parts go with it)."""
        async with self._db.write() as conn:
            if not await self._db.fetch(
                conn, "SELECT 1 FROM jobs WHERE job_id = ?", (upload.job_id,)
            ):
                raise NotFound(f"no job {upload.job_id}")
            await conn.execute("DELETE FROM uploads WHERE job_id = ?", (upload.job_id,))
            await conn.execute(
                "INSERT INTO uploads (job_id, object_key, upload_id, size, part_size, sha256,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    upload.job_id,
                    upload.object_key,
                    upload.upload_id,
                    upload.size,
                    upload.part_size,
                    upload.sha256,
                    upload.started_at,
                ),
            )
        return upload

    async def parts(self, job_id: str) -> dict[int, Part]:
        rows = await self._db.rows(
            "SELECT number, etag, size FROM upload_parts WHERE job_id = ? ORDER BY number",
            (job_id,),
        )
        return {row["number"]: Part(row["number"], row["etag"], row["size"]) for row in rows}

    async def add_part(self, job_id: str, part: Part) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                "INSERT INTO upload_parts (job_id, number, etag, size) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job_id, number) DO UPDATE"
                " SET etag = excluded.etag, size = excluded.size",
                (job_id, part.number, part.etag, part.size),
            )

    async def replace_parts(self, job_id: str, parts: builtins.list[Part]) -> None:
        """What R2 says it holds (ListParts) becomes what we remember."""
        async with self._db.write() as conn:
            await conn.execute("DELETE FROM upload_parts WHERE job_id = ?", (job_id,))
            await conn.executemany(
                "INSERT INTO upload_parts (job_id, number, etag, size) VALUES (?, ?, ?, ?)",
                [(job_id, p.number, p.etag, p.size) for p in parts],
            )

    async def finish(self, job_id: str) -> None:
        """Completed or aborted: nothing left to resume."""
        async with self._db.write() as conn:
            await conn.execute("DELETE FROM uploads WHERE job_id = ?", (job_id,))
