"""`make demo` works: with no accounts anywhere every film has a release, and it plays."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest

from server.http.passwords import verify_password
from tests.support.demo import DEMO_ENV, Demo, release_name, run_demo
from tests.support.fake_tmdb import MOVIES, THE_MATRIX, movie_by_id

pytestmark = pytest.mark.slow  # a whole demo: stand-in services, a film made with ffmpeg


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, f"{url}: {resp.status} {await resp.text()}"
        return await resp.json()


async def _until(
    http: aiohttp.ClientSession, demo: Demo, job_id: str, field: str, want: Any, t: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(t):
        while (job := await _get(http, f"{demo.api}/jobs/{job_id}"))[field] != want:
            assert job["status"] != "error", job["error_message"]
            await asyncio.sleep(0.05)
    return dict(job)


async def test_demo_watch_a_film_with_no_accounts() -> None:
    before = os.environ.get(DEMO_ENV)
    async with run_demo(port=0, seconds=20) as demo:
        assert os.environ[DEMO_ENV] == "1"  # set before create_app: every page says "demo"
        assert demo.url.startswith("http://127.0.0.1:")
        assert verify_password(demo.password, demo.settings.auth.password_hash or "")
        async with aiohttp.ClientSession() as anonymous, anonymous.get(demo.url) as resp:
            assert resp.url.path == "/login"  # a browser is sent to log in first
            assert 'class="demo-banner"' in await resp.text()
        headers = {"X-Api-Key": demo.api_key}
        async with aiohttp.ClientSession(headers=headers) as http:
            # Every film a person can reach has releases, all pointing at the demo film.
            for movie in MOVIES:
                found = await _get(http, f"{demo.api}/movies/{movie.id}/releases")
                titles = [r["title"] for r in found["releases"]]
                assert titles, f"{movie.title}: no releases"
                assert all(t.startswith(release_name(movie)) for t in titles), titles
            popular = await _get(http, f"{demo.api}/popular")
            assert {m["id"] for m in popular["results"]} <= {m.id for m in MOVIES}

            # Press Watch on The Matrix: it becomes playable while the throttled server is
            # still sending it, then ready, with the film's bytes.
            async with http.post(
                f"{demo.api}/movies/{THE_MATRIX}/fetch", json={"mode": "auto"}
            ) as resp:
                assert resp.status == 202, await resp.text()
                job_id = (await resp.json())["job_id"]
            job = await _until(http, demo, job_id, "playable", True)
            assert job["status"] == "downloading", job
            assert re.match(
                rf"{release_name(movie_by_id(THE_MATRIX))}\.1080p", job["release_title"]
            ), job
            demo.nntp.bytes_per_second = None  # no need to wait for the throttle now
            job = await _until(http, demo, job_id, "status", "ready")
            assert job["bytes_total"] == demo.film.size
            stream = await _get(http, f"{demo.api}/movies/{job_id}/stream")
            async with http.get(urljoin(demo.url, stream["url"])) as resp:
                body = await resp.read()
            want = hashlib.sha256(demo.film.path.read_bytes()).hexdigest()
            assert hashlib.sha256(body).hexdigest() == want
            folder = demo.film.path.parent
    assert not folder.exists()  # the demo's data is deleted at exit
    assert os.environ.get(DEMO_ENV) == before
