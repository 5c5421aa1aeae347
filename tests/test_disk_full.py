"""A full disk in the middle of a download: the job says "disk full" and waits, everything
else keeps working, and when there is room again it goes on where it stopped and ends
with the right bytes. The downloads' folder is a small tmpfs mounted by the test."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from server.config.settings import Settings
from tests.support.app import API, HEADERS, Client, job, post_of, settings_for, submit, until
from tests.support.fake_nntp import FakeNntpFactory


async def test_a_full_disk_stalls_the_job_and_it_goes_on_when_there_is_room(
    small_disk: Path,
    fake_nntp: FakeNntpFactory,
    start_app: Callable[[Settings], Awaitable[Client]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.jobs import runner as runner_mod

    monkeypatch.setattr(runner_mod, "DISK_FULL_POLL", 0.2)
    monkeypatch.setattr(runner_mod, "DISK_FULL_HEADROOM", 4 * 1024 * 1024)
    data = os.urandom(9_000_000)  # fits on the 12 MB disk: the download may start
    nzb, arts = post_of(data, "Big.2020.mkv")
    srv = await fake_nntp(articles=arts)
    srv.bytes_per_second = 3_000_000  # so that the disk fills up while it downloads
    settings = settings_for(
        tmp_path, srv, downloads={"dir": str(small_disk / "downloads"), "min_free_gb": 0.001}
    )
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    await until(client, job_id, lambda j: j["status"] == "downloading")
    # Something else takes the room the download counted on (another program, say).
    filler = small_disk / "filler"
    await asyncio.to_thread(filler.write_bytes, b"\0" * 6_000_000)
    stalled = await until(client, job_id, lambda j: "disk full" in (j["error_message"] or ""))
    assert stalled["status"] == "downloading"  # waiting, not failed
    # Everything else keeps working meanwhile.
    assert (await client.get(f"{API}/jobs", headers=HEADERS)).status == 200
    assert (await client.get("/api/health")).status == 200
    assert (await job(client, job_id))["status"] == "downloading"

    # Room again (the other program's file is deleted): it goes on.
    await asyncio.to_thread(filler.unlink)
    done = await until(client, job_id, lambda j: j["status"] == "ready", t=60)
    assert done["error_message"] is None
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    body = await (await client.get(stream["url"])).read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    log = (await (await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)).json())["events"]
    assert [e["kind"] for e in log].count("disk_full") == 1
