"""ffprobe on real little movies (files and HTTP ranges), ffprobe JSON as literals, and the
subprocess runner underneath: errors that explain themselves, no child left behind."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.processes import children_named
from tests.support.programs import needs
from transcode.compat import plan
from transcode.probe import (
    MediaInfo,
    ProbeError,
    ProbeTimeout,
    bit_depth_of,
    chroma_of,
    ffprobe_argv,
    normalise_container,
    parse_probe,
    probe,
)
from transcode.process import (
    Process,
    ProcessError,
    ProcessTimeout,
    Progress,
    ProgressParser,
    iter_progress,
    progress_from_fields,
    run,
)

pytestmark = needs("ffmpeg", "ffprobe")

SECONDS = 1.0


# -- media made with ffmpeg ----------------------------------------------------------------


def _encoders() -> set[str]:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    rows = (line.split() for line in out.splitlines() if line.startswith(" "))
    return {row[1] for row in rows if len(row) > 1}


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


VIDEO_IN = ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=24:duration={SECONDS}"]
AUDIO_IN = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class Movies:
    directory: Path
    encoders: frozenset[str]

    def path(self, name: str) -> Path:
        path = self.directory / name
        if not path.exists():
            raise LookupError(name)
        return path


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Movies:
    """Every sample movie, made once per module (about a second of ffmpeg in all)."""
    root = tmp_path_factory.mktemp("movies")
    encoders = frozenset(_encoders())
    _ffmpeg(*VIDEO_IN, *AUDIO_IN, *X264, "-c:a", "aac", "-movflags", "+faststart",
            str(root / "faststart.mp4"))  # fmt: skip
    _ffmpeg(*VIDEO_IN, *AUDIO_IN, *X264, "-c:a", "aac", str(root / "moov-at-end.mp4"))
    srt = root / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nHallo\n", encoding="utf-8")
    _ffmpeg(
        *VIDEO_IN, *AUDIO_IN, "-i", str(srt),
        "-map", "0:v", "-map", "1:a", "-map", "2:s",
        *X264, "-c:a", "ac3", "-c:s", "srt",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Main",
        "-metadata:s:s:0", "language=ger", "-disposition:s:0", "forced",
        "-metadata", "title=Sample Movie",
        str(root / "h264-ac3-srt.mkv"),
    )  # fmt: skip
    _ffmpeg(*VIDEO_IN, *AUDIO_IN, *X264, "-c:a", "aac", "-f", "mpegts", str(root / "movie.ts"))
    if {"libvpx-vp9", "libopus"} <= encoders:
        _ffmpeg(*VIDEO_IN, *AUDIO_IN, "-c:v", "libvpx-vp9", "-deadline", "realtime",
                "-cpu-used", "8", "-pix_fmt", "yuv420p", "-c:a", "libopus",
                str(root / "vp9-opus.webm"))  # fmt: skip
    if "libx265" in encoders:
        _ffmpeg(
            *VIDEO_IN, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
            "-pix_fmt", "yuv420p10le", "-color_trc", "smpte2084", "-color_primaries", "bt2020",
            "-colorspace", "bt2020nc", str(root / "hevc-hdr10.mkv"),
        )  # fmt: skip
    # Big enough (~1 MB) that reaching its index at the end takes a range request.
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x120:rate=24:duration={SECONDS}", *AUDIO_IN,
            "-vf", "noise=alls=100:allf=t", *X264, "-qp", "0", "-c:a", "aac",
            str(root / "big-moov-at-end.mp4"))  # fmt: skip
    (root / "notes.txt").write_text("not a movie at all\n" * 50, encoding="utf-8")
    noise = random.Random(1)
    (root / "noise.bin").write_bytes(bytes(noise.randrange(256) for _ in range(20_000)))
    return Movies(root, encoders)


def _needs(movies: Movies, name: str) -> Path:
    try:
        return movies.path(name)
    except LookupError:
        pytest.skip(f"this ffmpeg cannot make {name} (encoder missing)")


def _atom_offset(path: Path, atom: bytes) -> int:
    """Offset of a top-level MP4 box, walking the box headers."""
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == atom:
            return offset
        if size < 8:
            break
        offset += size
    raise AssertionError(f"no {atom!r} box in {path.name}")


# -- probing files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["faststart.mp4", "moov-at-end.mp4"])
async def test_mp4_with_and_without_faststart(movies: Movies, name: str) -> None:
    path = movies.path(name)
    moov_first = _atom_offset(path, b"moov") < _atom_offset(path, b"mdat")
    assert moov_first == (name == "faststart.mp4")  # the samples are what they claim

    info = await probe(path)

    assert info.container == "mp4"
    assert info.format_name.startswith("mov,mp4")
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert info.size == path.stat().st_size
    assert info.bit_rate and info.bit_rate > 0
    video, audio = info.video, info.audio
    assert video is not None and audio is not None
    assert (video.kind, video.codec, video.codec_tag) == ("video", "h264", "avc1")
    assert (video.width, video.height, video.pix_fmt) == (64, 48, "yuv420p")
    assert video.frame_rate == pytest.approx(24)
    assert (video.bit_depth, video.chroma, video.hdr) == (8, "4:2:0", None)
    assert (audio.codec, audio.profile, audio.channels, audio.sample_rate) == (
        "aac",
        "LC",
        1,
        48000,
    )
    assert video.default and audio.default
    assert plan(info, "chrome").kind == "direct"


async def test_mkv_with_ac3_and_a_tagged_srt(movies: Movies) -> None:
    info = await probe(str(movies.path("h264-ac3-srt.mkv")))

    assert info.container == "matroska"
    assert info.format_name == "matroska,webm"
    assert info.title == "Sample Movie"
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert [(s.index, s.kind, s.codec) for s in info.streams] == [
        (0, "video", "h264"),
        (1, "audio", "ac3"),
        (2, "subtitle", "subrip"),
    ]
    audio = info.audio_streams[0]
    assert (audio.language, audio.title, audio.channels) == ("eng", "Main", 1)
    subtitle = info.subtitle_streams[0]
    assert (subtitle.language, subtitle.forced, subtitle.default) == ("ger", True, False)
    # Matroska keeps per-stream durations as tags; they are read too.
    assert subtitle.duration == pytest.approx(0.5, abs=0.05)

    chosen = plan(info, "firefox")
    assert chosen.kind == "remux_audio"
    assert chosen.reason.startswith("MKV with H.264 + AC3: ")
    assert "converting sound: AC3 → AAC" in chosen.reasons
    assert [(t.index, t.convertible) for t in chosen.subtitles] == [(2, True)]


async def test_mpegts(movies: Movies) -> None:
    info = await probe(movies.path("movie.ts"))

    assert info.container == "mpegts"
    assert [s.codec for s in info.streams] == ["h264", "aac"]
    assert info.duration == pytest.approx(SECONDS, abs=0.15)
    assert plan(info, "chrome").kind == "remux"


async def test_webm_vp9_opus(movies: Movies) -> None:
    info = await probe(_needs(movies, "vp9-opus.webm"))

    assert info.container == "webm"
    assert [(s.kind, s.codec) for s in info.streams] == [("video", "vp9"), ("audio", "opus")]
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert plan(info, "chrome").kind == "direct"
    assert plan(info, "chrome").content_type == "video/webm"


async def test_hevc_10bit_hdr10(movies: Movies) -> None:
    info = await probe(_needs(movies, "hevc-hdr10.mkv"))

    video = info.video
    assert video is not None
    assert (video.codec, video.profile, video.pix_fmt) == ("hevc", "Main 10", "yuv420p10le")
    assert (video.bit_depth, video.color_transfer, video.hdr) == (10, "smpte2084", "hdr10")
    assert info.audio is None
    assert info.container == "matroska"  # HEVC is no WebM codec
    chrome = plan(info, "chrome")
    assert (chrome.kind, chrome.tonemap) == ("transcode", True)
    assert plan(info, "safari").kind == "remux"


# -- what is not a movie -------------------------------------------------------------------


async def test_random_bytes_are_not_media(movies: Movies) -> None:
    with pytest.raises(ProbeError) as caught:
        await probe(movies.path("noise.bin"))
    message = str(caught.value)
    assert (
        message
        == f"cannot probe {movies.path('noise.bin')}: Invalid data found when processing input"
    )
    assert caught.value.source == str(movies.path("noise.bin"))
    assert "Invalid data" in caught.value.stderr


async def test_a_text_file_is_not_media(movies: Movies) -> None:
    with pytest.raises(
        ProbeError, match=r"not a movie container \(ffprobe recognised plain text\)"
    ):
        await probe(movies.path("notes.txt"))


async def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="No such file or directory"):
        await probe(tmp_path / "gone.mkv")


async def test_a_subtitle_file_is_refused_by_name(movies: Movies) -> None:
    # ffprobe reads .srt happily; it is still not a movie, and the error says which
    # format it was.
    with pytest.raises(ProbeError, match=r"container \(ffprobe recognised SubRip subtitles\)"):
        await probe(movies.path("subs.srt"))


async def test_playlists_cannot_send_ffprobe_elsewhere(tmp_path: Path) -> None:
    playlist = tmp_path / "evil.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n", encoding="utf-8")
    with pytest.raises(ProbeError):
        await probe(playlist)


def _relative(path: Path) -> str:
    return os.path.relpath(path)


async def test_names_with_colons_and_dashes_are_files(movies: Movies, tmp_path: Path) -> None:
    odd = tmp_path / "-Movie: the sequel.mkv"
    shutil.copy(movies.path("h264-ac3-srt.mkv"), odd)
    info = await probe(odd)
    assert info.container == "matroska"
    assert (await probe(_relative(odd))).container == "matroska"


def test_only_files_and_http_urls() -> None:
    with pytest.raises(ValueError, match="only files and http"):
        ffprobe_argv("ftp://example.invalid/movie.mkv")
    argv = ffprobe_argv("HTTP://127.0.0.1:1/m.mkv", io_timeout=2.5, extra_args=["-probesize", "1M"])
    assert argv[-2:] == ["-i", "HTTP://127.0.0.1:1/m.mkv"]
    assert argv[argv.index("-rw_timeout") + 1] == "2500000"
    assert argv[argv.index("-protocol_whitelist") + 1] == "http,https,tcp,tls"
    assert argv.index("-probesize") < argv.index("-i")
    local = ffprobe_argv("/data/m.mkv")
    assert local[-1] == "file:/data/m.mkv"
    assert local[local.index("-protocol_whitelist") + 1] == "file"
    assert "-rw_timeout" not in local


# -- probing over HTTP ---------------------------------------------------------------------


@dataclass
class FileServer:
    url: str
    root: Path
    ranges: list[str | None]


@pytest.fixture
async def file_server(movies: Movies) -> AsyncIterator[FileServer]:
    """Serves the sample movies with Range support, as Matinee's /media does."""
    seen: list[str | None] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Range"))
        name = request.match_info["name"]
        path = movies.directory / name
        if name not in {p.name for p in movies.directory.iterdir()}:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/media/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield FileServer(f"http://127.0.0.1:{port}/media", movies.directory, seen)
    finally:
        await runner.cleanup()


async def test_probe_over_http_with_ranges(file_server: FileServer) -> None:
    info = await probe(f"{file_server.url}/big-moov-at-end.mp4", timeout=10)

    assert info.container == "mp4"
    assert [s.codec for s in info.streams] == ["h264", "aac"]
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert info.size == (file_server.root / "big-moov-at-end.mp4").stat().st_size
    # The index is at the end: ffprobe had to seek there with a range request.
    assert file_server.ranges[0] in (None, "bytes=0-")
    assert any(r and r != "bytes=0-" for r in file_server.ranges), file_server.ranges


async def test_probe_mkv_over_http(file_server: FileServer) -> None:
    info = await probe(f"{file_server.url}/h264-ac3-srt.mkv", timeout=10)
    assert [s.codec for s in info.streams] == ["h264", "ac3", "subrip"]
    assert info.audio_streams[0].language == "eng"


async def test_http_404_is_a_probe_error(file_server: FileServer) -> None:
    with pytest.raises(ProbeError, match="404"):
        await probe(f"{file_server.url}/nothing.mkv", timeout=10)


def _ffprobe_children() -> list[int]:
    return children_named("ffprobe")


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Accepts connections and never says a word."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/movie.mkv", connected
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_cancelling_a_probe_kills_ffprobe(
    silent_server: tuple[str, asyncio.Event],
) -> None:
    url, connected = silent_server
    assert _ffprobe_children() == []
    task = asyncio.create_task(probe(url, timeout=60))
    await asyncio.wait_for(connected.wait(), 10)
    assert len(_ffprobe_children()) == 1

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert _ffprobe_children() == []  # killed and reaped: not even a zombie


async def test_a_stalled_server_times_out(silent_server: tuple[str, asyncio.Event]) -> None:
    url, _ = silent_server
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        await probe(url, timeout=0.6)
    assert time.monotonic() - started < 5
    # ffprobe's own read timeout (90 % of ours) usually wins; either way it says so.
    assert isinstance(caught.value, ProbeTimeout) or "timed out" in str(caught.value).lower()
    assert _ffprobe_children() == []


# -- parse_probe on literal JSON -----------------------------------------------------------


def _json(streams: Sequence[object] | None, **fmt: object) -> str:
    doc: dict[str, object] = {"format": {"format_name": "matroska,webm", **fmt}}
    if streams is not None:
        doc["streams"] = streams
    return json.dumps(doc)


def test_no_streams_at_all() -> None:
    info = parse_probe(_json(None, duration="12.5"))
    assert info.streams == ()
    assert (info.video, info.audio, info.duration) == (None, None, 12.5)
    assert info.container == "matroska"  # nothing WebM-like in it


def test_missing_duration_falls_back_to_stream_durations() -> None:
    streams: list[dict[str, object]] = [
        {"index": 0, "codec_type": "video", "codec_name": "h264",
         "tags": {"DURATION": "01:52:03.250000000"}},
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "duration": "6700.5"},
    ]  # fmt: skip
    info = parse_probe(_json(streams, duration="N/A", size="123", bit_rate="N/A"))
    assert info.duration == pytest.approx(6723.25)
    assert (info.size, info.bit_rate) == (123, None)
    assert parse_probe(_json([])).duration is None


@pytest.mark.parametrize(
    "tags",
    [
        {"language": "fre", "title": "VF"},
        {"LANGUAGE": "fre", "TITLE": "VF"},
        {"Language": "fre", "Title": "VF"},
    ],
)
def test_tags_in_any_case(tags: dict[str, str]) -> None:
    stream = {"index": 0, "codec_type": "audio", "codec_name": "AC3", "tags": tags}
    audio = parse_probe(_json([stream])).streams[0]
    assert (audio.language, audio.title, audio.codec) == ("fre", "VF", "ac3")


def test_odd_values_do_not_break_parsing() -> None:
    streams: list[object] = [
        {"codec_type": "video", "codec_name": "mpeg4", "codec_tag_string": "XVID",
         "width": 0, "height": "480", "avg_frame_rate": "0/0", "r_frame_rate": "25/1",
         "pix_fmt": "yuv420p", "disposition": {"default": "1"}, "tags": {"language": "und"}},
        {"index": "x", "codec_type": "weird"},
        {"index": 5, "codec_type": "audio", "channels": -1, "sample_rate": "44100",
         "tags": ["not", "a", "dict"], "disposition": None},
        "not a stream",
    ]  # fmt: skip
    info = parse_probe(_json(streams, format_name="avi", size=1.5e9))
    video, data, audio = info.streams
    assert (video.index, video.codec_tag, video.width, video.height) == (0, "XVID", None, 480)
    assert (video.frame_rate, video.default, video.language) == (25.0, True, None)
    assert (data.index, data.kind, data.codec) == (1, "data", "")
    assert (audio.index, audio.channels, audio.sample_rate, audio.language) == (
        5,
        None,
        44100,
        None,
    )
    assert (info.container, info.size) == ("avi", 1_500_000_000)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not JSON"),
        ("{\n\n}", "no container format"),  # what ffprobe prints when it fails
        ("[1, 2]", "not a JSON object"),
        ('{"format": "mkv"}', "no container format"),
    ],
)
def test_unusable_json(text: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        parse_probe(text)


def test_cover_art_is_not_the_video() -> None:
    streams: list[dict[str, object]] = [
        {"index": 0, "codec_type": "video", "codec_name": "mjpeg",
         "disposition": {"attached_pic": 1}},
        {"index": 1, "codec_type": "video", "codec_name": "h264", "pix_fmt": "yuv420p"},
        {"index": 2, "codec_type": "audio", "codec_name": "eac3"},
        {"index": 3, "codec_type": "audio", "codec_name": "ac3", "disposition": {"default": 1}},
    ]  # fmt: skip
    info = parse_probe(_json(streams))
    assert info.video is not None and info.video.index == 1
    assert [s.index for s in info.video_streams] == [1]
    assert info.audio is not None and info.audio.index == 3  # the default one


@pytest.mark.parametrize(
    "stream, hdr",
    [
        ({"color_transfer": "smpte2084"}, "hdr10"),
        ({"color_transfer": "arib-std-b67"}, "hlg"),
        ({"color_transfer": "bt709"}, None),
        ({"side_data_list": [{"side_data_type": "DOVI configuration record"}]}, "dolby_vision"),
        ({"codec_tag_string": "dvh1"}, "dolby_vision"),
    ],
)
def test_hdr_hints(stream: dict[str, object], hdr: str | None) -> None:
    raw = {"index": 0, "codec_type": "video", "codec_name": "hevc", **stream}
    assert parse_probe(_json([raw])).streams[0].hdr == hdr


@pytest.mark.parametrize(
    "format_name, brand, codecs, container",
    [
        ("matroska,webm", None, ["h264", "aac"], "matroska"),
        ("matroska,webm", None, ["vp9", "opus"], "webm"),
        ("matroska,webm", None, ["av1"], "webm"),
        ("matroska,webm", None, ["vp9", "ac3"], "matroska"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "isom", ["h264"], "mp4"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "qt  ", ["h264"], "mov"),
        ("mov,mp4,m4a,3gp,3g2,mj2", None, ["h264"], "mp4"),
        ("mpegts", None, ["h264"], "mpegts"),
        ("avi", None, ["mpeg4"], "avi"),
        ("asf", None, ["vc1"], "asf"),
        ("", None, [], "unknown"),
    ],
)
def test_containers(format_name: str, brand: str | None, codecs: list[str], container: str) -> None:
    kinds = {"h264": "video", "vp9": "video", "av1": "video", "mpeg4": "video", "vc1": "video"}
    streams: list[dict[str, object]] = [
        {"index": i, "codec_type": kinds.get(c, "audio"), "codec_name": c}
        for i, c in enumerate(codecs)
    ]
    tags = {"tags": {"major_brand": brand}} if brand else {}
    info = parse_probe(_json(streams, format_name=format_name, **tags))
    assert info.container == container
    assert normalise_container(format_name, brand, info.streams) == container


@pytest.mark.parametrize(
    "pix_fmt, depth, chroma",
    [
        ("yuv420p", 8, "4:2:0"),
        ("yuvj420p", 8, "4:2:0"),
        ("nv12", 8, "4:2:0"),
        ("yuv420p10le", 10, "4:2:0"),
        ("p010le", 10, "4:2:0"),
        ("yuv422p10le", 10, "4:2:2"),
        ("yuv444p", 8, "4:4:4"),
        ("yuv444p12le", 12, "4:4:4"),
        ("gbrp", 8, "4:4:4"),
        ("gray10le", 10, "4:0:0"),
        (None, None, None),
    ],
)
def test_pixel_formats(pix_fmt: str | None, depth: int | None, chroma: str | None) -> None:
    assert (bit_depth_of(pix_fmt), chroma_of(pix_fmt)) == (depth, chroma)


def test_declared_bit_depth_is_kept() -> None:
    raw = {"codec_type": "video", "codec_name": "h264", "pix_fmt": "yuv420p10le",
           "bits_per_raw_sample": "10", "profile": "High 10"}  # fmt: skip
    assert parse_probe(_json([raw])).streams[0].bit_depth == 10


def test_commentary_is_recognised() -> None:
    streams: list[dict[str, object]] = [
        {"index": 0, "codec_type": "audio", "codec_name": "ac3", "disposition": {"comment": 1}},
        {"index": 1, "codec_type": "audio", "codec_name": "ac3",
         "tags": {"title": "Director's Commentary"}},
        {"index": 2, "codec_type": "audio", "codec_name": "ac3"},
    ]  # fmt: skip
    info: MediaInfo = parse_probe(_json(streams))
    assert [s.commentary for s in info.streams] == [True, True, False]


# -- the runner beneath --------------------------------------------------------------------


async def test_run_returns_output_and_status() -> None:
    result = await run(["sh", "-c", "echo out; echo err >&2"])
    assert (result.returncode, result.stdout, result.stderr_tail) == (0, b"out\n", "err\n")
    echoed = await run(["cat"], input=b"x" * 300_000)
    assert echoed.stdout == b"x" * 300_000


async def test_failures_carry_argv_status_and_stderr() -> None:
    argv = ["sh", "-c", "echo 'first line' >&2; echo 'what went wrong' >&2; exit 3"]
    with pytest.raises(ProcessError) as caught:
        await run(argv)
    error = caught.value
    assert (error.argv, error.returncode) == (tuple(argv), 3)
    assert error.stderr_tail == "first line\nwhat went wrong\n"
    assert str(error) == "sh exited with status 3: what went wrong"
    unchecked = await run(argv, check=False)
    assert unchecked.returncode == 3


async def test_a_missing_program() -> None:
    with pytest.raises(ProcessError, match="could not be started"):
        await run(["/nonexistent/ffmpeg", "-version"])


async def test_stderr_tail_is_bounded() -> None:
    script = "for i in $(seq 1 2000); do echo line-$i >&2; done; exit 1"
    with pytest.raises(ProcessError) as caught:
        await run(["sh", "-c", script], stderr_limit=200)
    tail = caught.value.stderr_tail
    assert len(tail) <= 200
    assert tail.splitlines()[0].startswith("line-")  # no half line at the front
    assert tail.endswith("line-2000\n")
    assert str(caught.value).endswith("line-2000")


async def test_stdout_beyond_the_limit_is_an_error() -> None:
    with pytest.raises(ProcessError, match="more than 1000 bytes"):
        await run(["sh", "-c", "exec yes"], stdout_limit=1000, timeout=10)


def _alive(pid: int) -> bool:
    try:
        state = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def test_timeout_kills_the_child_and_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # The shell starts a grandchild that holds the pipes; killing the shell alone would
    # leave it running and the pipes open forever.
    script = f"sleep 30 & echo $! > {pidfile}; echo started >&2; wait"
    started = time.monotonic()
    with pytest.raises(ProcessTimeout) as caught:
        await run(["sh", "-c", script], timeout=0.5)
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in str(caught.value)
    assert caught.value.stderr_tail == "started\n"
    assert not _alive(int(pidfile.read_text()))


async def test_cancellation_kills_and_reaps() -> None:
    proc = Process(["sleep", "30"])

    async def owner() -> None:
        async with proc:
            await proc.wait()

    task = asyncio.create_task(owner())
    while proc.pid is None:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert proc.returncode == -9
    assert proc.pid is not None and not _alive(proc.pid)


async def test_stop_asks_then_insists() -> None:
    async with Process(["sh", "-c", "trap '' TERM; echo ready; sleep 30"]) as proc:
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert await proc.stop(grace=0.3) == -9
        assert time.monotonic() - started < 3
    async with Process(["sleep", "30"]) as polite:
        assert await polite.stop() == -15


PROGRESS = b"""frame=0
fps=0.00
out_time_us=-9223372036854775807
speed=N/A
progress=continue
frame=48
fps=47.5
total_size=1048576
out_time_us=2000000
out_time=00:00:02.000000
speed=1.98x
progress=continue
frame=96
out_time_ms=4000000
speed=2x
progress=end
"""


def test_progress_blocks_at_every_split() -> None:
    seen: list[Progress] = []
    parser = ProgressParser(seen.append)
    for line in PROGRESS.splitlines(keepends=True):
        parser.feed_line(line)
    assert [(p.out_time, p.speed, p.frame, p.done) for p in seen] == [
        (None, None, 0, False),
        (2.0, 1.98, 48, False),
        (4.0, 2.0, 96, True),
    ]
    assert seen[1].total_size == 1048576
    assert seen[1].fields["out_time"] == "00:00:02.000000"
    assert parser.feed_line("") is None and parser.feed_line(b"garbage") is None
    assert progress_from_fields({"progress": "continue"}).out_time is None


async def test_iter_progress_over_a_stream() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(PROGRESS + b"frame=1\nprogress=continue\n")
    reader.feed_eof()
    blocks = [p async for p in iter_progress(reader)]
    assert [p.done for p in blocks] == [False, False, True]  # stops at progress=end


async def test_progress_from_a_real_ffmpeg() -> None:
    seen: list[Progress] = []
    argv = ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", *VIDEO_IN, "-f", "null", "-",
            "-progress", "pipe:1"]  # fmt: skip
    await run(argv, on_stdout_line=ProgressParser(seen.append).feed_line, timeout=20)
    assert seen and seen[-1].done
    assert seen[-1].out_time == pytest.approx(SECONDS, abs=0.1)
    assert seen[-1].frame == 24


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    yield
    assert _ffprobe_children() == []
