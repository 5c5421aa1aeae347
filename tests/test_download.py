"""The Usenet engine against a scriptable NNTP server: correctness under faults."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

import nntp.download as download_mod
from nntp.connection import ServerSpec
from nntp.download import STATE_FILE, Download, DownloadError
from nntp.fetch import fetch_nzb
from nntp.nzb import parse_nzb
from nntp.state import load_state, nzb_fingerprint
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer, TlsFiles
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb

PART = 32 * 1024


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_mod, "BACKOFF_START", 0.01)
    monkeypatch.setattr(download_mod, "BACKOFF_MAX", 0.05)


def make_post(files: dict[str, bytes], part: int = PART) -> tuple[bytes, dict[str, list[Article]]]:
    arts = {name: articles_for_bytes(data, name, part_size=part) for name, data in files.items()}
    nzb = build_nzb([NzbEntry.from_articles(a) for a in arts.values()])
    return nzb, arts


def spec(srv: FakeNntpServer, name: str = "primary", **kw: object) -> ServerSpec:
    opts: dict[str, object] = {
        "host": srv.host,
        "connections": 4,
        "pipelining": 4,
        "tls": False,
        "timeout": 5.0,
    }
    opts.update(kw)
    return ServerSpec(name=name, port=srv.port, **opts)  # type: ignore[arg-type]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_downloads_files_byte_identical(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    files = {"movie.mkv": os.urandom(1_000_000), "notes.nfo": b"hello\r\n.dots\r\n" * 10}
    nzb, arts = make_post(files)
    srv = await fake_nntp(articles=[a for v in arts.values() for a in v])
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv)])
    assert outcome.complete, outcome.problem
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data
    assert outcome.result.bytes == sum(len(d) for d in files.values())
    assert outcome.result.missing_segments == 0
    assert srv.errors == []


async def test_pipelines_requests(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    nzb, arts = make_post({"a.bin": os.urandom(40 * 1024)}, part=1024)
    srv = await fake_nntp(articles=arts["a.bin"])
    # One connection, depth 8: the server must see BODY commands before earlier replies end.
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv, connections=1, pipelining=8)])
    assert outcome.complete
    assert srv.connections_total == 1
    assert srv.max_pipelined >= 2


async def test_missing_on_primary_served_by_backup(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    nzb, arts = make_post({"m.mkv": data})
    ids = [a.message_id for a in arts["m.mkv"]]
    primary = await fake_nntp(articles=arts["m.mkv"])
    primary.missing.update(ids[1:4])
    backup = await fake_nntp(articles=arts["m.mkv"])
    outcome = await fetch_nzb(
        parse_nzb(nzb), tmp_path, [spec(primary), spec(backup, "backup", priority=1)]
    )
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data
    assert set(backup.bodies_served) == set(ids[1:4])  # the backup only filled the holes


async def test_corrupt_crc_is_refetched_from_backup(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    nzb, arts = make_post({"m.mkv": data})
    ids = [a.message_id for a in arts["m.mkv"]]
    primary = await fake_nntp(articles=arts["m.mkv"])
    primary.corrupt.add(ids[2])
    backup = await fake_nntp(articles=arts["m.mkv"])
    outcome = await fetch_nzb(
        parse_nzb(nzb), tmp_path, [spec(primary), spec(backup, "backup", priority=1)]
    )
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data
    assert set(backup.bodies_served) == {ids[2]}


async def test_missing_everywhere_is_reported(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"])
    srv.missing.add(arts["m.mkv"][3].message_id)
    srv.corrupt.add(arts["m.mkv"][4].message_id)
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv)])
    assert not outcome.complete
    assert outcome.result.missing_segments == 2
    assert "no PAR2" in (outcome.problem or "")
    # Everything else did arrive, in its place.
    got = (tmp_path / "m.mkv").read_bytes()
    assert got[: 3 * PART] == data[: 3 * PART]
    assert got[5 * PART :] == data[5 * PART :]


async def test_dropped_connection_mid_body_is_retried(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"])
    victim = arts["m.mkv"][5].message_id
    srv.drop_after[victim] = 5000
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv)])
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data
    assert srv.drops[victim] == 1
    assert srv.connections_total >= 2


async def test_refused_login_is_a_clear_error_without_retry_storm(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    nzb, arts = make_post({"m.mkv": os.urandom(100_000)})
    srv = await fake_nntp(articles=arts["m.mkv"], credentials=("alice", "right"))
    with pytest.raises(DownloadError, match="refused the login"):
        await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv, username="alice", password="wrong")])
    assert srv.auth_attempts <= 4
    assert all("wrong" not in line for _, line in srv.commands)


async def test_login_works(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"], credentials=("alice", "right"))
    outcome = await fetch_nzb(
        parse_nzb(nzb), tmp_path, [spec(srv, username="alice", password="right")]
    )
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data


async def test_never_exceeds_configured_connections(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    nzb, arts = make_post({"m.mkv": os.urandom(400_000)}, part=4096)
    srv = await fake_nntp(articles=arts["m.mkv"])
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv, connections=3)])
    assert outcome.complete
    assert srv.max_concurrent_connections <= 3


async def test_stalled_server_times_out_and_recovers(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"])
    victim = arts["m.mkv"][1].message_id
    srv.stall.add(victim)

    async def unstall() -> None:
        await asyncio.sleep(0.3)
        srv.stall.discard(victim)

    task = asyncio.create_task(unstall())
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv, timeout=1.0, connections=2)])
    await task
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data


async def test_slow_server_completes(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"], bytes_per_second=400_000)
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path, [spec(srv, timeout=2.0)])
    assert outcome.complete
    assert (tmp_path / "m.mkv").read_bytes() == data
    assert outcome.result.seconds >= 0.3


async def test_resume_after_stop_fetches_only_the_rest(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(600_000)
    nzb_doc, arts = make_post({"m.mkv": data}, part=16 * 1024)
    nzb = parse_nzb(nzb_doc)
    srv = await fake_nntp(articles=arts["m.mkv"], bytes_per_second=1_000_000)
    dl = Download(nzb, tmp_path, [spec(srv, connections=2)])
    await dl.start()
    while dl.progress.bytes_done < len(data) // 3:
        await asyncio.sleep(0.02)
    await dl.close()  # as on a stop; the state file is written
    first = sum(srv.bodies_served.values())
    assert 0 < first < len(arts["m.mkv"])
    srv.bytes_per_second = None
    dl2 = Download(nzb, tmp_path, [spec(srv, connections=2)])
    async with dl2:
        result = await dl2.wait()
    assert result.complete
    assert (tmp_path / "m.mkv").read_bytes() == data
    # Nothing fetched twice, apart from replies that were in flight at the stop.
    refetched = sum(n - 1 for n in srv.bodies_served.values() if n > 1)
    assert refetched <= 4
    assert result.bytes < len(data)


async def test_state_follows_the_bytes_on_a_fast_line(
    fake_nntp: FakeNntpFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill loses at most a small share of the download, however fast the line: the state
    file is written as bytes land, not only every few seconds (at 1 GB/s, two seconds
    were the whole post)."""
    monkeypatch.setattr(download_mod, "STATE_SAVE_INTERVAL", 3600.0)
    data = os.urandom(4_000_000)
    nzb_doc, arts = make_post({"m.mkv": data})
    nzb = parse_nzb(nzb_doc)
    srv = await fake_nntp(articles=arts["m.mkv"])
    srv.stall.add(arts["m.mkv"][-2].message_id)  # holds the download short of its end
    async with Download(nzb, tmp_path, [spec(srv, connections=2, pipelining=1)]) as dl:
        async with asyncio.timeout(10):
            while dl.progress.bytes_done < len(data) - PART:
                await asyncio.sleep(0.01)
        counts = [(f.name, len(f.segments)) for f in nzb.files]
        state = load_state(tmp_path / STATE_FILE, nzb_fingerprint(nzb), counts)
        claimed = sum(e - s for s, e in state.files["m.mkv"].ranges) if state.files else 0
        # Saved after every 1/64 of a download, and at least after every MiB.
        assert claimed >= dl.progress.bytes_done - (1 << 20)


async def test_reader_priority_jumps_the_queue(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    data = os.urandom(1_000_000)
    nzb_doc, arts = make_post({"m.mkv": data}, part=16 * 1024)
    srv = await fake_nntp(articles=arts["m.mkv"], bytes_per_second=600_000)
    dl = Download(parse_nzb(nzb_doc), tmp_path, [spec(srv, connections=2, pipelining=2)])
    async with dl:
        # First and last segments come first: the file's size is known early.
        while dl.files[0].size is None:
            await asyncio.sleep(0.01)
        start = int(len(data) * 0.9)
        await dl.wait_range(0, start, start + 20_000)
        # The range at 90 % is there while the sequential part is still far behind it.
        assert dl.files[0].ranges.available_from(0) < len(data) // 2
        with open(tmp_path / "m.mkv", "rb") as f:
            f.seek(start)
            assert f.read(20_000) == data[start : start + 20_000]


async def test_a_reader_stuck_behind_a_stalled_connection_is_served_elsewhere(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    """Head of line: a connection that stops sending while a reader waits on it is not
    waited out for the whole timeout (a minute here); its request goes out again."""
    data = os.urandom(600_000)
    nzb_doc, arts = make_post({"m.mkv": data}, part=16 * 1024)
    victim = arts["m.mkv"][20].message_id
    srv = await fake_nntp(articles=arts["m.mkv"])
    srv.stall.add(victim)  # its status line, then nothing

    async def unstall_once_asked() -> None:
        while not any(victim in line for _, line in srv.commands):
            await asyncio.sleep(0.01)
        srv.stall.discard(victim)  # the next request for it is served

    servers = [spec(srv, connections=2, pipelining=2, timeout=60.0)]
    async with Download(parse_nzb(nzb_doc), tmp_path, servers) as dl:
        unstall = asyncio.create_task(unstall_once_asked())
        start = 20 * 16 * 1024
        async with asyncio.timeout(15):
            await dl.wait_range(0, start, start + 1000)
        await unstall
        with open(tmp_path / "m.mkv", "rb") as f:
            f.seek(start)
            assert f.read(1000) == data[start : start + 1000]
    assert sum(victim in line for _, line in srv.commands) == 2


async def test_hostile_nzb_name_stays_inside_out_dir(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(10_000)
    arts = articles_for_bytes(data, "x.bin", part_size=PART)
    nzb = build_nzb([NzbEntry.from_articles(arts, subject='"../../escape.bin" yEnc (1/1)')])
    srv = await fake_nntp(articles=arts)
    out = tmp_path / "out"
    outcome = await fetch_nzb(parse_nzb(nzb), out, [spec(srv)])
    assert outcome.complete
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["escape.bin"]
    assert not (tmp_path / "escape.bin").exists()


async def test_tls_download_verifies_the_certificate(
    fake_nntp: FakeNntpFactory, nntp_tls: TlsFiles, tmp_path: Path
) -> None:
    data = os.urandom(150_000)
    nzb, arts = make_post({"m.mkv": data})
    srv = await fake_nntp(articles=arts["m.mkv"], tls=nntp_tls.server_context())
    good = spec(srv, tls=True, cafile=str(nntp_tls.cafile), host="localhost")
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path / "ok", [good])
    assert outcome.complete
    assert (tmp_path / "ok" / "m.mkv").read_bytes() == data
    # Without the CA the certificate is refused: a clear error, not a silent plain download.
    untrusted = spec(srv, tls=True, host="localhost", connections=1)
    with pytest.raises(DownloadError, match="certificate"):
        await fetch_nzb(parse_nzb(nzb), tmp_path / "bad", [untrusted])


def par2_post(tmp_path: Path, data: bytes, name: str) -> dict[str, bytes]:
    """A data file plus an index and 1-, 2- and 4-block volumes made by par2cmdline."""
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(data)
    subprocess.run(
        ["par2", "create", "-q", "-s16384", "-c7", "-n3", "-u", "rec.par2", name],
        cwd=src,
        check=True,
        capture_output=True,
    )
    return {p.name: p.read_bytes() for p in sorted(src.iterdir())}


async def test_repairs_with_only_the_volumes_needed(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    files = par2_post(tmp_path, data, "movie.mkv")
    vols = sorted(n for n in files if ".vol" in n)
    assert len(vols) == 3
    nzb, arts = make_post(files, part=16384)
    srv = await fake_nntp(articles=[a for v in arts.values() for a in v])
    # Two 16 KiB segments of the movie are gone from the only server: 2 blocks needed.
    srv.missing.update(a.message_id for a in arts["movie.mkv"][3:5])
    out = tmp_path / "out"
    outcome = await fetch_nzb(parse_nzb(nzb), out, [spec(srv)])
    assert outcome.complete, outcome.problem
    assert outcome.repaired
    assert (out / "movie.mkv").read_bytes() == data
    fetched_vols = {n for n in vols if any(a.message_id in srv.bodies_served for a in arts[n])}
    blocks = sum(int(n.split("+")[1].split(".")[0]) for n in fetched_vols)
    assert blocks == 2
    assert not (out / "movie.mkv.1").exists()  # par2's backup of the damaged file is removed


async def test_unrepairable_post_says_so(fake_nntp: FakeNntpFactory, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    files = par2_post(tmp_path, data, "movie.mkv")
    nzb, arts = make_post(files, part=16384)
    srv = await fake_nntp(articles=[a for v in arts.values() for a in v])
    srv.missing.update(a.message_id for a in arts["movie.mkv"][:12])  # 12 blocks > 7 available
    outcome = await fetch_nzb(parse_nzb(nzb), tmp_path / "out", [spec(srv)])
    assert not outcome.complete
    assert "cannot repair" in (outcome.problem or "")


async def test_obfuscated_names_restored_from_par2(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    files = par2_post(tmp_path, data, "The.Movie.2019.mkv")
    files["a3f9c0d1e2b4"] = files.pop("The.Movie.2019.mkv")  # what the NZB calls it
    nzb, arts = make_post(files, part=16384)
    srv = await fake_nntp(articles=[a for v in arts.values() for a in v])
    out = tmp_path / "out"
    outcome = await fetch_nzb(parse_nzb(nzb), out, [spec(srv)])
    assert outcome.complete
    assert (out / "The.Movie.2019.mkv").read_bytes() == data
    assert not (out / "a3f9c0d1e2b4").exists()
    assert "The.Movie.2019.mkv" in [f.name for f in outcome.files]


async def test_a_posted_file_named_like_the_engines_state_cannot_replace_it(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    hostile = b'{"version": 1, "nzb": "forged", "files": []}' + os.urandom(100_000)
    movie = os.urandom(200_000)
    nzb, arts = make_post({STATE_FILE: hostile, "movie.mkv": movie})
    srv = await fake_nntp(articles=[a for v in arts.values() for a in v])
    out = tmp_path / "out"
    outcome = await fetch_nzb(parse_nzb(nzb), out, [spec(srv)])
    assert outcome.complete
    # The posted file is kept under a visible name; the engine's own state is its own.
    assert (out / ("_" + STATE_FILE.lstrip("."))).read_bytes() == hostile
    assert (out / "movie.mkv").read_bytes() == movie
    assert (out / STATE_FILE).read_bytes() != hostile
