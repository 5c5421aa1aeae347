"""`kill -9` of `matinee serve` in the middle of an upload to R2, and a restart: the upload goes
on (ListParts) and the parts R2 already holds are not sent again, counted at the proxy in
front of the S3 server rather than by Matinee's own word."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.support.app import post_of, wait_for
from tests.support.fake_nntp import FakeNntpFactory
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, FaultProxy, Moto
from tests.support.serve import ServeProcess

pytestmark = pytest.mark.slow

MIB = 1 << 20
SIZE = 40 * MIB + 4321  # six parts of 8 MiB, the last one short
PARTS = set(range(1, 7))


def r2_sections(nntp_port: int, endpoint: str, bucket: str) -> str:
    return (
        f'[[usenet.servers]]\nhost = "127.0.0.1"\nport = {nntp_port}\ntls = false\n'
        f'[r2]\nenabled = true\nendpoint = "{endpoint}"\nbucket = "{bucket}"\n'
        f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
        "path_style = true\nconcurrency = 1\n"
    )


async def test_kill_9_mid_upload_then_restart_sends_only_the_missing_parts(
    tmp_path: Path, fake_nntp: FakeNntpFactory, moto_server: Moto, s3_proxy: FaultProxy
) -> None:
    data = await asyncio.to_thread(os.urandom, SIZE)
    nzb, arts = await asyncio.to_thread(post_of, data, "Long.2020.mkv")
    srv = await fake_nntp(articles=arts)
    bucket = await asyncio.to_thread(moto_server.new_bucket)
    s3_proxy.delay_parts = 0.4  # a part every 0.4 s or so: the kill lands mid-upload
    serve = ServeProcess(tmp_path, r2_sections(srv.port, s3_proxy.url, bucket))
    try:
        await serve.start()
        job_id = await serve.submit(nzb, "Long.2020.nzb")
        await wait_for(lambda: len(s3_proxy.parts) >= 2, within=60, every=0.02)
        await serve.stop(signal.SIGKILL)
        await wait_for(lambda: s3_proxy.inflight == 0, within=10)  # what was on its way lands
        before = set(s3_proxy.parts)
        sent_before = len(s3_proxy.parts)
        assert 2 <= len(before) < len(PARTS), before
        assert await asyncio.to_thread(moto_server.keys, bucket) == []  # not complete

        s3_proxy.delay_parts = 0.0
        await serve.start()

        async def mirrored() -> bool:
            mirror = (await serve.job(job_id))["mirror"]
            return isinstance(mirror, dict) and mirror["state"] == "mirrored"

        await wait_for(mirrored, within=60, every=0.1)
    finally:
        await serve.close()
    after = s3_proxy.parts[sent_before:]
    assert set(after).isdisjoint(before), f"sent again: {set(after) & before}"
    assert before | set(after) == PARTS and len(after) == len(set(after))
    assert s3_proxy.count("GET", query="uploadId") >= 1  # ListParts said what R2 held
    key = f"movies/{job_id}/Long.2020.mkv"
    head = await asyncio.to_thread(moto_server.client().head_object, Bucket=bucket, Key=key)
    assert head["ContentLength"] == SIZE
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert await asyncio.to_thread(moto_server.uploads, bucket) == []
