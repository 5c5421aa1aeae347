"""Which file of a job is the movie, how it is read while downloading, and how it becomes
one plain file once the download is done (joined from store-mode RAR volumes, or
extracted from a compressed archive)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nntp.download import Download
from nntp.media import (
    FileView,
    MediaView,
    Piece,
    RarNotStreamable,
    content_type_for,
    make_etag,
    open_file_view,
    open_rar_view,
    sniff,
)
from nntp.names import safe_filename
from nntp.pick import classify, resolve_layout
from nntp.rar import RarEntry, RarError, VolumeScanner, assemble, volume_order
from server.jobs.lifecycle import MediaKind
from server.store.jobs import Job
from transcode.process import ProcessError, run

log = logging.getLogger(__name__)

# Bytes at each end of the video that must be on disk before playback may start: the
# container's header, and the MP4 moov / MKV cues that usually sit at the end.
HEAD_BYTES = 1024 * 1024
TAIL_BYTES = 1024 * 1024
VIDEO_KINDS = {"mkv", "webm", "mp4", "mov", "ts", "avi", "wmv"}
VIDEO_EXTENSIONS = {"mkv", "webm", "mp4", "m4v", "mov", "ts", "m2ts", "avi", "wmv", "mpg", "mpeg"}
SKIP_SUFFIXES = (".par2", ".nfo", ".sfv", ".nzb", ".txt", ".jpg", ".png", ".srt", ".json")
EXTRACT_TIMEOUT = 6 * 3600.0


@dataclass(frozen=True)
class MediaPlan:
    view: MediaView | None
    kind: MediaKind | None
    reason: str


@dataclass(frozen=True)
class Prepared:
    view: MediaView
    reason: str


class MediaError(Exception):
    """The post holds no playable movie; the message says why in a person's words."""


class StaticView:
    """A finished movie: one complete file on disk."""

    def __init__(self, path: Path, *, etag_seed: str, content_type: str | None = None) -> None:
        self.path = path
        self._size = path.stat().st_size
        self._name = path.name
        if content_type is None:
            with path.open("rb") as f:
                content_type = content_type_for(path.name, f.read(16384))
        self._content_type = content_type
        self._etag = make_etag(etag_seed, "ready", path.name, size=self._size)

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    @property
    def content_type(self) -> str:
        return self._content_type

    @property
    def etag(self) -> str:
        return self._etag

    def pieces(self, offset: int, length: int) -> list[Piece]:
        end = min(self._size, offset + length)
        return [Piece(str(self.path), offset, end - offset)] if end > offset else []

    def available(self, offset: int) -> int:
        return max(0, self._size - offset)

    async def wait(self, offset: int, end: int) -> None:
        return None

    def prioritise(self, offset: int, end: int) -> _Noop:
        return _noop

    async def read(self, offset: int, length: int) -> bytes:
        def pread() -> bytes:
            with self.path.open("rb") as f:
                f.seek(offset)
                return f.read(max(0, min(length, self._size - offset)))

        return await asyncio.to_thread(pread)


class _Noop:
    def __call__(self) -> None:
        return None


_noop = _Noop()


def static_view(job: Job) -> StaticView | None:
    """The view of a ready job, from its row (after a restart)."""
    if not job.media_name:
        return None
    path = Path(job.dir) / job.media_name
    if not path.is_file():
        return None
    return StaticView(path, etag_seed=job.job_id, content_type=job.content_type)


async def find_media(dl: Download, job_id: str) -> MediaPlan:
    """Find the movie in a running download and return a view once its ends are on disk."""
    layout = await resolve_layout(dl, classify(dl.nzb))
    if layout.kind == "video":
        index = layout.main[0]
        view: MediaView = await open_file_view(dl, index, etag_seed=job_id, name=layout.name)
        await _wait_ends(dl, [index], view.size)
        return MediaPlan(view, MediaKind.FILE, f"{view.name} plays while it downloads")
    if layout.kind == "rar":
        opened = await open_rar_view(dl, layout.main, etag_seed=job_id)
        if isinstance(opened, RarNotStreamable):
            return MediaPlan(
                None,
                None,
                f"the archive is {opened.reason}: it plays once downloaded and extracted",
            )
        await _wait_rar_ends(dl, opened)
        return MediaPlan(
            opened, MediaKind.RAR, f"{opened.name} plays from the RAR volumes while they download"
        )
    return MediaPlan(None, None, "no video file was found in this post")


def needs_tail(head: bytes) -> bool:
    """False when the head already holds what a player needs to start: an MP4/MOV whose
    ``moov`` box comes before ``mdat`` (a "faststart" file). Other containers keep their
    index (MKV cues, a late moov) at the end."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return True
    pos = 0
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos : pos + 4], "big")
        kind = head[pos + 4 : pos + 8]
        if kind == b"moov":
            return False
        if kind == b"mdat":
            return True
        if size == 1 and pos + 16 <= len(head):
            size = int.from_bytes(head[pos + 8 : pos + 16], "big")
        if size < 8:
            return True  # to the end of the file, or damaged: be safe
        pos += size
    return True


async def _wait_ends(dl: Download, indexes: Sequence[int], size: int) -> None:
    index = indexes[0]
    head = min(size, HEAD_BYTES)
    await dl.wait_range(index, 0, head, readahead=0)
    if size > head:
        first = await asyncio.to_thread(_read_head, dl.files[index].path, head)
        if needs_tail(first):
            await dl.wait_range(index, max(head, size - TAIL_BYTES), size, readahead=0)


def _read_head(path: Path, length: int) -> bytes:
    with path.open("rb") as f:
        return f.read(length)


async def _wait_rar_ends(dl: Download, view: MediaView) -> None:
    # The view's own wait maps media offsets to volume pieces and prioritises them.
    head = min(view.size, HEAD_BYTES)
    await view.wait(0, head)
    if view.size > head:
        await view.wait(max(head, view.size - TAIL_BYTES), view.size)


async def prepare_media(files_dir: Path, job: Job, *, password: str | None = None) -> Prepared:
    """Turn a finished download into one movie file in the job's folder."""
    job_dir = Path(job.dir)
    files = await asyncio.to_thread(_list_files, files_dir)
    videos, rars = await asyncio.to_thread(_sort_by_content, files)
    if videos:
        movie = max(videos, key=lambda p: p.stat().st_size)
        final = await asyncio.to_thread(_move_into, movie, job_dir)
        reason = f"{final.name} is ready"
    elif rars:
        final, reason = await _from_archive(rars, files_dir, job_dir, password)
    else:
        raise MediaError("the download holds no video file")
    await asyncio.to_thread(_keep_subtitles, files_dir, job_dir)
    await asyncio.to_thread(shutil.rmtree, files_dir, True)
    return Prepared(StaticView(final, etag_seed=job.job_id), reason)


SUBTITLES_DIR = "subtitles"  # subtitle files of the release, kept for the player


def _keep_subtitles(files_dir: Path, job_dir: Path) -> None:
    """Move the release's .srt files (plain files, safe names) to ``job_dir/subtitles``."""
    kept = job_dir / SUBTITLES_DIR
    for p in sorted(files_dir.iterdir()):
        name = safe_filename(p.name)
        if name and name.lower().endswith(".srt") and p.is_file() and not p.is_symlink():
            kept.mkdir(exist_ok=True)
            os.replace(p, kept / name)


def _list_files(files_dir: Path) -> list[Path]:
    return [
        p
        for p in sorted(files_dir.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.lower().endswith(SKIP_SUFFIXES)
    ]


def _sort_by_content(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(videos, RAR volumes): by magic bytes first; by extension for containers the
    sniffer does not know."""
    videos, by_name, rars = [], [], []
    for p in files:
        with p.open("rb") as f:
            kind = sniff(f.read(16384))
        if "sample" in p.name.lower():
            continue
        if kind in VIDEO_KINDS:
            videos.append(p)
        elif kind == "rar" or (kind is None and _looks_like_volume(p.name)):
            rars.append(p)
        elif kind is None and p.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS:
            by_name.append(p)
    return videos or by_name, rars


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def _looks_like_volume(name: str) -> bool:
    # Later RAR4 volumes start with the signature too, but .r00-style names help when not.
    lower = name.lower()
    return lower.endswith(".rar") or (len(lower) > 4 and lower[-4] == "." and lower[-3] == "r")


def _move_into(src: Path, job_dir: Path) -> Path:
    name = safe_filename(src.name) or "movie.bin"
    dst = job_dir / name
    os.replace(src, dst)
    return dst


def _scan(path: Path) -> object:
    size = path.stat().st_size
    scanner = VolumeScanner(volume_size=size)
    with path.open("rb") as f:
        while scanner.next_offset is not None:
            f.seek(scanner.next_offset)
            scanner.feed(scanner.next_offset, f.read(max(scanner.need, 65536)))
    return scanner.info()


def _plan_archive(rars: list[Path]) -> tuple[list[Path], RarEntry | None, str]:
    """Volumes in order and the stored movie entry, or None with the reason to extract."""
    infos = {str(p): _scan(p) for p in rars}
    order = volume_order(infos)  # type: ignore[arg-type]
    ordered = [Path(n) for n in order]
    entries = assemble([infos[n] for n in order])  # type: ignore[misc]
    files = [e for e in entries if not e.is_dir]
    if not files:
        return ordered, None, "the archive holds no files"
    entry = max(files, key=lambda e: e.size)
    if not entry.stored:
        why = "encrypted" if entry.encrypted else "compressed"
        return ordered, None, f"the archive is {why}"
    return ordered, entry, "stored"


async def _from_archive(
    rars: list[Path], files_dir: Path, job_dir: Path, password: str | None
) -> tuple[Path, str]:
    try:
        ordered, entry, why = await asyncio.to_thread(_plan_archive, rars)
    except RarError as exc:
        ordered, entry, why = sorted(rars), None, f"the archive headers cannot be read ({exc})"
    if entry is not None:
        name = safe_filename(entry.name.rsplit("/", 1)[-1]) or "movie.bin"
        final = job_dir / name
        await asyncio.to_thread(_join, ordered, entry, final)
        return final, f"{name} joined from {len(ordered)} RAR volumes"
    out = files_dir / ".extracted"
    argv = ["unar", "-q", "-f", "-D", "-o", str(out)]
    if password:
        argv += ["-p", password]
    argv.append(str(ordered[0]))
    try:
        await run(argv, timeout=EXTRACT_TIMEOUT)
    except ProcessError as exc:
        hint = " (wrong or missing password?)" if "password" in str(exc).lower() else ""
        raise MediaError(f"extracting the archive failed{hint}: {exc}") from exc
    extracted = await asyncio.to_thread(_all_files, out)
    if not extracted:
        raise MediaError("the archive holds no files")
    videos, _ = await asyncio.to_thread(_sort_by_content, extracted)
    # As while streaming: the largest video, else the largest file at all.
    movie = max(videos or extracted, key=lambda p: p.stat().st_size)
    final = await asyncio.to_thread(_move_into, movie, job_dir)
    return final, f"{final.name} extracted ({why})"


def _join(volumes: Sequence[Path], entry: RarEntry, dst: Path) -> None:
    """Copy a stored entry's pieces out of the volumes, in the kernel where possible."""
    tmp = dst.with_name(dst.name + ".part")
    with tmp.open("wb") as out:
        for piece in entry.pieces:
            with volumes[piece.volume].open("rb") as src:
                left, off = piece.length, piece.offset
                while left > 0:
                    n = os.copy_file_range(src.fileno(), out.fileno(), left, off)
                    if n == 0:
                        raise MediaError(
                            f"volume {volumes[piece.volume].name} is shorter than its headers say"
                        )
                    left -= n
                    off += n
    os.replace(tmp, dst)


__all__ = [
    "FileView",
    "MediaError",
    "MediaPlan",
    "Prepared",
    "StaticView",
    "find_media",
    "prepare_media",
    "static_view",
]
