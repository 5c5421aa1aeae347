"""The web UI's pages as a browser without JavaScript gets them: each page renders for a
logged-in session against the fake TMDB, indexer and Usenet server, holds the elements the
page contract names, sends anonymous visitors to the login page, and keeps every link under
the configured base path. (Browser tests drive the same pages with JavaScript.)"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import pytest

from nntp.download import Download
from nntp.nzb import parse_nzb
from server.jobs.lifecycle import Failure, MediaKind, Status
from server.keys import DEMO, JOBS, STORE
from server.store.jobs import Media
from server.ui import checks as status_page
from server.ui.templates import STATIC_DIR
from tests.support.fake_tmdb import (
    INCEPTION,
    NOSFERATU,
    THE_MATRIX,
    UNKNOWN_MOVIE_ID,
    movie_by_id,
)
from tests.support.jobs import step
from tests.support.site import HTML, Page, Site, StartSite, assert_under_base
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb

PAGES = ["", "search", "search?q=matrix", f"movie/{THE_MATRIX}", "downloads", "status"]


# --------------------------------------------------------------------------- access


async def test_pages_send_anonymous_visitors_to_the_login_page(site: Site) -> None:
    for path in [*PAGES, "job/job_1700000000000_abcdef", "play/job_1700000000000_abcdef"]:
        resp = await site.client.get(f"{site.base}{path}", headers=HTML, allow_redirects=False)
        assert resp.status == 303, path
        location = resp.headers["Location"]
        assert location.startswith(f"{site.base}login?next="), (path, location)


async def test_login_page_keeps_its_contract(site: Site) -> None:
    resp = await site.client.get(f"{site.base}login", headers=HTML)
    page = Page(await resp.text())
    form = page.by_id("login-form")
    assert form.attrs["action"] == f"{site.base}login"
    assert page.one("input", name="password")
    assert page.one("button", type="submit")
    assert page.one("input", name="csrf").attrs["value"]
    assert not page.find(id="demo-banner")
    assert_under_base(page, site.base)


async def test_every_page_renders_under_the_base_path(site: Site) -> None:
    for path in PAGES:
        page = await site.get(path)
        assert page.one("meta", name="csrf-token").attrs["content"] == site.csrf
        assert page.one("link", rel="icon").attrs["href"].startswith(f"{site.base}static/")
        logout = page.one("form", class_="logout")
        assert logout.attrs["action"] == f"{site.base}logout"
        assert_under_base(page, site.base)
        for img in page.find("img"):
            assert img.attrs.get("alt"), f"{path}: an img without alt text: {img.attrs}"


# --------------------------------------------------------------------------- pages


async def test_home_has_rows_of_posters_and_downloads(site: Site) -> None:
    watched = await site.job(movie_id=THE_MATRIX, status="downloading", playable=True)
    await site.app[STORE].positions.set(watched.job_id, 754.0)
    running = await site.job(
        movie_id=INCEPTION, status="downloading", progress=42.0, release_title="Inception.2010"
    )
    page = await site.get("")
    for section in ("continue", "downloads", "popular", "top"):
        assert page.one("section", id=section)
    posters = [e for e in page.find("a", class_="poster") if e.inside("section", id="popular")]
    assert len(posters) == 8
    titles = {m.title for m in map(movie_by_id, (THE_MATRIX, INCEPTION, NOSFERATU))}
    for poster in posters:
        movie_id = int(poster.attrs["href"].removeprefix(f"{site.base}movie/"))
        alts = [i.attrs["alt"] for i in page.find("img") if poster in i.parents]
        assert alts == [movie_by_id(movie_id).title]
        titles.discard(alts[0])
    assert not titles
    assert [e for e in page.find("a", class_="poster") if e.inside("section", id="top")]
    resume = [e for e in page.find("a") if e.inside("section", id="continue")]
    assert [r.attrs["href"] for r in resume] == [f"{site.base}play/{watched.job_id}"]
    assert "12:34" in resume[0].text
    jobs = {j.attrs["data-job-id"] for j in page.find("li", class_="job")}
    assert jobs == {running.job_id, watched.job_id}
    bars = [e for e in page.find("progress") if e.inside("li", **{"data-job-id": running.job_id})]
    assert bars and bars[0].attrs["value"] == "42.0"


async def test_home_says_when_tmdb_fails(site: Site) -> None:
    site.tmdb.fail(times=10, status=500)
    page = await site.get("")
    popular = page.one("section", id="popular")
    assert "TMDB is having trouble" in popular.text
    assert page.one("section", id="continue")


async def test_search_renders_without_javascript(site: Site) -> None:
    page = await site.get("search")
    assert page.one("input", id="search-input").attrs["value"] == ""
    assert not [e for e in page.find("li") if e.inside("ul", id="results")]

    page = await site.get("search?q=matrix")
    assert page.one("input", id="search-input").attrs["value"] == "matrix"
    links = [e for e in page.find("a") if e.inside("ul", id="results")]
    assert [a.attrs["href"] for a in links] == [f"{site.base}movie/{THE_MATRIX}"]
    assert [i.attrs["alt"] for i in page.find("img") if links[0] in i.parents] == ["The Matrix"]
    assert "1999" in links[0].text and "★" in links[0].text
    assert not page.find(id="next-page") and not page.find(id="prev-page")

    page = await site.get("search?q=the&page=2")
    prev = page.one("a", id="prev-page")
    assert prev.attrs["href"] == f"{site.base}search?q=the&page=1"


async def test_search_shows_tmdb_errors_in_words(site: Site) -> None:
    site.tmdb.fail(times=10, status=500)
    page = await site.get("search?q=matrix")
    assert "TMDB is having trouble" in page.by_id("search-status").text


async def test_movie_page(site: Site) -> None:
    page = await site.get(f"movie/{INCEPTION}")
    assert page.one("h1", id="title").text == "Inception"
    assert page.by_id("year").text == "2010"
    assert "min" in page.by_id("runtime").text
    assert page.by_id("genres").text
    assert "★" in page.by_id("rating").text
    assert page.by_id("overview").text
    assert "Christopher Nolan" in page.by_id("director").text
    assert page.by_id("backdrop").attrs["src"].startswith(f"{site.base}img/w1280/")
    assert page.by_id("poster").attrs["src"].startswith(f"{site.base}img/w500/")
    cast = [e for e in page.find("li") if e.inside("ul", id="cast")]
    assert cast and "Leonardo DiCaprio" in cast[0].text  # billing order, not TMDB's listing
    photos = [e for e in page.find("img") if e.inside("ul", id="cast")]
    assert photos[0].attrs["alt"] == "Leonardo DiCaprio"
    assert photos[0].attrs["src"].startswith(f"{site.base}img/w185/")
    assert page.one("button", id="watch")
    assert page.one("table", id="releases")
    assert "hidden" in page.one("div", id="job-status").attrs
    similar = [e for e in page.find("a", class_="poster") if e.inside("section", id="similar")]
    assert similar and all(a.attrs["href"].startswith(f"{site.base}movie/") for a in similar)


async def test_movie_page_shows_its_job(site: Site) -> None:
    job = await site.job(movie_id=THE_MATRIX, status="downloading", progress=12.0)
    page = await site.get(f"movie/{THE_MATRIX}")
    status = page.one("div", id="job-status")
    assert "hidden" not in status.attrs
    links = [e for e in page.find("a") if e.inside("div", id="job-status")]
    assert [a.attrs["href"] for a in links] == [f"{site.base}job/{job.job_id}"]
    assert "Downloading" in status.text and "12%" in status.text


async def test_movie_without_poster_or_credits(site: Site) -> None:
    page = await site.get(f"movie/{NOSFERATU}")
    assert page.by_id("poster").attrs["src"].startswith(f"{site.base}static/no-poster.svg")
    assert not page.find(id="backdrop")


async def test_unknown_or_bad_movies_are_error_pages(site: Site) -> None:
    page = await site.get(f"movie/{UNKNOWN_MOVIE_ID}", status=404)
    assert "Not found" in page.by_id("error-title").text
    assert str(UNKNOWN_MOVIE_ID) in page.by_id("error-message").text
    page = await site.get("movie/abc", status=400)
    assert "positive whole number" in page.by_id("error-message").text
    await site.get("job/job_1_nope", status=404)
    await site.get("play/job_1_nope", status=404)


async def test_job_page_lights_play_now_when_playable(site: Site) -> None:
    job = await site.job(
        movie_id=THE_MATRIX, status="downloading", progress=3.5, release_title="The.Matrix.1999"
    )
    page = await site.get(f"job/{job.job_id}")
    assert page.one("h1").text == "The Matrix"
    assert page.by_id("stage").text == "Downloading"
    assert page.one("progress", id="progress").attrs["value"] == "3.5"
    assert page.by_id("speed") and page.by_id("eta")
    play = page.one("a", id="play-now")
    assert play.attrs["href"] == f"{site.base}play/{job.job_id}"
    assert play.attrs["aria-disabled"] == "true" and "disabled" in play.classes
    assert "hidden" in page.one("div", id="error").attrs

    media = Media("movie.mkv", MediaKind.FILE, "video/x-matroska", 1_000_000)
    await site.app[STORE].jobs.mark_playable(job.job_id, media)
    page = await site.get(f"job/{job.job_id}")
    play = page.one("a", id="play-now")
    assert "aria-disabled" not in play.attrs and "disabled" not in play.classes
    assert play.attrs["href"] == f"{site.base}play/{job.job_id}"


async def test_job_page_has_the_jobs_history(site: Site) -> None:
    job = await site.job(movie_id=THE_MATRIX, status="downloading")
    await site.app[STORE].events.add(job.job_id, "release", "chose The.Matrix.1999 from geek")
    page = await site.get(f"job/{job.job_id}")
    entries = page.find("li", data_kind="release")
    assert len(entries) == 1 and "chose The.Matrix.1999 from geek" in entries[0].text
    assert page.by_id("job-log").tag == "details"


async def test_job_page_explains_errors_and_offers_the_next_release(site: Site) -> None:
    job = await site.job(movie_id=THE_MATRIX, status="downloading", playable=True)
    await site.app[STORE].jobs.fail(
        job.job_id, "42 articles are missing on every server", Failure.USENET
    )
    page = await site.get(f"job/{job.job_id}")
    error = page.one("div", id="error")
    assert "hidden" not in error.attrs
    assert "42 articles are missing" in error.text
    assert page.one("button", id="next-release").attrs["data-movie-id"] == str(THE_MATRIX)
    assert page.one("a", id="play-now").attrs["aria-disabled"] == "true"


async def test_player_page(site: Site) -> None:
    job = await site.job(movie_id=THE_MATRIX, status="downloading", playable=True)
    page = await site.get(f"play/{job.job_id}")
    video = page.one("video", id="player")
    assert video.attrs["data-job-id"] == job.job_id
    hls = video.attrs["data-hls"]
    assert re.fullmatch(rf"{site.base}static/hls-\d+\.\d+\.\d+\.min\.js\?v=.+", hls), hls
    assert "hidden" in page.by_id("buffering").attrs
    assert not page.find("header")  # full window


async def test_downloads_page(site: Site) -> None:
    active = await site.job(movie_id=THE_MATRIX, status="downloading", bytes_total=2_000_000_000)
    done = await site.job(status="downloading", release_title="Some.Upload.2019")
    await step(site.app[STORE], done, Status.PREPARING)
    await step(site.app[STORE], done, Status.READY)
    gone = await site.job(status="deleted")
    page = await site.get("downloads")
    assert page.one("table", id="jobs")
    rows = {r.attrs["data-job-id"]: r for r in page.find("tr", class_="job")}
    assert set(rows) == {active.job_id, done.job_id}
    assert gone.job_id not in rows

    def buttons(job_id: str) -> set[str]:
        return {
            c
            for b in page.find("button")
            if b.inside("tr", **{"data-job-id": job_id}) and "hidden" not in b.attrs
            for c in b.classes
        }

    assert buttons(active.job_id) == {"cancel"}
    assert buttons(done.job_id) == {"delete"}
    assert "The Matrix" in rows[active.job_id].text and "2.0 GB" in rows[active.job_id].text
    assert "Some.Upload.2019" in rows[done.job_id].text


async def test_status_page_lists_services(site: Site) -> None:
    page = await site.get("status")
    services = {e.attrs["data-service"]: e for e in page.find("li", class_="service")}
    tools = {"ffmpeg", "ffprobe", "par2", "unar"}
    assert set(services) == {
        *("TMDB", "Indexer geek", "Usenet fake", "Disk", "R2", "Video encoder"),
        *("Reverse proxy", *tools),
    }
    for name in ("TMDB", "Indexer geek", "Usenet fake", "Video encoder", *tools):
        assert services[name].attrs["data-state"] == "ok", services[name].text
    assert "free of" in services["Disk"].text
    assert "ffmpeg version" in services["ffmpeg"].text  # its own words, from -version
    assert "Connections: 2" in services["Usenet fake"].text
    assert "libx264 on the CPU (preset veryfast, 2 threads)" in services["Video encoder"].text


async def test_status_page_shows_what_each_server_did(site: Site, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    arts = articles_for_bytes(data, "m.mkv", part_size=50_000)
    site.nntp.add(arts)
    site.nntp.missing.add(arts[1].message_id)  # one hole, which the download reports
    manager = site.app[JOBS]
    nzb = parse_nzb(build_nzb([NzbEntry.from_articles(arts)]))
    async with Download(nzb, tmp_path, manager.servers, line=manager.line) as dl:
        await dl.wait()
    usenet = (await site.get("status")).one("li", **{"data-service": "Usenet fake"})
    assert "Since start-up:" in usenet.text
    assert f"in {len(arts) - 1} articles" in usenet.text and "1 missing" in usenet.text


async def test_status_page_says_what_to_fix(start_site: StartSite) -> None:
    site = await start_site("/", services=False)
    page = await site.get("status")
    services = {e.attrs["data-service"]: e for e in page.find("li", class_="service")}
    assert set(services) == {
        *("TMDB", "Indexers", "Usenet", "Disk", "R2", "Video encoder", "Reverse proxy"),
        *("ffmpeg", "ffprobe", "par2", "unar"),
    }
    for name in ("TMDB", "Indexers", "Usenet"):
        assert services[name].attrs["data-state"] == "error"
        assert "What to fix" in services[name].text
    assert "MATINEE_TMDB_TOKEN" in services["TMDB"].text
    assert "[[usenet.servers]]" in services["Usenet"].text
    assert "3 services need attention" in page.by_id("status-summary").text


async def test_status_page_names_a_broken_indexer_and_a_dead_usenet_server(site: Site) -> None:
    site.geek.force_error = 100  # the indexer refuses the key
    await site.nntp.stop()
    page = await site.get("status")
    geek = page.one("li", **{"data-service": "Indexer geek"})
    assert geek.attrs["data-state"] == "error"
    assert "api_key" in geek.text
    usenet = page.one("li", **{"data-service": "Usenet fake"})
    assert usenet.attrs["data-state"] == "error"
    assert "cannot connect" in usenet.text and "host, port and tls" in usenet.text
    assert "g" * 32 not in page.html


async def test_home_and_pages_work_with_services_down(start_site: StartSite) -> None:
    site = await start_site("/movies/", services=False)
    page = await site.get("")
    assert "TMDB is not configured" in page.one("section", id="popular").text
    await site.get("downloads")
    await site.get("search?q=matrix")


# --------------------------------------------------------------------------- assets


async def test_every_referenced_static_asset_exists(site: Site) -> None:
    job = await site.job(movie_id=THE_MATRIX, status="downloading", playable=True)
    urls: set[str] = set()
    paths = [*PAGES, f"job/{job.job_id}", f"play/{job.job_id}", "no-such-page-but-login"]
    for path in paths[:-1]:
        page = await site.get(path)
        urls.update(u for u in page.urls() if u.startswith(f"{site.base}static/"))
        importmap = re.search(r'<script type="importmap">(.*?)</script>', page.html, re.S)
        assert importmap is not None
        urls.update(re.findall(r'"(/[^"]+)"', importmap[1].replace("\\u0026", "&")))
    login = Page(await (await site.client.get(f"{site.base}login", headers=HTML)).text())
    urls.update(u for u in login.urls() if u.startswith(f"{site.base}static/"))
    assert any("/js/" in u for u in urls) and any("hls-" in u for u in urls)
    for url in sorted(urls):
        resp = await site.client.get(url, headers=site.headers())
        assert resp.status == 200, url
    # what the modules import, and the CSS's own references
    for module in (STATIC_DIR / "js").glob("*.js"):
        for imported in re.findall(r'from "\./([\w-]+\.js)"', module.read_text()):
            assert (STATIC_DIR / "js" / imported).is_file(), f"{module.name} imports {imported}"
    for ref in re.findall(r'url\("([^"]+)"\)', (STATIC_DIR / "matinee.css").read_text()):
        assert (STATIC_DIR / ref).is_file(), ref


async def test_favicon(site: Site) -> None:
    resp = await site.client.get(f"{site.base}favicon.ico", headers=site.headers())
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    assert b"<svg" in await resp.read()


async def test_demo_banner_only_in_demo_mode(
    start_site: StartSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = await start_site("/")
    assert plain.app[DEMO] is False
    assert not (await plain.get("")).find(id="demo-banner")
    monkeypatch.setenv("MATINEE_DEMO", "1")
    demo = await start_site("/movies/")
    monkeypatch.delenv("MATINEE_DEMO")  # read once, at creation
    assert demo.app[DEMO] is True
    for path in ["", "downloads", "status"]:
        banner = (await demo.get(path)).by_id("demo-banner")
        assert banner.text == "Demo: stand-in data, not real services"
    login = Page(await (await demo.client.get("/movies/login", headers=HTML)).text())
    assert login.by_id("demo-banner")


async def test_status_page_does_not_wait_long_for_a_slow_indexer(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_page, "CHECK_TIMEOUT", 0.3)
    site.geek.delay = 3.0
    page = await site.get("status")
    geek = page.one("li", **{"data-service": "Indexer geek"})
    assert geek.attrs["data-state"] == "error"
    assert "Did not answer within 0.3 s" in geek.text


async def test_pages_carry_a_strict_content_security_policy(site: Site) -> None:
    resp = await site.client.get(f"{site.base}", headers=site.headers())
    html = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    # The only inline script is the import map, allowed by its exact hash.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", html, re.S)
    kinds = sorted(re.search(r'type="([^"]+)"', attrs)[1] for attrs, _ in inline)  # type: ignore[index]
    assert kinds == ["application/json", "importmap"]
    (import_map,) = [body for attrs, body in inline if "importmap" in attrs]
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    # Not only pages: static files and errors are never sniffed into something else.
    css = await site.client.get(f"{site.base}static/matinee.css")
    assert css.headers["X-Content-Type-Options"] == "nosniff"
