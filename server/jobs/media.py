"""Which file of a job is the movie, how it is read while downloading, and how it becomes
one plain file once the download is done (joined from store-mode RAR volumes, or
extracted from a compressed archive)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nntp.download import Download
from nntp.media import (
    FileView,
    MediaView,
    Piece,
    RarNotStreamable,
    choose_entry,
    content_type_for,
    make_etag,
    open_file_view,
    open_rar_view,
    read_pieces,
    sniff,
)
from nntp.names import names_a_media_part, numbered_filename, safe_filename
from nntp.pick import classify, resolve_layout
from nntp.rar import RarEntry, RarError, RarVolumeInfo, VolumeScanner, assemble, volume_order
from server.errors import StorageError
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
LIST_TIMEOUT = 120.0  # lsar reads an archive's headers only
#: Room for ``n`` more bytes on the downloads' disk, made or refused (a StorageError).
Room = Callable[[int], Awaitable[None]]
FILES_DIR = "files"  # the download's own folder inside a job's folder
NZB_FILE = "job.nzb"  # the job's NZB, beside it
SUBTITLES_DIR = "subtitles"  # subtitle files of the release, kept for the player


@dataclass(frozen=True)
class MediaPlan:
    view: MediaView | None
    kind: MediaKind | None
    reason: str


@dataclass(frozen=True)
class Prepared:
    view: StaticView
    reason: str
    kind: MediaKind


class MediaError(Exception):
    """The post holds no playable movie; the message says why in a person's words."""


class StaticView:
    """A finished movie: complete bytes on disk, one file or the pieces of a store-mode RAR
    set's volumes, read in place (``StaticView.of_file`` for one file)."""

    def __init__(
        self,
        layout: Sequence[Piece],
        *,
        name: str,
        etag_seed: str,
        content_type: str | None = None,
    ) -> None:
        self.layout = tuple(layout)
        self._size = sum(p.length for p in self.layout)
        self._name = name
        # Media offset where each piece starts, for bisection.
        self._starts = list(itertools.accumulate((p.length for p in self.layout), initial=0))
        if content_type is None:
            content_type = content_type_for(name, read_pieces(self.pieces(0, 16384)))
        self._content_type = content_type
        self._etag = make_etag(etag_seed, name, size=self._size)

    @classmethod
    def of_file(
        cls, path: Path, *, etag_seed: str, name: str | None = None, content_type: str | None = None
    ) -> StaticView:
        """The whole of one file (blocking: it stats the file)."""
        size = path.stat().st_size
        return cls(
            [Piece(str(path), 0, size)],
            name=name or path.name,
            etag_seed=etag_seed,
            content_type=content_type,
        )

    def __repr__(self) -> str:
        return f"StaticView({self._name!r}, size={self._size}, pieces={len(self.layout)})"

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
        if offset < 0 or length < 0:
            raise ValueError(f"invalid range: offset {offset}, length {length}")
        start, end = min(offset, self._size), min(self._size, offset + length)
        out = []
        i = bisect.bisect_right(self._starts, start) - 1
        while start < end and i < len(self.layout):
            piece = self.layout[i]
            skip = start - self._starts[i]
            n = min(piece.length - skip, end - start)
            if n > 0:
                out.append(Piece(piece.path, piece.offset + skip, n))
                start += n
            i += 1
        return out

    def available(self, offset: int) -> int:
        return max(0, self._size - offset)

    async def wait(self, offset: int, end: int) -> None:
        return None

    def prioritise(self, offset: int, end: int) -> _Noop:
        return _noop

    async def read(self, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(read_pieces, self.pieces(offset, length))


class _Noop:
    def __call__(self) -> None:
        return None


_noop = _Noop()


def static_view(job: Job) -> StaticView | None:
    """The view of a ready job, from its row (after a restart; blocking: run it in a
    thread, a RAR set's headers are read again)."""
    if not job.media_name:
        return None
    if job.media_kind == MediaKind.RAR:
        files_dir = Path(job.dir) / FILES_DIR
        try:
            _, rars = _sort_by_content(_list_files(files_dir))
            ordered, entry, _ = _plan_archive(rars, job.media_name)
        except (OSError, RarError):
            return None
        if entry is None:
            return None
        return _set_view(ordered, entry, job.job_id, job.content_type)
    path = Path(job.dir) / job.media_name
    if not path.is_file():
        return None
    return StaticView.of_file(path, etag_seed=job.job_id, content_type=job.content_type)


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


async def prepare_media(
    files_dir: Path,
    job: Job,
    *,
    password: str | None = None,
    playing: MediaView | None = None,
    room: Room | None = None,
) -> Prepared:
    """The finished movie of a complete download, read where it lies where it can be.

    Nothing that a view of the downloading files reads is moved or deleted here (a response
    may be reading it): a video gets a second name (a hard link) in the job's folder; a
    store-mode RAR set is read in place from its volumes, never joined; only a compressed
    archive is extracted, into a new file. The movie is the file that played while it
    downloaded (``playing``, the view then) and keeps the name it had (by default
    ``job.media_name``), so its URL and ETag stay the same. ``tidy_files`` removes what
    the finished view does not read, once no response reads the old view. Before an
    extraction, ``room`` is asked for what it will write.
    """
    job_dir = Path(job.dir)
    name = playing.name if playing is not None else job.media_name
    files = await asyncio.to_thread(_list_files, files_dir)
    videos, rars = await asyncio.to_thread(_sort_by_content, files)
    if videos:
        played = await asyncio.to_thread(_played, videos, playing)
        movie = played or max(videos, key=lambda p: p.stat().st_size)
        final_name = name or safe_filename(movie.name) or "movie.bin"
        final = await asyncio.to_thread(_link_into, movie, job_dir, final_name)
        view = await asyncio.to_thread(StaticView.of_file, final, etag_seed=job.job_id)
        prepared = Prepared(view, f"{final.name} is ready", MediaKind.FILE)
    elif rars:
        prepared = await _from_archive(rars, files_dir, job, password, name, room)
    else:
        raise MediaError("the download holds no video file")
    await asyncio.to_thread(_keep_subtitles, files_dir, job_dir)
    return prepared


def tidy_files(files_dir: Path, view: MediaView) -> None:
    """Delete the download's files that ``view`` does not read (PAR2 files, names a set's
    volumes had while downloading, the state file), and the folder once none is read.
    Call it once no response reads a view of the downloading files (blocking)."""
    keep = {os.path.abspath(p) for p in view_paths(view)}
    if not any(os.path.dirname(p) == os.path.abspath(files_dir) for p in keep):
        shutil.rmtree(files_dir, ignore_errors=True)
        return
    for p in _all_files(files_dir):
        if os.path.abspath(p) not in keep:
            with contextlib.suppress(OSError):
                p.unlink()
    for d in sorted((p for p in files_dir.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


def _played(videos: Sequence[Path], playing: MediaView | None) -> Path | None:
    """The video that ``playing`` read, when it read one whole file that is among them."""
    if playing is None:
        return None
    paths = view_paths(playing)
    if len(paths) != 1:
        return None
    try:
        st = os.stat(paths.pop())
    except OSError:
        return None
    return next((p for p in videos if os.path.samestat(p.stat(), st)), None)


def view_paths(view: MediaView) -> set[str]:
    """Every file a view reads."""
    return {p.path for p in view.pieces(0, view.size)}


def _keep_subtitles(files_dir: Path, job_dir: Path) -> None:
    """Move the release's .srt files (plain files, safe names) to ``job_dir/subtitles``."""
    kept = job_dir / SUBTITLES_DIR
    for p in sorted(files_dir.iterdir()):
        name = safe_filename(p.name)
        if name and name.lower().endswith(".srt") and p.is_file() and not p.is_symlink():
            kept.mkdir(exist_ok=True)
            os.replace(p, kept / name)


def _list_files(files_dir: Path) -> list[Path]:
    """The download's files that may hold the movie, each once: obfuscated files whose real
    names PAR2 restored have two names (hard links); the real one is kept."""
    by_inode: dict[tuple[int, int], Path] = {}
    for p in sorted(files_dir.iterdir(), key=lambda p: (not names_a_media_part(p.name), p.name)):
        if not p.is_file() or p.name.startswith(".") or p.name.lower().endswith(SKIP_SUFFIXES):
            continue
        st = p.stat()
        by_inode.setdefault((st.st_dev, st.st_ino), p)
    return sorted(by_inode.values())


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
    """The regular files under ``root``; links are neither followed nor listed."""
    return [p for p, _ in _regular_files(root)]


def _regular_files(root: Path) -> list[tuple[Path, os.stat_result]]:
    found = []
    for folder, _, names in os.walk(root):  # never into linked folders
        for name in names:
            p = Path(folder, name)
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                found.append((p, st))
    return found


def _extracted_files(root: Path) -> list[Path]:
    """What an archive really held: regular files with one name. A hostile archive may hold
    links to the configuration or the database; unar creates them as it finds them (hard
    links too, as symbolic ones), so they are deleted here and never served."""
    kept = []
    for p, st in _regular_files(root):
        if st.st_nlink == 1:
            kept.append(p)
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            p = Path(folder, name)
            if p.is_symlink():
                p.unlink()
    return kept


def _looks_like_volume(name: str) -> bool:
    # Later RAR4 volumes start with the signature too, but .r00-style names help when not.
    lower = name.lower()
    return lower.endswith(".rar") or (len(lower) > 4 and lower[-4] == "." and lower[-3] == "r")


def _link_into(src: Path, job_dir: Path, name: str) -> Path:
    """``src`` also under ``job_dir/name``: a hard link, so that the download's name stays
    valid for whoever reads it (a copy where the file system has no hard links)."""
    dst = job_dir / _not_the_jobs_own(name)
    tmp = job_dir / ".matinee-link.part"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def _not_the_jobs_own(name: str) -> str:
    # A hostile movie name must not replace the job's own files or folders.
    return numbered_filename(name, 2) if name in (FILES_DIR, NZB_FILE, SUBTITLES_DIR) else name


def _move_into(src: Path, job_dir: Path) -> Path:
    # For extracted files, which nobody reads yet.
    dst = job_dir / _not_the_jobs_own(safe_filename(src.name) or "movie.bin")
    os.replace(src, dst)
    return dst


def _scan(path: Path) -> RarVolumeInfo:
    size = path.stat().st_size
    scanner = VolumeScanner(volume_size=size)
    with path.open("rb") as f:
        while scanner.next_offset is not None:
            f.seek(scanner.next_offset)
            scanner.feed(scanner.next_offset, f.read(max(scanner.need, 65536)))
    return scanner.info()


def _plan_archive(
    rars: list[Path], name: str | None = None
) -> tuple[list[Path], RarEntry | None, str]:
    """Volumes in order and the stored movie entry (``name``, else as while streaming: the
    largest video), or None with the reason to extract."""
    infos = {str(p): _scan(p) for p in rars}
    order = volume_order(infos)
    ordered = [Path(n) for n in order]
    entries = assemble([infos[n] for n in order])
    entry = (choose_entry(entries, name) if name else None) or choose_entry(entries, None)
    if entry is None:
        return ordered, None, "the archive holds no files"
    if not entry.stored:
        why = "encrypted" if entry.encrypted else "compressed"
        return ordered, None, f"the archive is {why}"
    return ordered, entry, "stored"


def _set_view(
    volumes: Sequence[Path], entry: RarEntry, etag_seed: str, content_type: str | None = None
) -> StaticView:
    """The finished view of a stored entry: its pieces, read in place from the volumes,
    named as the downloading ``RarView`` names it."""
    layout = [Piece(str(volumes[p.volume]), p.offset, p.length) for p in entry.pieces]
    for volume in {p.path for p in layout}:
        size = os.stat(volume).st_size
        if any(p.offset + p.length > size for p in layout if p.path == volume):
            raise MediaError(f"volume {Path(volume).name} is shorter than its headers say")
    return StaticView(
        layout,
        name=safe_filename(entry.name) or "movie",
        etag_seed=etag_seed,
        content_type=content_type,
    )


async def _from_archive(
    rars: list[Path],
    files_dir: Path,
    job: Job,
    password: str | None,
    name: str | None,
    room: Room | None,
) -> Prepared:
    try:
        ordered, entry, why = await asyncio.to_thread(_plan_archive, rars, name)
    except RarError as exc:
        ordered, entry, why = sorted(rars), None, f"the archive headers cannot be read ({exc})"
    if entry is not None:
        view = await asyncio.to_thread(_set_view, ordered, entry, job.job_id)
        reason = f"{view.name} is ready, read in place from {len(ordered)} RAR volumes"
        return Prepared(view, reason, MediaKind.RAR)
    needed = await unpacked_size(ordered[0], password)
    if needed is not None and room is not None:
        try:  # refused now, or room made, rather than unar failing on a full disk
            await room(needed)
        except StorageError as exc:
            raise StorageError(f"the archive cannot be extracted: {exc.message}") from None
    out = files_dir / ".extracted"
    argv = ["unar", "-q", "-f", "-D", "-o", str(out)]
    if password:
        argv += ["-p", password]
    argv.append(str(ordered[0]))
    try:
        await run(argv, timeout=EXTRACT_TIMEOUT)
    except ProcessError as exc:
        # What it left is of no use, and may hold links the archive asked for.
        await asyncio.to_thread(shutil.rmtree, out, True)
        said = str(exc).replace(str(out), "the job's folder")  # no server paths for people
        hint = " (wrong or missing password?)" if "password" in said.lower() else ""
        raise MediaError(f"extracting the archive failed{hint}: {said}") from exc
    extracted = await asyncio.to_thread(_extracted_files, out)
    if not extracted:
        raise MediaError("the archive holds no files (links in it are never followed)")
    videos, _ = await asyncio.to_thread(_sort_by_content, extracted)
    # As while streaming: the largest video, else the largest file at all.
    movie = max(videos or extracted, key=lambda p: p.stat().st_size)
    final = await asyncio.to_thread(_move_into, movie, Path(job.dir))
    view = await asyncio.to_thread(StaticView.of_file, final, etag_seed=job.job_id)
    return Prepared(view, f"{final.name} extracted ({why})", MediaKind.FILE)


async def unpacked_size(first: Path, password: str | None) -> int | None:
    """What extracting the archive writes, from lsar's listing (any format unar reads, so
    also an archive that only calls itself RAR); None when lsar cannot tell (a password it
    lacks, headers it cannot read): then unar will say what is wrong."""
    argv = ["lsar", "-j", *(["-p", password] if password else []), str(first)]
    try:
        listing = json.loads((await run(argv, timeout=LIST_TIMEOUT)).stdout)
        sizes = [entry.get("XADFileSize", 0) for entry in listing["lsarContents"]]
    except (ProcessError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return sum(n for n in sizes if isinstance(n, int) and n > 0)


__all__ = [
    "FileView",
    "MediaError",
    "MediaPlan",
    "Prepared",
    "StaticView",
    "find_media",
    "prepare_media",
    "static_view",
    "tidy_files",
    "view_paths",
]
