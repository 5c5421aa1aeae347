"""``matinee download``: the Usenet engine alone, for scripts and benchmarks.

Downloads every file of an NZB (repairing with PAR2 when needed), shows progress on a
terminal, and prints one JSON object as its last line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from nntp.connection import ServerSpec
from nntp.errors import NntpError
from nntp.fetch import FetchOutcome, fetch_nzb
from nntp.nzb import NzbError, parse_nzb
from server.config.settings import UsenetServerConfig
from server.jobs.servers import spec_from_config

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INCOMPLETE, EXIT_ERROR = 0, 1, 2


class ProgressBar:
    """One self-overwriting line on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def update(self, done: int, total: int, speed: float, connections: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        frac = min(1.0, done / total) if total else 0.0
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = (total - done) / speed if speed > 0 else 0
        self.stream.write(
            f"\r[{bar}] {frac * 100:5.1f}%  {done / 1e6:,.0f}/{total / 1e6:,.0f} MB  "
            f"{speed / 1e6:6.1f} MB/s  {connections:2d} conn  ETA {eta:4.0f}s "
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def summary(outcome: FetchOutcome) -> dict[str, Any]:
    r = outcome.result
    seconds = max(r.seconds, 1e-9)
    return {
        "bytes": r.bytes,
        "seconds": round(r.seconds, 3),
        "mb_per_s": round(r.bytes / seconds / 1e6, 1),
        "files": [{"name": f.name, "size": f.size, "complete": f.complete} for f in outcome.files],
        "missing_segments": r.missing_segments,
        "repaired": outcome.repaired,
    }


async def _run(nzb_path: Path, out: Path, servers: Sequence[ServerSpec]) -> int:
    try:
        data = await asyncio.to_thread(nzb_path.read_bytes)
        nzb = parse_nzb(data, filename=nzb_path.name)
    except OSError as exc:
        print(f"error: cannot read {nzb_path}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    except NzbError as exc:
        print(f"error: {nzb_path} is not a usable NZB: {exc}", file=sys.stderr)
        return EXIT_ERROR
    bar = ProgressBar(sys.stderr)

    def on_progress(done: int, total: int, speed: float, connections: int) -> None:
        bar.update(done, total, speed, connections)

    try:
        outcome = await fetch_nzb(nzb, out, servers, on_progress=on_progress)
    except NntpError as exc:
        bar.finish()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    bar.finish()
    if outcome.problem:
        print(f"incomplete: {outcome.problem}", file=sys.stderr)
    print(json.dumps(summary(outcome)))
    return EXIT_OK if outcome.complete else EXIT_INCOMPLETE


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """What ``matinee download`` was asked: the NZB, where to, and from which servers (the
    one from --server, or the configuration's), each with its connection count settled."""

    nzb: Path
    out: Path
    servers: tuple[UsenetServerConfig, ...]


def run_download(request: DownloadRequest) -> int:
    """Entry from the CLI: download, repair, report; the exit status."""
    if not request.servers:
        print(
            "error: no Usenet server: give --server nntps://user:pass@host:563 "
            "or add [[usenet.servers]] to the config file",
            file=sys.stderr,
        )
        return EXIT_ERROR
    servers = [spec_from_config(c) for c in request.servers]
    return asyncio.run(_run(request.nzb, request.out, servers))
