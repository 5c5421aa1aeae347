"""Fetch an NZB completely: data files, then PAR2 repair with only the volumes needed, then
the real names of obfuscated files. What ``matinee download`` and the job runner call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nntp.connection import ServerSpec
from nntp.download import PAR2_VOLUME, Download, DownloadResult, FileResult
from nntp.names import safe_filename
from nntp.nzb import Nzb
from nntp.par2 import (
    NotEnoughRecoveryBlocks,
    Par2Error,
    choose_volumes,
    match_by_md5_16k,
    md5_16k,
    par2_repair,
    par2_verify,
    parse_par2,
    recovery_blocks_in_name,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, float, int], None]  # done, total, bytes/s, connections


@dataclass(frozen=True)
class FetchOutcome:
    result: DownloadResult
    files: tuple[FileResult, ...]  # final names and sizes, after repair and renaming
    repaired: bool
    problem: str | None  # None when every file is complete

    @property
    def complete(self) -> bool:
        return self.problem is None


def _is_par2(name: str) -> bool:
    return name.lower().endswith(".par2")


async def fetch_nzb(
    nzb: Nzb,
    out_dir: Path,
    servers: Sequence[ServerSpec],
    *,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
) -> FetchOutcome:
    """Download everything, repair, restore names; the whole of ``matinee download``."""
    dl = Download(nzb, out_dir, servers)
    await dl.start()
    reporter = asyncio.create_task(_report(dl, on_progress, progress_interval))
    try:
        return await finish_download(dl)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        if on_progress is not None:
            on_progress(dl.progress.bytes_done, dl.progress.bytes_total, dl.rate(), 0)


async def finish_download(dl: Download) -> FetchOutcome:
    """Wait for a started download, fetch the PAR2 volumes a repair needs, close it, repair,
    and give obfuscated files their real names. The download is closed on return."""
    repaired = False
    problem: str | None = None
    index: Path | None = None
    try:
        result = await dl.wait()
        index = _par2_index(dl)
        if result.missing_segments:
            if index is None:
                problem = (
                    f"{result.missing_segments} segments are missing and the post has no PAR2 files"
                )
            else:
                problem = await _fetch_volumes_for_repair(dl, index)
                result = dl.result()
    finally:
        await dl.close()

    data_paths = [Path(f.path) for f in result.files if not _is_par2(f.name)]
    if result.missing_segments and problem is None and index is not None:
        try:
            repair = await par2_repair(index, [p for p in data_paths if p.exists()])
            repaired = True
            for name in repair.repaired:
                with contextlib.suppress(OSError):
                    (index.parent / f"{name}.1").unlink()
            log.info("PAR2 repaired %s", ", ".join(repair.repaired) or "nothing")
        except Par2Error as exc:
            problem = f"PAR2 repair failed: {exc}"
    renamed: dict[str, Path] = {}
    if problem is None and index is not None:
        renamed = await asyncio.to_thread(_restore_names, index, data_paths)
    files = _final_files(result, renamed, repaired and problem is None)
    return FetchOutcome(result=result, files=files, repaired=repaired, problem=problem)


async def _report(dl: Download, cb: ProgressCallback | None, interval: float) -> None:
    while True:
        rate = dl.rate()
        if cb is not None:
            cb(dl.progress.bytes_done, dl.progress.bytes_total, rate, dl.connections)
        await asyncio.sleep(interval)


def _par2_index(dl: Download) -> Path | None:
    """The smallest complete non-volume PAR2 file: it names and checksums every file."""
    candidates = [
        f
        for f in dl.files
        if f.selected and _is_par2(f.name) and not PAR2_VOLUME.search(f.name) and f.complete
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda f: f.size or 0).path


async def _fetch_volumes_for_repair(dl: Download, index: Path) -> str | None:
    """Ask par2 how many recovery blocks are missing and download just enough volumes."""
    extra = [f.path for f in dl.files if f.selected and f.path.exists() and f.path != index]
    try:
        verify = await par2_verify(index, extra)
    except Par2Error as exc:
        return f"PAR2 verification failed: {exc}"
    if verify.repairable:
        return None
    volumes = {
        f.name: blocks
        for f in dl.files
        if not f.selected and (blocks := recovery_blocks_in_name(f.name))
    }
    try:
        chosen = choose_volumes(volumes, verify.blocks_needed)
    except NotEnoughRecoveryBlocks as exc:
        return f"cannot repair: {exc}"
    log.info("repair needs %d blocks: fetching %s", verify.blocks_needed, ", ".join(chosen))
    dl.select_files([f.index for f in dl.files if f.name in chosen])
    await dl.wait()
    return None


def _restore_names(index: Path, data_paths: Sequence[Path]) -> dict[str, Path]:
    """Rename obfuscated files to the names the PAR2 index gives for their content.
    Returns {old path: new path}."""
    renamed: dict[str, Path] = {}
    try:
        par2 = parse_par2(index.read_bytes())
    except OSError:
        return renamed
    known = {f.name for f in par2.files}
    candidates = {str(p): md5_16k(p) for p in data_paths if p.exists() and p.name not in known}
    for path, described in match_by_md5_16k(par2, candidates).items():
        name = safe_filename(described.name)
        src = Path(path)
        if name is None or name == src.name:
            continue
        dst = src.with_name(name)
        if dst.exists():
            log.warning("not renaming %s to %s: a file of that name exists", src.name, name)
            continue
        os.replace(src, dst)
        renamed[path] = dst
        log.info("renamed %s to %s (from PAR2)", src.name, name)
    return renamed


def _final_files(
    result: DownloadResult, renamed: dict[str, Path], repaired: bool
) -> tuple[FileResult, ...]:
    out = []
    for f in result.files:
        path = renamed.get(f.path, Path(f.path))
        if not path.exists():
            out.append(replace(f, complete=False))
            continue
        out.append(
            replace(
                f,
                name=path.name,
                path=str(path),
                size=path.stat().st_size,
                complete=f.complete or repaired,
            )
        )
    return tuple(out)
