"""nntp.pick: which files of a post are the movie, by names and, when they lie, by content.

Names: a table of realistic posts (movie + sample + NFO + PAR2; RAR sets in every naming,
shuffled; obfuscated hashes) and the real NZBs in ../shared/fixtures/nzb. Content: magic
bytes of real files (tiny videos made by ffmpeg, the RAR fixtures, a PAR2 set made by
par2), and obfuscated posts downloaded from the scriptable NNTP server, decided through
their PAR2 index or their first bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest

import nntp.download as download_mod
from nntp.connection import ServerSpec
from nntp.download import Download
from nntp.media import RarView, open_file_view, open_rar_view
from nntp.nzb import Nzb, parse_nzb
from nntp.pick import PostLayout, classify, rank_files, rar_volume_name, resolve_layout, sniff
from tests.support.fake_nntp import FakeNntpFactory, FakeNntpServer
from tests.support.programs import needs, require
from tests.support.yenc import Article, NzbEntry, articles_for_bytes, build_nzb

MB = 1_000_000
PART = 8 * 1024
REST = 1_000_000  # the rank of files that are not the movie

needs_ffmpeg = needs("ffmpeg", "ffprobe")
needs_par2 = needs("par2")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_mod, "BACKOFF_START", 0.01)
    monkeypatch.setattr(download_mod, "BACKOFF_MAX", 0.05)


# -- by names -----------------------------------------------------------------------------


def nzb_of(files: list[tuple[str, float]]) -> Nzb:
    """An NZB whose files have these names and about these sizes in MB (no articles exist)."""
    entries = []
    for n, (name, size_mb) in enumerate(files):
        total = max(1, int(size_mb * MB))
        count = -(-total // (50 * MB))
        segments = tuple(
            (k + 1, total // count + (1 if k < total % count else 0), f"f{n}p{k}@pick.test")
            for k in range(count)
        )
        entries.append(NzbEntry(f'[{n + 1}/{len(files)}] - "{name}" yEnc (1/{count})', segments))
    return parse_nzb(build_nzb(entries))


def hexname(seed: str, length: int = 32) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _shuffled(files: list[tuple[str, float]], seed: int = 3) -> list[tuple[str, float]]:
    out = list(files)
    random.Random(seed).shuffle(out)
    return out


GRP = "Movie.Title.2019.1080p.BluRay.x264-GRP"
PARTS = [(f"Movie.2020.2160p.UHD.part{i:02d}.rar", 100.0) for i in range(1, 13)]
OLD = [("movie.2018.720p.rar", 50.0)] + [(f"movie.2018.720p.r{i:02d}", 50.0) for i in range(24)]
HASH_PARTS = [(f"{hexname('stem')}.part{i}.rar", 200.0) for i in range(1, 9)]

# (id, files, kind, main (in order), samples, ordered)
CASES: list[tuple[str, list[tuple[str, float]], str, list[str], list[str], bool]] = [
    (
        "movie-sample-nfo-par2",
        [
            (f"{GRP}.nfo", 0.01),
            (f"{GRP}.mkv", 8000),
            (f"{GRP}.sample.mkv", 60),
            (f"{GRP}.par2", 0.05),
            (f"{GRP}.vol000+01.par2", 10),
            (f"{GRP}.vol001+02.par2", 20),
        ],
        "video",
        [f"{GRP}.mkv"],
        [f"{GRP}.sample.mkv"],
        True,
    ),
    (
        "part-rar-shuffled-with-sample",
        _shuffled(
            [
                *PARTS[:-1],
                (PARTS[-1][0], 37.0),
                ("Movie.2020.2160p.UHD-sample.mkv", 80),
                ("Movie.2020.2160p.UHD.nfo", 0.01),
                ("Movie.2020.2160p.UHD.par2", 0.04),
                ("Movie.2020.2160p.UHD.vol00+10.par2", 50),
            ]
        ),
        "rar",
        [name for name, _ in PARTS],
        ["Movie.2020.2160p.UHD-sample.mkv"],
        True,
    ),
    (
        "old-style-rar-with-sample-set",
        _shuffled(
            [
                *OLD,
                ("movie.2018.720p.sfv", 0.001),
                ("movie.2018.720p-sample.rar", 30),
                ("movie.2018.720p-sample.r00", 30),
            ]
        ),
        "rar",
        [name for name, _ in OLD],
        ["movie.2018.720p-sample.rar", "movie.2018.720p-sample.r00"],
        True,
    ),
    (
        "numbered-split",
        _shuffled([(f"Movie.2017.1080p.WEB.{i:03d}", 250.0) for i in range(1, 9)]),
        "rar",
        [f"Movie.2017.1080p.WEB.{i:03d}" for i in range(1, 9)],
        [],
        True,
    ),
    (
        "mp4-with-subtitles",
        [
            ("Film.2015.720p.WEB.en.srt", 0.1),
            ("Film.2015.720p.WEB.mp4", 1500),
            ("Film.2015.720p.WEB.nl.srt", 0.1),
        ],
        "video",
        ["Film.2015.720p.WEB.mp4"],
        [],
        True,
    ),
    (
        "rar-set-bigger-than-an-extra-video",
        [("Extras.Featurette.mkv", 300), *((f"Movie.part{i}.rar", 800.0) for i in range(1, 6))],
        "rar",
        [f"Movie.part{i}.rar" for i in range(1, 6)],
        ["Extras.Featurette.mkv"],
        True,
    ),
    (
        "largest-of-several-videos-and-a-small-one",
        [("Movie.Part.A.mkv", 2000), ("Movie.Part.B.mkv", 2100), ("Trailer.mkv", 90)],
        "video",
        ["Movie.Part.B.mkv"],
        ["Trailer.mkv"],
        True,
    ),
    (
        "title-with-sampler-is-not-a-sample",
        [("The.Sampler.2021.1080p.mkv", 5000), ("The.Sampler.2021.1080p-sample.mkv", 50)],
        "video",
        ["The.Sampler.2021.1080p.mkv"],
        ["The.Sampler.2021.1080p-sample.mkv"],
        True,
    ),
    (
        "hashed-stem-part-names",
        _shuffled(HASH_PARTS),
        "rar",
        [name for name, _ in HASH_PARTS],
        [],
        True,
    ),
    (
        "each-volume-its-own-hash",
        [(f"{hexname(str(i))}.rar", 100.0) for i in range(6)],
        "rar",
        [f"{hexname(str(i))}.rar" for i in range(6)],
        [],
        False,
    ),
    (
        "only-a-sample",
        [("movie-sample.mkv", 60), ("movie.nfo", 0.01)],
        "none",
        [],
        ["movie-sample.mkv"],
        True,
    ),
    ("nothing-to-watch", [("readme.nfo", 0.01), ("cover.jpg", 0.2)], "none", [], [], True),
    (
        "obfuscated-hex-names",
        [(hexname(str(i)), 100.0) for i in range(10)] + [(hexname("x"), 0.05)],
        "unknown",
        [],
        [],
        True,
    ),
    (
        # Random extensions say no more than none; only the content can tell.
        "obfuscated-random-extensions",
        [(name, 100.0) for name in ("a8f3e1c9.x7q", "5feceb66.ffc", "6b86b273.fz3", "Qw3.bk")]
        + [("x7Kq2.Mv9", 0.05)],
        "unknown",
        [],
        [],
        True,
    ),
    (
        "obfuscated-with-named-par2",
        [(hexname(str(i)), 100.0) for i in range(5)]
        + [(f"{hexname('p')}.par2", 0.05), (f"{hexname('p')}.vol00+03.par2", 15)],
        "unknown",
        [],
        [],
        True,
    ),
]


@pytest.mark.parametrize(
    ("files", "kind", "main", "samples", "ordered"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_classify_by_names(
    files: list[tuple[str, float]], kind: str, main: list[str], samples: list[str], ordered: bool
) -> None:
    nzb = nzb_of(files)
    layout = classify(nzb)
    names = [f.name for f in nzb.files]
    assert layout.kind == kind
    got_main = [names[i] for i in layout.main]
    assert got_main == main if ordered else sorted(got_main) == sorted(main)
    assert layout.ordered is ordered
    assert sorted(names[i] for i in layout.samples) == sorted(samples)
    assert layout.bytes == sum(nzb.files[i].bytes for i in layout.main)
    par2 = [n for n in names if n.endswith(".par2")]
    assert sorted(names[i] for i in layout.par2) == sorted(par2)
    if par2:  # the index (smallest) first
        assert names[layout.par2[0]] == min(par2, key=lambda n: nzb.files[names.index(n)].bytes)
    if kind == "unknown":
        assert layout.needs_content_check
        sizes = [nzb.files[i].bytes for i in layout.candidates]
        assert sizes == sorted(sizes, reverse=True) and len(sizes) == len(names) - len(par2)
    else:
        assert not layout.needs_content_check
        assert layout.candidates == ()


@pytest.mark.parametrize(
    ("fixture", "kind", "first", "count"),
    [
        ("ravencentric_big_buck_bunny.nzb", "video", "Big Buck Bunny - S01E01.mkv", 1),
        ("ravencentric_big_buck_bunny.nzb.gz", "video", "Big Buck Bunny - S01E01.mkv", 1),
        ("sabnzbd_unicode_rar_localfile_segments.nzb", "rar", "你好世界.part01.rar", 11),
        ("nzbget_plain.nzb", "rar", "ubuntu-12.04-desktop-i386.r00", 1),
        ("radarr_ValidNzb.nzb", "rar", "Series.Title.s04e06.720p.hdtv.x264-killers.r00", 1),
        ("nzbget_dotless_obfuscated.nzb", "unknown", None, 0),
        ("newsreap_ubuntu-16.04.1-server-i386_obfuscated.nzb", "unknown", None, 0),
    ],
)
def test_classify_real_nzbs(
    shared_fixtures: Path, fixture: str, kind: str, first: str | None, count: int
) -> None:
    nzb = parse_nzb((shared_fixtures / "nzb" / fixture).read_bytes())
    layout = classify(nzb)
    assert layout.kind == kind
    assert len(layout.main) == count
    if first is not None:
        assert nzb.files[layout.main[0]].name == first
    if fixture.startswith("sabnzbd_unicode"):
        assert [nzb.files[i].name for i in layout.main] == [
            f"你好世界.part{i:02d}.rar" for i in range(1, 12)
        ]
    if kind == "unknown":
        assert layout.needs_content_check and layout.candidates


def test_rar_volume_names() -> None:
    assert rar_volume_name("a.b.part01.rar") == ("a.b", 0)
    assert rar_volume_name("a.b.PART10.RAR") == ("a.b", 9)
    assert rar_volume_name("a.rar") == ("a", 0)
    assert rar_volume_name("a.r00") == ("a", 1)
    assert rar_volume_name("a.r99") == ("a", 100)
    assert rar_volume_name("a.s00") == ("a", 101)
    assert rar_volume_name("a.001") == ("a", 0)
    assert rar_volume_name("a.mkv") is None
    assert rar_volume_name("a.ts") is None
    assert rar_volume_name("b2d3075d94af88c6742b1fdfc34b225e.10") is None


# -- by magic bytes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-second 64x64 clips in each container, made by ffmpeg."""
    require("ffmpeg")
    out = tmp_path_factory.mktemp("videos")
    made: dict[str, Path] = {}
    outputs = {
        "mkv": ["x.mkv"],
        "webm": ["-c:v", "libvpx", "-deadline", "realtime", "x.webm"],
        "mp4": ["x.mp4"],
        "mov": ["x.mov"],
        "ts": ["x.ts"],
        "avi": ["-c:v", "mpeg4", "x.avi"],
    }
    for kind, args in outputs.items():
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi"]
        cmd += ["-i", "testsrc=duration=1:size=64x64:rate=10", "-t", "1", *args]
        subprocess.run(cmd, cwd=out, check=True, capture_output=True, timeout=60)
        made[kind] = out / args[-1]
    return made


@needs_ffmpeg
def test_sniff_real_video_files(videos: dict[str, Path]) -> None:
    for kind, path in videos.items():
        head = path.read_bytes()[:16384]
        assert sniff(head) == kind, path
        # A name says nothing to sniff: the same bytes under any name are the same kind.
        assert sniff(bytearray(head)) == kind


def test_sniff_archives_and_par2(shared_fixtures: Path, tmp_path: Path) -> None:
    rar = shared_fixtures / "rar" / "rarfile"
    assert sniff((rar / "rar3-vols.part1.rar").read_bytes()[:16384]) == "rar"
    assert sniff((rar / "rar5-vols.part2.rar").read_bytes()[:16384]) == "rar"
    obfuscated = shared_fixtures / "rar" / "sabnzbd_fully_encrypted_and_obfuscated_rars"
    assert all(sniff(p.read_bytes()[:64]) == "rar" for p in obfuscated.iterdir())
    require("par2")
    (tmp_path / "a.bin").write_bytes(os.urandom(10_000))
    subprocess.run(
        ["par2", "create", "-q", "-q", "-r10", "a.par2", "a.bin"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert sniff((tmp_path / "a.par2").read_bytes()) == "par2"


def test_sniff_says_nothing_of_what_it_does_not_know() -> None:
    assert sniff(b"") is None
    assert sniff(os.urandom(16384).replace(b"\x47", b"\x48")) is None
    assert sniff(b"Just some text\r\n" * 100) is None
    assert sniff(b"PK\x03\x04" + bytes(100)) is None
    assert sniff(b"\x47" + bytes(187) + b"\x47" + bytes(187)) is None  # two packets: too few
    assert sniff((b"\x47" + bytes(187)) * 3) == "ts"
    assert sniff((bytes(4) + b"\x47" + bytes(187)) * 3) == "ts"  # M2TS, 192-byte packets
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff(b"Rar!\x1a\x07") is None  # cut before the version byte


# -- by content, over a download ----------------------------------------------------------


def post(files: list[tuple[str, bytes]], part: int = PART) -> tuple[Nzb, list[Article]]:
    entries: list[NzbEntry] = []
    articles: list[Article] = []
    for name, data in files:
        arts = articles_for_bytes(data, name, part_size=part)
        entries.append(NzbEntry.from_articles(arts))
        articles += arts
    return parse_nzb(build_nzb(entries)), articles


def spec(srv: FakeNntpServer) -> ServerSpec:
    return ServerSpec(
        name="primary", host=srv.host, port=srv.port, connections=2, pipelining=2, tls=False
    )


def make_par2(work: Path, index: str, names: list[str]) -> None:
    subprocess.run(
        ["par2", "create", "-q", "-q", "-r5", "-n1", index, *names],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=60,
    )


def ranks(dl: Download) -> list[int]:
    return [f.tasks[0].rank for f in dl.files]


@needs_par2
async def test_resolve_obfuscated_rar_set_through_its_par2_index(
    fake_nntp: FakeNntpFactory, tmp_path: Path, shared_fixtures: Path
) -> None:
    rar = shared_fixtures / "rar" / "rarfile"
    names = ["rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"]
    work = tmp_path / "par2"
    work.mkdir()
    for name in names:
        (work / name).symlink_to(rar / name)
    await asyncio.to_thread(make_par2, work, "movie.par2", names)
    vol = next(p for p in work.iterdir() if ".vol" in p.name)
    blobs = [(hexname(n), (rar / n).read_bytes()) for n in names]
    blobs += [(hexname("index"), (work / "movie.par2").read_bytes())]
    blobs += [(hexname("vol"), vol.read_bytes())]
    random.Random(5).shuffle(blobs)
    nzb, arts = post(blobs)
    layout = classify(nzb)
    assert layout.kind == "unknown" and len(layout.candidates) == 5
    srv = await fake_nntp(articles=arts, bytes_per_second=400_000)
    async with Download(nzb, tmp_path / "dl", [spec(srv)]) as dl:
        resolved = await resolve_layout(dl, layout)
        assert resolved.source == "par2"
        assert resolved.kind == "rar" and resolved.ordered
        assert [resolved.real_names[i] for i in resolved.main] == names
        assert [nzb.files[i].name for i in resolved.main] == [hexname(n) for n in names]
        assert resolved.name == "rar5-vols"
        index = next(i for i, f in enumerate(nzb.files) if f.name == hexname("index"))
        assert resolved.par2[0] == index
        # The volumes first, in order, then the PAR2 index, then the rest.
        expected = [REST] * len(nzb.files)
        for rank, i in enumerate(resolved.main):
            expected[i] = rank
        expected[index] = 3
        assert ranks(dl) == expected
        # Only the heads and the index were needed: the volumes are still coming.
        assert not all(dl.files[i].complete for i in resolved.main)
        # The headers agree with the names PAR2 gave.
        view = await open_rar_view(dl, resolved.main)
        assert isinstance(view, RarView)
        assert view.volumes == resolved.main
        assert (view.name, view.size) == ("bigfile.txt", 205_000)


@needs_ffmpeg
async def test_resolve_obfuscated_video_by_magic_bytes(
    fake_nntp: FakeNntpFactory, tmp_path: Path, videos: dict[str, Path]
) -> None:
    # Padded so the clip below is much smaller, i.e. a sample; the padding is never parsed.
    movie = videos["mp4"].read_bytes() + os.urandom(100_000)
    junk = os.urandom(len(movie) // 2)
    blobs = [
        (hexname("junk"), junk),
        (hexname("movie"), movie),
        ("release.nfo", b"great movie\r\n"),
        (hexname("clip"), videos["mkv"].read_bytes()[:2000]),
    ]
    nzb, arts = post(blobs, part=4096)
    layout = classify(nzb)
    assert layout.kind == "unknown"
    srv = await fake_nntp(articles=arts)
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        resolved = await resolve_layout(dl, layout)
        assert resolved.source == "magic"
        assert (resolved.kind, resolved.main) == ("video", (1,))
        assert resolved.name == f"{hexname('movie')}.mp4"
        assert resolved.samples == (3,)  # the tiny MKV clip
        assert ranks(dl) == [REST, 0, REST, REST]
        view = await open_file_view(dl, 1, etag_seed="job", name=resolved.name)
        assert view.content_type == "video/mp4"
        assert await view.read(0, view.size) == movie


async def test_resolve_keeps_a_named_layout_and_ranks_it_first(
    fake_nntp: FakeNntpFactory, tmp_path: Path
) -> None:
    blobs = [
        ("Movie.2019.nfo", b"x" * 100),
        ("Movie.2019.sample.mkv", os.urandom(3000)),
        ("Movie.2019.mkv", os.urandom(40_000)),
        ("Movie.2019.par2", b"PAR2\0PKT" + bytes(100)),
    ]
    nzb, arts = post(blobs)
    srv = await fake_nntp(articles=arts)
    async with Download(nzb, tmp_path, [spec(srv)]) as dl:
        layout = classify(nzb)
        resolved = await resolve_layout(dl, layout)
        assert resolved == layout
        assert ranks(dl) == [REST, REST, 0, 1]
        rank_files(dl, PostLayout("none"))
        assert ranks(dl) == [REST] * 4
