"""Ready benchmark: what the switch from downloading to `ready` costs for a store-mode RAR set.

What it does, in one temp dir that is removed at the end (also on Ctrl-C or failure):

1. writes a random movie of `--size-mb` MiB, stores it in a RAR5 set of `--volume-mb` MiB
   volumes in a job's `files/` folder (`python -m tests.support.rar5`, a subprocess: bench/
   never imports tests/) and deletes it; nothing is dropped from the page cache (the
   volumes were just downloaded when a job becomes ready, so they are warm there too);
2. times Matinee's step, `server.jobs.media.prepare_media` (the set is read in place: the
   download's files are listed and sniffed, the volume headers scanned, the finished view
   built), `--rounds` times, and reads every byte through the finished view once to check
   it against the movie's SHA-256;
3. times the step it replaced, `--rounds` times: the stored file's pieces joined into one
   file with `copy_file_range`, then `fdatasync` (the copy is only safe once on disk),
   and the disk it took beside the volumes;
4. prints the medians, the ratio, then one JSON line with every number.

The exit status is non-zero only when the bytes read through the view are wrong. The
machine is shared and noisy: compare the ratio from one run, not figures across runs.

    .venv/bin/python bench/ready.py [--size-mb 2048] [--volume-mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import MIB, REPO, install_signal_handlers, log, workspace, write_random_file

from nntp.media import read_pieces
from nntp.rar import VolumeScanner, assemble, volume_order
from server.jobs.lifecycle import Mode, Source
from server.jobs.media import StaticView, prepare_media
from server.store.jobs import Job

CHECK_CHUNK = 8 * MIB


def write_set(tmp: Path, files: Path, size_mb: int, volume_mb: int) -> str:
    """The set in ``files``; the movie's SHA-256."""
    src = tmp / "Movie.2019.1080p.BluRay.x264-GRP.mkv"
    sha256 = write_random_file(src, size_mb * MIB)
    volumes = ["--volume-mib", str(volume_mb)]
    subprocess.run(
        [sys.executable, "-m", "tests.support.rar5", str(src), str(files), *volumes],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    src.unlink()
    return sha256


def check(view: StaticView, sha256: str) -> bool:
    digest = hashlib.sha256()
    for at in range(0, view.size, CHECK_CHUNK):
        digest.update(read_pieces(view.pieces(at, CHECK_CHUNK)))
    return digest.hexdigest() == sha256


def join(files: Path, out: Path) -> int:
    """The replaced step: the stored file copied out of its volumes into one file."""
    infos = {}
    for p in sorted(files.iterdir()):
        scanner = VolumeScanner(volume_size=p.stat().st_size)
        with p.open("rb") as f:
            while (at := scanner.next_offset) is not None:
                f.seek(at)
                scanner.feed(at, f.read(max(scanner.need, 65536)))
        infos[str(p)] = scanner.info()
    order = volume_order(infos)
    (entry,) = assemble([infos[n] for n in order])
    with out.open("wb") as dst:
        for piece in entry.pieces:
            with open(order[piece.volume], "rb") as src:
                left, offset = piece.length, piece.offset
                while left:
                    n = os.copy_file_range(src.fileno(), dst.fileno(), left, offset)
                    if n == 0:
                        raise RuntimeError("a volume is shorter than its headers say")
                    left -= n
                    offset += n
        os.fdatasync(dst.fileno())
    return out.stat().st_blocks * 512


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--volume-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="where the temp dir goes (same disk as data)")
    args = parser.parse_args()
    install_signal_handlers()
    with workspace(args.tmp) as tmp:
        job_dir = tmp / "job"
        files = job_dir / "files"
        log(f"writing a {args.size_mb} MiB set in {args.volume_mb} MiB volumes ...")
        sha256 = write_set(tmp, files, args.size_mb, args.volume_mb)
        volumes = len(list(files.iterdir()))
        job = Job(job_id="job_1_bench", mode=Mode.NZB, source=Source.UPLOAD, dir=str(job_dir))

        in_place, view = [], None
        for _ in range(args.rounds):
            start = time.perf_counter()
            view = asyncio.run(prepare_media(files, job)).view
            in_place.append(time.perf_counter() - start)
        assert view is not None
        log("checking every byte read through the finished view ...")
        ok = check(view, sha256)

        joined, extra = [], 0
        for _ in range(args.rounds):
            out = job_dir / "joined.mkv"
            start = time.perf_counter()
            extra = join(files, out)
            joined.append(time.perf_counter() - start)
            out.unlink()

        result = {
            "size_mib": args.size_mb,
            "volumes": volumes,
            "in_place_s": in_place,
            "join_s": joined,
            "join_extra_disk_mib": round(extra / MIB),
            "bytes_ok": ok,
        }
        med_in, med_join = statistics.median(in_place), statistics.median(joined)
        log(f"ready, read in place (Matinee): {med_in * 1000:9.1f} ms  (no extra disk)")
        log(f"ready, joined (replaced step) : {med_join * 1000:9.1f} ms  (+{extra / MIB:.0f} MiB)")
        log(f"join / in place: {med_join / med_in:.0f}x; bytes through the view: {ok}")
        print(json.dumps(result))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
