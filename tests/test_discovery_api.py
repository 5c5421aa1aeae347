"""Discovery through the HTTP API: browse TMDB, list releases, press Watch (auto and
manual), and auto mode moving on when a release is incomplete."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import urlencode

import pytest

from server.http.costs import Budget
from server.keys import COSTS
from tests.support.app import API, HEADERS, OTHER_KEY, follow, until
from tests.support.capabilities import CHROMIUM_JSON, FIREFOX_JSON
from tests.support.fake_tmdb import INCEPTION, THE_MATRIX, UNKNOWN_MOVIE_ID
from tests.support.world import MATRIX_RELEASES, World


async def test_browse_the_catalogue(world: World) -> None:
    found = await world.get("/search?query=matrix")
    assert THE_MATRIX in [m["id"] for m in found["results"]]
    assert {"page", "results", "total_pages", "total_results"} <= set(found)
    for path in ("/popular", "/top", "/popular?page=2", f"/movies/{THE_MATRIX}/similar"):
        page = await world.get(path)
        assert isinstance(page["results"], list)
    movie = await world.get(f"/movies/{THE_MATRIX}")
    assert movie["imdb_id"] == "tt0133093"
    assert movie["runtime"] == 136
    assert movie["cast"] and movie["crew"]
    assert movie["job_status"] is None


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/search?query=%20%20", "INVALID_INPUT"),
        ("/search?query=x&page=0", "INVALID_INPUT"),
        ("/popular?page=abc", "INVALID_INPUT"),
        ("/movies/-3", "INVALID_INPUT"),
        ("/movies/abc/similar", "INVALID_INPUT"),
        (f"/movies/{UNKNOWN_MOVIE_ID}", "NOT_FOUND"),
    ],
)
async def test_bad_requests_have_the_error_shape(world: World, path: str, code: str) -> None:
    resp = await world.client.get(f"{API}{path}", headers=HEADERS)
    body = await resp.json()
    assert body["code"] == code, body
    assert resp.status == {"INVALID_INPUT": 400, "NOT_FOUND": 404}[code]
    assert body["error"]


async def test_upstream_failures_are_502(world: World) -> None:
    world.tmdb.fail(times=1, status=500)
    body = await world.get("/popular?page=3", status=502)
    assert body["code"] == "TMDB_ERROR"
    world.geek.force_error = 100  # the indexer refuses the key
    body = await world.get(f"/movies/{THE_MATRIX}/releases", status=502)
    assert body["code"] == "NZBGEEK_ERROR"
    assert "g" * 32 not in body["error"]  # the key never shows


async def test_releases_best_first_with_reasons(world: World) -> None:
    body = await world.get(f"/movies/{THE_MATRIX}/releases")
    assert body["movie_id"] == THE_MATRIX and body["imdb_id"] == "tt0133093"
    titles = [r["title"] for r in body["releases"]]
    assert titles[0] == "The.Matrix.1999.1080p.BluRay.x264-AMIABLE"
    assert titles[-1] == "The.Matrix.1999.CAM.x264-BAD"
    assert body["releases"][-1]["excluded"] is True
    first = body["releases"][0]
    assert (
        first["quality"] == "1080p" and first["source"] == "BluRay" and first["group"] == "AMIABLE"
    )
    assert first["reasons"]
    prefer_720 = await world.get(f"/movies/{THE_MATRIX}/releases?quality_preference=720p")
    assert prefer_720["releases"][0]["title"] == "The.Matrix.1999.720p.BluRay.x264-SiNNERS"


async def test_watch_auto_downloads_the_best_release(world: World) -> None:
    world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202, body
    job_id = body["job_id"]
    # Pressing Watch again returns the same job instead of a second download.
    status, again = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {})
    assert status == 200 and again["job_id"] == job_id
    job = await until(world.client, job_id, lambda j: j["status"] == "ready")
    assert job["movie_id"] == THE_MATRIX
    assert job["release_title"] == "The.Matrix.1999.1080p.BluRay.x264-AMIABLE"
    movie = await world.get(f"/movies/{THE_MATRIX}")
    assert movie["job_status"]["job_id"] == job_id and movie["job_status"]["status"] == "ready"
    stream = await world.get(f"/movies/{THE_MATRIX}/stream")
    data = world.posts["The.Matrix.1999.1080p.BluRay.x264-AMIABLE"][0]
    assert await (await world.client.get(stream["url"])).read() == data


@pytest.mark.parametrize(
    ("browser", "picked"),
    [
        (CHROMIUM_JSON, "The.Matrix.1999.1080p.BluRay.x264-AMIABLE"),  # no HEVC decoder
        (FIREFOX_JSON, "The.Matrix.1999.1080p.BluRay.x265.AAC-GRP"),  # decodes HEVC
    ],
    ids=["chromium", "firefox"],
)
async def test_watch_picks_for_the_browser_that_pressed_it(
    world: World, browser: str, picked: str
) -> None:
    hevc = "The.Matrix.1999.1080p.BluRay.x265.AAC-GRP"
    world.geek.releases.append(replace(MATRIX_RELEASES[0], title=hevc))
    world.post(MATRIX_RELEASES[0].title)
    world.post(hevc)
    query = urlencode({"capabilities": browser})
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch?{query}", {})
    assert status == 202, body
    job = await until(world.client, body["job_id"], lambda j: j["release_title"] is not None)
    assert job["release_title"] == picked
    # The list the movie page shows this browser has the same release first.
    listed = await world.get(f"/movies/{THE_MATRIX}/releases?{query}")
    assert listed["releases"][0]["title"] == picked


async def test_watch_refuses_capabilities_that_do_not_read(world: World) -> None:
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch?capabilities=%7Bnope", {})
    assert status == 400 and body["code"] == "INVALID_INPUT", body
    assert (await world.get("/jobs"))["jobs"] == []


async def test_watch_manual_needs_a_known_release(world: World) -> None:
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "manual"})
    assert status == 400 and body["code"] == "INVALID_INPUT"
    status, body = await world.post_json(
        f"/movies/{THE_MATRIX}/fetch", {"mode": "manual", "release_id": "rel_nope"}
    )
    assert status == 400
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "sideways"})
    assert status == 400
    releases = (await world.get(f"/movies/{THE_MATRIX}/releases"))["releases"]
    chosen = next(r for r in releases if r["quality"] == "720p")
    world.post(chosen["title"])
    status, body = await world.post_json(
        f"/movies/{THE_MATRIX}/fetch", {"mode": "manual", "release_id": chosen["release_id"]}
    )
    assert status == 202
    job = await until(world.client, body["job_id"], lambda j: j["status"] == "ready")
    assert job["release_title"] == chosen["title"]


async def test_auto_mode_moves_on_when_articles_are_missing(world: World) -> None:
    best = world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    world.nntp.missing.add(best[1].message_id)  # gone from the provider, no PAR2
    world.post("The.Matrix.1999.720p.BluRay.x264-SiNNERS")
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    # Followed as the job page and `curl -N .../events` follow it: from the first snapshot
    # to the end of the stream.
    seen = await follow(world.client, body["job_id"])
    statuses = [s["status"] for s in seen]
    # The first release fails and the job moves on; nobody following it ever sees a final
    # status until it is ready, and the stream does not end early.
    assert statuses[-1] == "ready", statuses
    assert "error" not in statuses and "deleted" not in statuses, statuses
    tried = [s["release_title"] for s in seen if s["release_title"]]
    assert tried[0].endswith("AMIABLE") and tried[-1].endswith("SiNNERS"), tried
    retried = [s for s in seen if s["status"] == "queued" and s["attempt"] == 2]
    assert retried, "the retry is not visible in the stream"
    job = await world.get(f"/jobs/{body['job_id']}")
    assert job["release_title"] == "The.Matrix.1999.720p.BluRay.x264-SiNNERS"
    assert (job["status"], job["attempt"], job["error_message"]) == ("ready", 2, None)
    # The job's history says what the runner did and why, in order.
    log = (await world.get(f"/jobs/{body['job_id']}/log"))["events"]
    kinds = [e["kind"] for e in log]
    assert kinds[0] == "requested" and kinds[-1] == "ready", kinds
    assert kinds.index("retry") > kinds.index("release") and kinds.count("release") == 2
    retry = next(e for e in log if e["kind"] == "retry")
    assert "AMIABLE" in retry["message"] and "missing" in retry["message"]
    assert all(e["at"].endswith("Z") for e in log)


async def test_watch_logs_in_while_the_indexers_are_searched(world: World) -> None:
    world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    world.geek.delay = 1.0  # a slow indexer
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    async with asyncio.timeout(5):
        while world.nntp.connections_total < 2:
            await asyncio.sleep(0.01)
    # Connected before the indexer answered: no release chosen yet.
    assert (await world.get(f"/jobs/{body['job_id']}"))["release_title"] is None
    world.geek.delay = 0.0
    await until(world.client, body["job_id"], lambda j: j["status"] == "ready")


async def test_auto_mode_skips_a_release_whose_articles_are_gone(world: World) -> None:
    gone = world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    world.nntp.missing.update(a.message_id for a in gone)  # taken down
    world.post("The.Matrix.1999.720p.BluRay.x264-SiNNERS")
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    job = await until(world.client, body["job_id"], lambda j: j["status"] == "ready")
    assert job["release_title"] == "The.Matrix.1999.720p.BluRay.x264-SiNNERS"
    # Found out by asking (STAT), not by downloading: no BODY of the gone release was sent.
    asked = {line.split()[0] for _, line in world.nntp.commands if gone[0].message_id in line}
    assert asked == {"STAT"}, asked
    assert job["attempt"] == 2


async def test_auto_mode_gives_up_after_three_releases(world: World) -> None:
    for r in MATRIX_RELEASES[:3]:
        arts = world.post(r.title)
        world.nntp.missing.add(arts[0].message_id)
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    async with asyncio.timeout(30):
        while (job2 := await world.get(f"/jobs/{body['job_id']}"))["status"] != "error":
            await asyncio.sleep(0.05)
    # It says what went wrong, not only that nothing was left to try.
    assert "missing" in job2["error_message"] and "PAR2" in job2["error_message"]
    # Three releases were tried, the CAM copy never.
    assert world.geek.count("get") == 3


async def test_try_another_release_skips_the_one_that_failed(world: World) -> None:
    best = world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    world.nntp.missing.add(best[1].message_id)
    world.post("The.Matrix.1999.720p.BluRay.x264-SiNNERS")
    # Manual pick of the broken release: it fails and stays failed (no auto retry).
    releases = (await world.get(f"/movies/{THE_MATRIX}/releases"))["releases"]
    broken = next(r for r in releases if r["title"].endswith("AMIABLE"))
    status, body = await world.post_json(
        f"/movies/{THE_MATRIX}/fetch", {"mode": "manual", "release_id": broken["release_id"]}
    )
    assert status == 202
    async with asyncio.timeout(20):
        while (await world.get(f"/jobs/{body['job_id']}"))["status"] != "error":
            await asyncio.sleep(0.05)
    # "Try another release" is a new auto fetch: it must not pick the broken one again.
    status, again = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202 and again["job_id"] != body["job_id"]
    job = await until(world.client, again["job_id"], lambda j: j["status"] == "ready")
    assert job["release_title"] == "The.Matrix.1999.720p.BluRay.x264-SiNNERS"


async def test_a_single_broken_release_says_what_went_wrong(world: World) -> None:
    world.geek.releases = list(MATRIX_RELEASES[:1])
    arts = world.post(MATRIX_RELEASES[0].title)
    world.nntp.missing.add(arts[0].message_id)
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    async with asyncio.timeout(20):
        while (job := await world.get(f"/jobs/{body['job_id']}"))["status"] != "error":
            await asyncio.sleep(0.05)
    message = job["error_message"]
    assert "AMIABLE" in message and "missing" in message and "no other release" in message


async def test_searches_and_watches_are_limited_per_caller(world: World) -> None:
    assert world.client.app is not None
    costs = world.client.app[COSTS]
    costs.budgets = {"search": Budget(burst=2, per_minute=1), "fetch": Budget(1, 1)}
    for _ in range(2):
        await world.get(f"/movies/{THE_MATRIX}/releases")
    resp = await world.client.get(f"{API}/movies/{THE_MATRIX}/releases", headers=HEADERS)
    assert resp.status == 429
    assert (await resp.json())["code"] == "RATE_LIMITED"
    assert 30 <= int(resp.headers["Retry-After"]) <= 60
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert (status, body["code"]) == (429, "RATE_LIMITED")
    # The limits are per caller: another key has its own.
    other = {"X-Api-Key": OTHER_KEY}
    resp = await world.client.get(f"{API}/movies/{THE_MATRIX}/releases", headers=other)
    assert resp.status == 200


async def test_watch_of_an_unknown_movie_or_one_without_releases_is_404(world: World) -> None:
    status, body = await world.post_json(f"/movies/{UNKNOWN_MOVIE_ID}/fetch", {"mode": "auto"})
    assert (status, body["code"]) == (404, "NOT_FOUND")
    world.geek.releases = []
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert (status, body["code"]) == (404, "NOT_FOUND")
    assert "no release of The Matrix" in body["error"]
    assert (await world.get("/jobs"))["jobs"] == []  # no job was made for either


async def test_deleted_jobs_are_listed_only_when_asked_for(world: World) -> None:
    world.post("The.Matrix.1999.1080p.BluRay.x264-AMIABLE")
    status, body = await world.post_json(f"/movies/{THE_MATRIX}/fetch", {"mode": "auto"})
    assert status == 202
    resp = await world.client.delete(f"{API}/jobs/{body['job_id']}", headers=HEADERS)
    assert resp.status == 200
    assert (await world.get("/jobs"))["jobs"] == []
    deleted = (await world.get("/jobs?status=deleted"))["jobs"]
    assert [j["job_id"] for j in deleted] == [body["job_id"]]


async def test_tmdb_out_of_reach_is_500_and_an_error_from_tmdb_is_502(world: World) -> None:
    world.tmdb.fail(status=503)
    resp = await world.client.get(f"{API}/movies/{INCEPTION}", headers=HEADERS)
    assert (resp.status, (await resp.json())["code"]) == (502, "TMDB_ERROR")
    await world.tmdb.stop()  # nothing listens there any more
    resp = await world.client.get(f"{API}/movies/{INCEPTION}", headers=HEADERS)
    assert (resp.status, (await resp.json())["code"]) == (500, "INTERNAL_ERROR")
    assert "cannot reach TMDB" in (await resp.json())["error"]
