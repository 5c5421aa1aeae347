"""``matinee doctor``: what a new installation most often gets wrong, checked from the
command line with the same checks as the Status page, and what to fix, line by line.

It starts no server: TMDB and the indexers are asked through clients of their own (with a
throw-away cache), each Usenet server is connected to, logged in to and sent a STAT, and
the programs Matinee runs are asked for their versions.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from server.config.settings import Settings
from server.discovery.indexers import Indexers
from server.discovery.tmdb import TmdbClient
from server.jobs.servers import specs_from_settings
from server.mirror.client import open_client, probe_bucket
from server.playback.service import pick_encoder
from server.store.db import store_context
from server.ui.checks import (
    check_disk,
    check_encoder,
    check_indexers,
    check_r2,
    check_tmdb,
    check_tools,
    check_usenet,
)

MARKS = {"ok": " ok ", "warn": "warn", "error": "FAIL", "off": "off "}


async def run_checks(settings: Settings) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="matinee-doctor-") as scratch:
        async with (
            store_context(Path(scratch) / "cache.sqlite3") as store,
            aiohttp.ClientSession(headers={"User-Agent": "Matinee"}) as session,
            AsyncExitStack() as stack,
        ):
            tmdb = TmdbClient(session, settings.tmdb, store)
            indexers = Indexers(session, settings.indexers, store)

            async def r2_problem() -> str | None:
                client = await open_client(settings.r2, stack)
                return await probe_bucket(client, settings.r2.bucket or "")

            results = await asyncio.gather(
                check_tools(),
                check_disk(settings.downloads),
                check_usenet(specs_from_settings(settings), busy=False),
                check_tmdb(tmdb),
                check_indexers(indexers, settings),
                check_r2(settings.r2, r2_problem),
            )
            encoder = check_encoder(settings.transcode, *await pick_encoder(settings.transcode))
    tools, disk, usenet, tmdb_line, indexer_lines, r2 = results
    return [*tools, encoder, disk, *usenet, tmdb_line, *indexer_lines, r2]


def report(checks: list[dict[str, Any]], out: TextIO = sys.stdout) -> int:
    """Print the checks; 0 when nothing is an error, 1 otherwise."""
    for c in checks:
        print(f"[{MARKS[c['state']]}] {c['name']}: {c['summary']}", file=out)
        if c["fix"] and c["state"] != "ok":
            print(f"       to fix: {c['fix']}", file=out)
    errors = sum(c["state"] == "error" for c in checks)
    warnings = sum(c["state"] == "warn" for c in checks)
    if errors or warnings:
        print(f"\n{errors} problem(s), {warnings} warning(s): see 'to fix' above.", file=out)
    else:
        print("\nEverything Matinee needs is configured and answering.", file=out)
    return 1 if errors else 0


def run_doctor(settings: Settings) -> int:
    return report(asyncio.run(run_checks(settings)))
