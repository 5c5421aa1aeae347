"""Fetch an NZB completely: data files, then PAR2 repair with only the volumes needed, then
the real names of obfuscated files. What ``matinee download`` and the job runner call.

PAR2 files are known by their names or, in obfuscated posts, by their content (the
download looks at the first segment of every file whose name says nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nntp.connection import ServerSpec
from nntp.download import Download, DownloadResult, FileResult, FileTask
from nntp.names import numbered_filename, safe_filename
from nntp.nzb import Nzb
from nntp.par2 import (
    NotEnoughRecoveryBlocks,
    Par2Error,
    Par2Set,
    RepairResult,
    choose_volumes,
    estimate_recovery_blocks,
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


async def finish_download(dl: Download, *, keep_posted_names: bool = False) -> FetchOutcome:
    """Wait for a started download, fetch the PAR2 volumes a repair needs, close it, repair,
    and give obfuscated files their real names. The download is closed on return.

    ``keep_posted_names``: data files keep the names they were downloaded under (a reader
    may have them open by those names): real names are added as hard links, and a damaged
    copy that a repair wrote anew under its real name becomes a name of the repaired file.
    """
    repaired = False
    problem: str | None = None
    index: FileTask | None = None
    links: dict[Path, Path] = {}  # PAR2 files without a .par2 name -> the name par2 reads
    try:
        result = await dl.wait()
        index = _par2_index(dl)
        if result.missing_segments:
            if index is None:
                index = await _volume_as_index(dl)
            if index is None:
                problem = (
                    f"{result.missing_segments} segments are missing and the post has no PAR2 files"
                )
            else:
                problem = await _fetch_volumes_for_repair(dl, index, links)
                result = dl.result()
    finally:
        await dl.close()

    # Before the repair, which may write a file anew where nothing of it arrived.
    await asyncio.to_thread(_remove_leftovers, dl)
    data_paths = [f.path for f in dl.files if f.selected and f.par2 is None]
    renamed: dict[str, Path] = {}
    if result.missing_segments and problem is None and index is not None:
        try:
            main, extra = await asyncio.to_thread(_par2_inputs, dl, index, links)
            repair = await par2_repair(main, extra)
            repaired = True
            renamed = await asyncio.to_thread(
                _tidy_after_repair, dl, main.parent, repair, keep_posted_names
            )
            log.info("PAR2 repaired %s", ", ".join(repair.repaired) or "nothing")
        except Par2Error as exc:
            problem = f"PAR2 repair failed: {exc}"
    if problem is None and index is not None:
        paths = [renamed.get(str(p), p) for p in data_paths]
        renamed.update(
            await asyncio.to_thread(_restore_names, index.path, paths, keep_posted_names)
        )
    renamed.update(await asyncio.to_thread(_give_par2_names, dl, links))
    files = _final_files(result, renamed, repaired and problem is None)
    return FetchOutcome(result=result, files=files, repaired=repaired, problem=problem)


async def _report(dl: Download, cb: ProgressCallback | None, interval: float) -> None:
    while True:
        rate = dl.rate()
        if cb is not None:
            cb(dl.progress.bytes_done, dl.progress.bytes_total, rate, dl.connections)
        await asyncio.sleep(interval)


def _par2_index(dl: Download) -> FileTask | None:
    """The smallest complete PAR2 index (by name or content): it names and checksums every
    file."""
    candidates = [f for f in dl.files if f.selected and f.par2 == "index" and f.complete]
    return min(candidates, key=lambda f: f.estimated_size) if candidates else None


async def _volume_as_index(dl: Download) -> FileTask | None:
    """With no index at hand, the smallest intact volume serves: volumes repeat its packets."""
    volumes = [f for f in dl.files if f.par2 == "volume"]
    volumes.sort(key=lambda f: (not f.selected, f.estimated_size))
    for f in volumes:
        if not f.selected:
            log.info("no PAR2 index: fetching %s for its copy of the index's packets", f.name)
            dl.select_files([f.index])
            await dl.wait()
        if f.complete:
            return f
    return None


async def _fetch_volumes_for_repair(
    dl: Download, index: FileTask, links: dict[Path, Path]
) -> str | None:
    """Ask par2 how many recovery blocks are missing and download just enough volumes.

    Volumes known by content hold a count of blocks only estimated from their size, so
    par2 is asked again after each round until it can repair or nothing is left to fetch.
    """
    described = parse_par2(await asyncio.to_thread(index.path.read_bytes))
    while True:
        main, extra = await asyncio.to_thread(_par2_inputs, dl, index, links)
        try:
            verify = await par2_verify(main, extra)
        except Par2Error as exc:
            return f"PAR2 verification failed: {exc}"
        if verify.repairable:
            return None
        parked = {f.name: f for f in dl.files if not f.selected and f.par2 == "volume"}
        volumes = {name: _recovery_blocks(f, described) for name, f in parked.items()}
        try:
            chosen = choose_volumes(volumes, verify.blocks_needed)
        except NotEnoughRecoveryBlocks as exc:
            return f"cannot repair: {exc}"
        log.info("repair needs %d blocks: fetching %s", verify.blocks_needed, ", ".join(chosen))
        dl.select_files([parked[name].index for name in chosen])
        await dl.wait()


def _recovery_blocks(f: FileTask, described: Par2Set) -> int:
    """Recovery blocks in a volume: as its name says, else estimated from its size."""
    named = recovery_blocks_in_name(f.name)
    if named or described.slice_size is None:
        return named or 0
    return estimate_recovery_blocks(
        f.estimated_size, described.slice_size, described.critical_bytes
    )


def _par2_name(path: Path, links: dict[Path, Path]) -> Path:
    """A name ending in .par2 for a PAR2 file: par2cmdline reads no other. Files known by
    content get a hard link (a copy where links are not possible) while they may still be
    written to; ``_give_par2_names`` makes it their only name at the end."""
    if path.name.lower().endswith(".par2"):
        return path
    if path in links:
        return links[path]
    name = f"{path.name}.par2"
    link = path.with_name(name)
    number = 1
    # Never another file of the post; a link left by an earlier run is taken as it is.
    while link.exists() and not link.samefile(path):
        number += 1
        link = path.with_name(numbered_filename(name, number))
    if not link.exists():
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
    links[path] = link
    return link


def _par2_inputs(dl: Download, index: FileTask, links: dict[Path, Path]) -> tuple[Path, list[Path]]:
    """The index for par2 and the files it should scan: data files (obfuscated ones hold
    their target's blocks under other names) and the PAR2 volumes fetched so far."""
    extra = []
    for f in dl.files:
        if f is index or not f.selected or not f.path.exists():
            continue
        extra.append(f.path if f.par2 is None else _par2_name(f.path, links))
    return _par2_name(index.path, links), extra


def _tidy_after_repair(
    dl: Download, base: Path, repair: RepairResult, keep_posted_names: bool = False
) -> dict[str, Path]:
    """Remove what a repair left behind: par2's backups of the files it rewrote, and the
    damaged copies under random names whose content it wrote anew under the real name
    (with ``keep_posted_names`` such a name is given to the repaired file instead).
    Returns {old path: new path} for data files that now live under another name."""
    moved: dict[str, Path] = {}
    repaired = {name for name in repair.repaired if safe_filename(name) == name}
    for name in repaired:
        with contextlib.suppress(OSError):
            (base / f"{name}.1").unlink()
    data = {f.path.name: f.path for f in dl.files if f.selected and f.par2 is None}
    for file, target in repair.renamed:
        if file in data and safe_filename(target) == target:
            moved[str(data[file])] = base / target
    for file, target in repair.partial:
        source = data.get(file)
        if source is None or target not in repaired or file == target:
            continue
        whole = base / target
        # A damaged download of the target has the target's size; anything else that
        # happens to share a block with it is another file and stays.
        with contextlib.suppress(OSError):
            if whole.is_file() and source.stat().st_size == whole.stat().st_size:
                if keep_posted_names:
                    _name_also(whole, source)
                    done = "now names the repaired file"
                else:
                    source.unlink()
                    done = "removed"
                moved[str(source)] = whole
                log.info("%s, a damaged copy of %s, which PAR2 repaired: %s", file, target, done)
    return moved


def _give_par2_names(dl: Download, links: dict[Path, Path]) -> dict[str, Path]:
    """PAR2 files known by content end with their .par2 name only (as if named so)."""
    moved: dict[str, Path] = {}
    for f in dl.files:
        if not f.selected or f.par2 is None or not f.path.exists():
            continue
        try:
            target = _par2_name(f.path, links)
            if target != f.path:
                f.path.unlink()
                moved[str(f.path)] = target
        except OSError as exc:
            log.warning("cannot give %s a .par2 name: %s", f.name, exc)
    return moved


def _name_also(src: Path, name: Path) -> None:
    """``name`` becomes another name of ``src``, replacing what it named in one step."""
    tmp = name.with_name(f".{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.link(src, tmp)
    os.replace(tmp, name)


def _restore_names(
    index: Path, data_paths: Sequence[Path], keep_posted_names: bool = False
) -> dict[str, Path]:
    """Rename obfuscated files to the names the PAR2 index gives for their content (with
    ``keep_posted_names``, add those names as hard links). Returns {old path: new path}."""
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
            if dst.samefile(src):  # named so by an earlier run
                renamed[path] = dst
            else:
                log.warning("not renaming %s to %s: a file of that name exists", src.name, name)
            continue
        if keep_posted_names:
            try:
                os.link(src, dst)
            except OSError as exc:  # no hard links here: the posted name is what is read
                log.warning("cannot give %s its real name %s: %s", src.name, name, exc)
                continue
        else:
            os.replace(src, dst)
        renamed[path] = dst
        log.info("named %s %s (from PAR2)", src.name, name)
    return renamed


def _remove_leftovers(dl: Download) -> None:
    """Drop the volumes never needed (only the first segment that told what they are is
    there) and the files of which no byte could be had."""
    for f in dl.files:
        if not f.selected or f.ranges.total == 0:
            with contextlib.suppress(FileNotFoundError):
                f.path.unlink()


def _final_files(
    result: DownloadResult, renamed: dict[str, Path], repaired: bool
) -> tuple[FileResult, ...]:
    out = []
    for f in result.files:
        path = Path(f.path)
        for _ in range(len(renamed)):  # a file may move twice: repaired, then renamed
            if str(path) not in renamed:
                break
            path = renamed[str(path)]
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
