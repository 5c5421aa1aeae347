"""The mirror to R2 against a real S3 API (moto's server mode on loopback), through a proxy
that counts what reaches the store and injects R2's faults."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config.settings import Settings
from server.mirror import client as r2_client
from server.mirror.parts import MIB
from tests.support.app import (
    API,
    HEADERS,
    Client,
    follow,
    post_of,
    settings_for,
    submit,
    until,
)
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.rar4 import write_store_set
from tests.support.s3 import FaultProxy, Moto, r2_settings
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

StartApp = Callable[[Settings], Awaitable[Client]]
SIZE = 20 * MIB + 12345  # three parts of 8 MiB (the last one short)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(r2_client, "BACKOFF_FIRST", 0.01)


async def _mirrored_app(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    endpoint: str,
    bucket: str,
    *,
    size: int = SIZE,
    r2: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[Client, str, bytes]:
    data = os.urandom(size)
    nzb, arts = post_of(data, "The.Movie.2019.mkv")
    srv = await fake_nntp(articles=arts)
    settings = settings_for(tmp_path, srv, r2=r2_settings(endpoint, bucket, **(r2 or {})), **extra)
    client = await start_app(settings)
    job_id = await submit(client, nzb)
    return client, job_id, data


def mirrored(j: dict[str, Any]) -> bool:
    return j["mirror"] is not None and j["mirror"]["state"] == "mirrored"


async def test_a_ready_movie_is_uploaded_in_parts_and_checked(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    client, job_id, data = await _mirrored_app(tmp_path, fake_nntp, start_app, s3_proxy.url, bucket)
    snapshots = await follow(client, job_id, within=60)  # the stream goes on while it uploads
    states = [s["mirror"]["state"] if s["mirror"] else None for s in snapshots]
    assert states[-1] == "mirrored" and "mirroring" in states, states
    final = snapshots[-1]
    assert final["status"] == "ready" and final["mirror"]["bytes_done"] == SIZE
    assert final["local"] is True
    key = f"movies/{job_id}/The.Movie.2019.mkv"
    head = await asyncio.to_thread(moto_server.client().head_object, Bucket=bucket, Key=key)
    assert head["ContentLength"] == SIZE
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["ContentType"] == "video/x-matroska"
    body = await asyncio.to_thread(
        lambda: moto_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    )
    assert body == data
    assert sorted(s3_proxy.parts) == [1, 2, 3]  # 8 MiB parts, each sent once
    assert s3_proxy.count("HEAD") == 1  # the check after completing
    log = (await (await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)).json())["events"]
    assert [e["kind"] for e in log][-2:] == ["mirroring", "mirrored"]
    metrics = await (await client.get("/metrics", headers=HEADERS)).text()
    uploaded = next(
        line
        for line in metrics.splitlines()
        if line.startswith("matinee_mirror_uploaded_bytes_total")
    )
    assert float(uploaded.split()[1]) == SIZE
    assert 'matinee_mirror_uploads_total{outcome="ok"} 1.0' in metrics
    # Readiness names R2 when it is on; probes a minute apart cost one request to it.
    for _ in range(2):
        ready = await (await client.get("/api/ready")).json()
        assert {"name": "r2", "ok": True, "detail": "the bucket answered"} in ready["checks"]
    assert s3_proxy.count("HEAD") == 2


async def test_faults_are_retried_with_back_off(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    s3_proxy.fail(503, times=2)
    s3_proxy.fail(503, times=1, code="SlowDown")
    s3_proxy.fail(500, times=1, code="InternalError")
    s3_proxy.reset(times=2)
    s3_proxy.fail(500, times=1, when=lambda r: r.method == "POST" and "uploadId" in r.query)
    client, job_id, data = await _mirrored_app(tmp_path, fake_nntp, start_app, s3_proxy.url, bucket)
    final = await until(client, job_id, mirrored, t=60)
    assert final["mirror"]["error"] is None
    key = f"movies/{job_id}/The.Movie.2019.mkv"
    head = await asyncio.to_thread(moto_server.client().head_object, Bucket=bucket, Key=key)
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(s3_proxy.parts) == [1, 2, 3]
    failed = [s for s in s3_proxy.seen if s.status != 200 and s.method != "HEAD"]
    assert len(failed) == 7  # every fault was met, and each was tried again


async def test_a_permanent_failure_keeps_the_local_copy_and_says_what_to_fix(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    client, job_id, data = await _mirrored_app(
        tmp_path, fake_nntp, start_app, s3_proxy.url, "no-such-bucket-here"
    )
    final = await until(
        client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["state"] == "failed"), t=60
    )
    assert final["status"] == "ready" and final["local"] is True
    assert "the bucket does not exist" in final["mirror"]["error"]
    assert s3_proxy.count("POST", status=404, query="uploads") == 1  # not retried: permanent
    stream = await (await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)).json()
    assert stream["kind"] == "file"
    assert await (await client.get(stream["url"])).read() == data
    log = (await (await client.get(f"{API}/jobs/{job_id}/log", headers=HEADERS)).json())["events"]
    assert any(e["kind"] == "mirror_failed" and "local copy stays" in e["message"] for e in log)
    assert client.app is not None
    status = await (await client.get("/status", headers=HEADERS)).text()
    assert "The bucket does not exist" in status
    ready = await client.get("/api/ready")  # a supervisor sees it too, without details
    body = await ready.json()
    assert ready.status == 503 and body["failing"] == ["r2"], body
    assert "no-such-bucket-here" not in await ready.text()


async def test_delete_removes_the_objects_and_aborts_an_unfinished_upload(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    s3_proxy.delay_parts = 0.3  # so that the delete lands mid-upload
    client, job_id, _ = await _mirrored_app(
        tmp_path, fake_nntp, start_app, s3_proxy.url, bucket, r2={"concurrency": 1}
    )
    await until(client, job_id, lambda j: bool(j["mirror"] and j["mirror"]["bytes_done"]), t=60)
    assert await asyncio.to_thread(moto_server.uploads, bucket)  # one is under way
    resp = await client.delete(f"{API}/jobs/{job_id}", headers=HEADERS)
    assert resp.status == 200
    assert await asyncio.to_thread(moto_server.uploads, bucket) == []
    assert await asyncio.to_thread(moto_server.keys, bucket) == []


async def test_delete_of_a_mirrored_movie_removes_its_object(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    client, job_id, _ = await _mirrored_app(
        tmp_path, fake_nntp, start_app, s3_proxy.url, bucket, size=1000
    )
    await until(client, job_id, mirrored, t=60)
    assert await asyncio.to_thread(moto_server.keys, bucket) == [
        f"movies/{job_id}/The.Movie.2019.mkv"
    ]
    assert (await client.delete(f"{API}/jobs/{job_id}", headers=HEADERS)).status == 200
    assert await asyncio.to_thread(moto_server.keys, bucket) == []
    assert not (tmp_path / "data" / "downloads" / job_id).exists()


async def test_the_start_up_sweep_aborts_what_an_earlier_run_left(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    s3 = moto_server.client()

    def leave_things() -> None:
        s3.create_multipart_upload(Bucket=bucket, Key="movies/job_1_dead/x.mkv")
        s3.put_object(Bucket=bucket, Key="movies/job_2_gone/y.mkv", Body=b"old")
        s3.put_object(Bucket=bucket, Key="somebody-else/z.txt", Body=b"keep")

    await asyncio.to_thread(leave_things)
    srv = await fake_nntp()
    await start_app(settings_for(tmp_path, srv, r2=r2_settings(s3_proxy.url, bucket)))
    assert await asyncio.to_thread(moto_server.uploads, bucket) == []
    assert await asyncio.to_thread(moto_server.keys, bucket) == ["somebody-else/z.txt"]


async def test_r2_serves_byte_ranges_through_a_presigned_link(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    # "auto", and this client (127.0.0.1) is not on the household's networks: it is remote.
    client, job_id, data = await _mirrored_app(
        tmp_path,
        fake_nntp,
        start_app,
        s3_proxy.url,
        bucket,
        size=100_000,
        r2={"presign_seconds": 600},
        server={"data_dir": str(tmp_path / "data"), "lan_networks": ["10.0.0.0/8"]},
    )
    await until(client, job_id, mirrored, t=60)
    resp = await client.get(f"{API}/movies/{job_id}/stream", headers=HEADERS)
    stream = await resp.json()
    assert stream["kind"] == "r2", stream
    assert stream["url"].startswith(f"{s3_proxy.url}/{bucket}/movies/{job_id}/")
    assert stream["size"] == 100_000 and stream["content_type"] == "video/x-matroska"
    left = datetime.fromisoformat(stream["expires_at"]).timestamp() - time.time()
    assert 590 <= left <= 601
    async with (
        aiohttp.ClientSession() as http,  # a plain client: no key, no cookie
        http.get(stream["url"], headers={"Range": "bytes=1000-1999"}) as got,
    ):
        assert got.status == 206
        assert await got.read() == data[1000:2000]
        assert got.headers["Content-Range"] == "bytes 1000-1999/100000"
        assert got.headers["Content-Type"] == "video/x-matroska"
        assert got.headers["Cache-Control"] == "no-store"
        assert "The.Movie.2019.mkv" in got.headers["Content-Disposition"]
    # Signed for this long (moto does not check signatures; R2 does).
    assert "X-Amz-Expires=" in stream["url"] and "X-Amz-Signature=" in stream["url"]

    # The job page says where the copy stands, and offers to keep it longer.
    assert client.app is not None
    page = await (await client.get(f"/job/{job_id}", headers=HEADERS)).text()
    assert "In R2" in page and "Keep 24 h longer" in page


async def test_a_store_mode_rar_set_is_one_object(
    tmp_path: Path,
    fake_nntp: FakeNntpFactory,
    start_app: StartApp,
    moto_server: Moto,
    s3_proxy: FaultProxy,
) -> None:
    """A finished set is read in place from its volumes (never joined): the parts are read
    through them, across volume boundaries, and one object comes out."""
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    movie = tmp_path / "Set.2020.mkv"
    data = os.urandom(18 * MIB + 777)  # three parts, each crossing volumes
    await asyncio.to_thread(movie.write_bytes, data)
    (tmp_path / "vols").mkdir()
    volumes = await asyncio.to_thread(
        write_store_set, movie, tmp_path / "vols", "set.2020", 5 * MIB
    )
    posts = [articles_for_bytes(v.read_bytes(), v.name, part_size=256 * 1024) for v in volumes]
    arts = [a for post in posts for a in post]
    nzb = build_nzb([NzbEntry.from_articles(post) for post in posts])
    srv = await fake_nntp(articles=arts)
    client = await start_app(settings_for(tmp_path, srv, r2=r2_settings(s3_proxy.url, bucket)))
    job_id = await submit(client, nzb)
    await until(client, job_id, mirrored, t=60)
    key = f"movies/{job_id}/Set.2020.mkv"
    body = await asyncio.to_thread(
        lambda: moto_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    )
    assert body == data
