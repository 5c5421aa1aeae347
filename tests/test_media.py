"""nntp.media: readable views over partial downloads, against the scriptable NNTP server.

The server is throttled so the download is slower than the reads: a view must hand out
the bytes a reader asks for (prioritised) long before the download is done, and they must
be the right bytes. RAR sets are the real store-mode volumes in ../shared/fixtures/rar,
read in place, posted under their names and again obfuscated; what a RarView reads is
compared with what unar extracts.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest

import nntp.download as download_mod
from nntp.connection import ServerSpec
from nntp.download import Download, DownloadError
from nntp.errors import SegmentsMissing
from nntp.media import (
    FileView,
    MediaView,
    Piece,
    RarNotStreamable,
    RarView,
    content_type_for,
    open_file_view,
    open_rar_view,
    wait_bytes,
    wait_size,
)
from nntp.nzb import Nzb, parse_nzb
from nntp.pick import classify, resolve_layout
from nntp.rar import assemble, parse_volume
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.programs import needs, require
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb

PART = 8 * 1024
MIB = 1 << 20
STORE_SETS = {
    "rar3-vols": ["rar3-vols.part1.rar", "rar3-vols.part2.rar", "rar3-vols.part3.rar"],
    "rar3-old": ["rar3-old.rar", "rar3-old.r00", "rar3-old.r01"],
    "rar5-vols": ["rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"],
}
# An EBML header as ffmpeg writes it for Matroska (DocType "matroska").
MKV_HEAD = (
    bytes.fromhex("1a45dfa3 a3 42868101 42f78101 42f28104 42f38108 428288")
    + b"matroska"
    + bytes.fromhex("42878104 42858102")
)

needs_unar = needs("unar")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_mod, "BACKOFF_START", 0.01)
    monkeypatch.setattr(download_mod, "BACKOFF_MAX", 0.05)


@pytest.fixture(scope="module")
def rardir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "rar" / "rarfile"


@pytest.fixture(scope="module")
def unar_out(rardir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What unar extracts from each archive used here, one folder per archive."""
    require("unar")
    out = tmp_path_factory.mktemp("unar")
    for archive in [*(names[0] for names in STORE_SETS.values()), "seektest.rar"]:
        subprocess.run(
            ["unar", "-q", "-D", "-f", "-o", str(out / archive), str(rardir / archive)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return out


def post(files: list[tuple[str, bytes]], part: int = PART) -> tuple[Nzb, list[Article]]:
    entries: list[NzbEntry] = []
    articles: list[Article] = []
    for name, data in files:
        arts = articles_for_bytes(data, name, part_size=part)
        entries.append(NzbEntry.from_articles(arts))
        articles += arts
    return parse_nzb(build_nzb(entries)), articles


def spec(srv: FakeNntpServer, **kw: object) -> ServerSpec:
    opts: dict[str, object] = {
        "host": srv.host,
        "connections": 2,
        "pipelining": 2,
        "tls": False,
        "timeout": 5.0,
    }
    opts.update(kw)
    return ServerSpec(name="primary", port=srv.port, **opts)  # type: ignore[arg-type]


def complete(dl: Download) -> bool:
    return all(f.complete for f in dl.files if f.selected)


# -- FileView --------------------------------------------------------------------------


async def test_file_view_serves_the_head_and_90_percent_before_the_download_ends(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(3 * MIB)
    nzb, arts = post([("Movie.2019.1080p.mkv", data), ("movie.nfo", b"nfo\r\n" * 100)], 64 * 1024)
    srv = await fake_nntp(articles=arts, bytes_per_second=1_500_000)  # about 2 s in all
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        assert await wait_size(dl, 0) == len(data)
        view: MediaView = FileView(dl, 0, etag_seed="job_1_abc")
        assert (view.name, view.size, view.content_type) == (
            "Movie.2019.1080p.mkv",
            len(data),
            "video/x-matroska",
        )
        assert await view.read(0, MIB) == data[:MIB]
        assert not dl.files[0].complete
        at = int(len(data) * 0.9)
        assert await view.read(at, 100_000) == data[at : at + 100_000]
        # The range at 90 % came while the sequential download was far behind it.
        assert not dl.files[0].complete
        assert dl.files[0].ranges.available_from(0) < at
        assert view.available(at) >= 100_000
        assert view.available(len(data)) == 0
        srv.bytes_per_second = None
        await dl.wait()
        assert view.available(0) == len(data)
        assert await view.read(0, len(data) + 10) == data  # clamped at the end
        assert await view.read(len(data), 10) == b""
        path = str(tmp_path / "Movie.2019.1080p.mkv")
        assert view.pieces(at, 10) == [Piece(path, at, 10)]
        assert view.pieces(len(data) - 5, 10) == [Piece(path, len(data) - 5, 5)]
        assert view.pieces(len(data), 10) == []
        with pytest.raises(ValueError):
            view.pieces(-1, 10)
        # The ETag is stable per job and file, and differs between jobs.
        assert view.etag == FileView(dl, 0, etag_seed="job_1_abc").etag
        assert view.etag != FileView(dl, 0, etag_seed="job_2_def").etag
        assert view.etag.startswith('"') and view.etag.endswith(f'-{len(data)}"')


async def test_file_view_needs_the_size(tmp_path: Path) -> None:
    nzb, _ = post([("a.mkv", b"x" * 1000)])
    dl = Download(nzb, tmp_path, [ServerSpec(name="s", host="127.0.0.1", port=9)])
    with pytest.raises(ValueError, match="wait_size"):
        FileView(dl, 0, etag_seed="j")


async def test_open_file_view_tells_the_type_by_magic_bytes_and_reports_missing_segments(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = MKV_HEAD + os.urandom(200_000)
    name = "5f0c8a7e2b9d4c61a3e7f09b2d4c8e1a"  # an obfuscated post: no extension
    nzb, arts = post([(name, data)], part=16 * 1024)
    srv = await fake_nntp(articles=arts)
    srv.missing.add(arts[5].message_id)
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        view = await open_file_view(dl, 0, etag_seed="job")
        assert view.content_type == "video/x-matroska"
        assert view.name == name
        named = await open_file_view(dl, 0, etag_seed="job", name="../Real Name.mkv")
        assert named.name == "Real Name.mkv"
        assert await view.read(0, 5 * 16 * 1024) == data[: 5 * 16 * 1024]
        with pytest.raises(SegmentsMissing):
            await view.read(5 * 16 * 1024 + 100, 1000)
        with pytest.raises(SegmentsMissing):
            await view.wait(0, len(data))
        # Never wrong bytes: the hole is not reported as available.
        assert view.available(0) == 5 * 16 * 1024
        assert await view.read(6 * 16 * 1024, 1000) == data[6 * 16 * 1024 : 6 * 16 * 1024 + 1000]


async def test_size_is_learnt_when_the_first_segment_is_missing(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    nzb, arts = post([("a.mkv", data), ("gone.mkv", data[:5000])], part=16 * 1024)
    srv = await fake_nntp(articles=arts)
    srv.missing.add(arts[0].message_id)
    srv.missing.add(arts[-1].message_id)  # the whole of gone.mkv
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        assert await wait_size(dl, 0) == len(data)
        with pytest.raises(SegmentsMissing):
            await wait_size(dl, 1)
    # A stopped download never leaves a waiter hanging.
    with pytest.raises(DownloadError):
        await wait_bytes(dl, 0, 0, 10)


def test_content_type_by_name_and_by_magic() -> None:
    assert content_type_for("a.mkv") == "video/x-matroska"
    assert content_type_for("a.MP4") == "video/mp4"
    assert content_type_for("a.m4v") == "video/mp4"
    assert content_type_for("a.webm") == "video/webm"
    assert content_type_for("a.ts") == "video/mp2t"
    assert content_type_for("a.avi") == "video/x-msvideo"
    assert content_type_for("a.nfo") == "application/octet-stream"
    assert content_type_for("0123abcd") == "application/octet-stream"
    # The bytes win over the name.
    assert content_type_for("a.mp4", MKV_HEAD) == "video/x-matroska"
    webm = MKV_HEAD.replace(b"\x42\x82\x88matroska", b"\x42\x82\x84webm").replace(
        b"\xa3\x42\x86", b"\x9f\x42\x86"
    )
    assert content_type_for("x", webm) == "video/webm"
    assert content_type_for("x", b"\x00\x00\x00\x20ftypisom" + bytes(20)) == "video/mp4"
    assert content_type_for("x.mkv", b"Rar!\x1a\x07\x01\x00" + bytes(8)) == (
        "application/octet-stream"
    )


# -- RarView -------------------------------------------------------------------------------


def _hex_name(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


@needs_unar
@pytest.mark.parametrize("obfuscated", [False, True], ids=["named", "obfuscated"])
@pytest.mark.parametrize("set_name", list(STORE_SETS))
async def test_rar_view_reads_a_stored_set_while_it_downloads(
    fake_nntp: FakeNntpFactory,
    tmp_path: Path,
    rardir: Path,
    unar_out: Path,
    set_name: str,
    obfuscated: bool,
) -> None:
    names = STORE_SETS[set_name]
    files = [(n, (rardir / n).read_bytes()) for n in names]
    if obfuscated:
        files = [(_hex_name(n), d) for n, d in files]
        random.Random(set_name).shuffle(files)
        if [n for n, _ in files] == [_hex_name(n) for n in names]:
            files.reverse()
    nzb, arts = post(files)
    expected = (unar_out / names[0] / "vols" / "bigfile.txt").read_bytes()
    srv = await fake_nntp(articles=arts, bytes_per_second=250_000)  # about 0.9 s in all
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        layout = await resolve_layout(dl, classify(nzb))
        assert layout.kind == "rar"
        assert sorted(layout.main) == [0, 1, 2]
        assert layout.source == ("magic" if obfuscated else "names")
        view = await open_rar_view(dl, layout.main, etag_seed="job_7")
        assert isinstance(view, RarView), view
        as_media: MediaView = view
        # The headers came from the edges of the volumes: the download is far from done.
        assert not complete(dl)
        in_order = [nzb.files[i].name for i in view.volumes]
        assert in_order == ([_hex_name(n) for n in names] if obfuscated else names)
        # ... and the download now fetches the volumes in that order.
        assert [dl.files[i].tasks[0].rank for i in view.volumes] == [0, 1, 2]
        assert (view.name, view.size, view.content_type) == (
            "bigfile.txt",
            205_000,
            "application/octet-stream",
        )
        at = 150_000  # in the second volume
        assert await view.read(at, 4096) == expected[at : at + 4096]
        assert not complete(dl)
        assert view.available(at) >= 4096
        assert await view.read(0, view.size) == expected
        assert view.available(0) == view.size
        # The mapping is the parser's: pieces equal RarEntry.locate on the volumes' paths.
        rng = random.Random(1)
        for _ in range(50):
            offset = rng.randrange(view.size)
            length = rng.randrange(view.size - offset + 1)
            want = [
                Piece(str(dl.files[view.volumes[p.volume]].path), p.offset, p.length)
                for p in view.entry.locate(offset, length)
            ]
            assert view.pieces(offset, length) == want
            assert sum(p.length for p in want) == length
        assert len(view.pieces(0, view.size)) == len(view.entry.pieces)
        assert as_media.etag == RarView(dl, view.volumes, view.entry, etag_seed="job_7").etag
        assert as_media.etag != RarView(dl, view.volumes, view.entry, etag_seed="job_8").etag


async def _open_set(
    fake_nntp: FakeNntpFactory, tmp_path: Path, files: list[tuple[str, bytes]], **kw: str
) -> tuple[Download, RarView | RarNotStreamable]:
    nzb, arts = post(files)
    srv = await fake_nntp(articles=arts)
    dl = Download(nzb, tmp_path, [spec(srv)])
    await dl.start()
    try:
        return dl, await open_rar_view(dl, range(len(files)), **kw)
    except BaseException:
        await dl.close()
        raise


@pytest.mark.parametrize(
    ("archives", "reason"),
    [
        (["rarfile/rar3-solid.rar"], "compressed"),
        (["rarfile/seektest.rar"], "compressed"),  # stest1 is m5; stest2 (m0) is as large
        (["rarfile/rar5-solid.rar"], "compressed"),
        (["rarfile/rar5-psw.rar"], "encrypted"),
        (["rarfile/rar5-hpsw.rar"], "headers encrypted"),
        (["rarfile/rar3-comment-hpsw.rar"], "headers encrypted"),
        (
            [
                f"sabnzbd_fully_encrypted_and_obfuscated_rars/{n}"
                for n in (
                    "032f4c17-50ec-456d-ac02-e118e62f5a55",
                    "8a5c1f24-55b1-43f5-8407-d28d2c0ea95f",
                    "b0a3af52-165b-4285-af12-8f3952586af4",
                    "bdfeb75c-c177-4efb-8bc9-764103c82a23",
                    "dee6a48c-c443-45e1-a7ff-e38c31df60c4",
                    "df604a04-1514-48a4-b113-829aca167cd9",
                )
            ],
            "headers encrypted",
        ),
        (["rarfile/rar3-vols.part1.rar", "rarfile/rar3-vols.part3.rar"], "invalid"),
        (["rarfile/rar3-vols.part1.rar.exp"], "invalid"),
    ],
    ids=lambda v: v if isinstance(v, str) else Path(v[0]).name,
)
async def test_sets_that_cannot_stream_say_why(
    fake_nntp: FakeNntpFactory,
    tmp_path: Path,
    shared_fixtures: Path,
    archives: list[str],
    reason: str,
) -> None:
    files = [(Path(a).name, (shared_fixtures / "rar" / a).read_bytes()) for a in archives]
    dl, result = await _open_set(fake_nntp, tmp_path, files)
    async with dl:
        assert isinstance(result, RarNotStreamable)
        assert result.reason == reason
        assert str(result).startswith(f"not streamable: {reason}")


@needs_unar
async def test_a_stored_file_beside_a_compressed_one_can_be_chosen(
    fake_nntp: FakeNntpFactory, tmp_path: Path, rardir: Path, unar_out: Path
) -> None:
    files = [("seektest.rar", (rardir / "seektest.rar").read_bytes())]
    dl, view = await _open_set(fake_nntp, tmp_path, files, entry_name="stest2.txt")
    async with dl:
        assert isinstance(view, RarView)
        assert (
            await view.read(0, view.size) == (unar_out / "seektest.rar" / "stest2.txt").read_bytes()
        )
        missing = await open_rar_view(dl, [0], entry_name="nope.mkv")
        assert isinstance(missing, RarNotStreamable) and missing.reason == "no files"
        entries = assemble([parse_volume(files[0][1])])
        compressed = next(e for e in entries if e.name == "stest1.txt")
        with pytest.raises(ValueError, match="not stored"):
            RarView(dl, [0], compressed)
        with pytest.raises(ValueError, match="volume"):
            RarView(dl, [], view.entry)
