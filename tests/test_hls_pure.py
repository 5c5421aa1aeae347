"""The pure parts of HLS: segments from keyframes (also from the real Cues and sample tables of
the release clips, read without touching the middle of the file), playlists, the restart rule
and ffmpeg's command lines."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from pathlib import Path

import pytest

from tests.support.capabilities import CHROMIUM
from tests.support.media import ReleaseClips
from transcode.argv import (
    TIMELINE_OFFSET,
    HlsOutput,
    VideoEncoder,
    encoder_probe_argv,
    hls_argv,
    video_encoder_args,
)
from transcode.compat import plan
from transcode.keyframes import KeyframeIndex, file_reader, read_keyframes
from transcode.playlist import (
    Segment,
    build_segments,
    parse_written,
    render_event,
    render_vod,
    segment_at,
    uniform_cuts,
)
from transcode.probe import parse_probe
from transcode.session import RunState, needs_restart, strip_piece_boxes

DATA = Path(__file__).parent / "data"

# -- segments from keyframes ---------------------------------------------------------------

SEGMENTS: list[tuple[str, list[float], float, list[tuple[float, float]]]] = [
    ("keyframe every second", [float(t) for t in range(20)], 20.0,
     [(0, 1), (1, 2), (3, 4), (7, 4), (11, 4), (15, 5)]),
    ("offset start (B-frame delay)", [0.005 + t for t in range(10)], 10.005,
     [(0.005, 1), (1.005, 2), (3.005, 4), (7.005, 3)]),
    ("two-second GOPs", [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0], 13.0,
     [(0, 2), (2, 2), (4, 4), (8, 5)]),
    ("long GOPs are never cut", [0.0, 10.0, 20.0], 25.0, [(0, 10), (10, 10), (20, 5)]),
    ("irregular (scene cuts)", [0, 0.4, 1.3, 1.9, 5.5, 6.0, 9.7, 14.2], 16.0,
     [(0, 1.3), (1.3, 4.2), (5.5, 4.2), (9.7, 6.3)]),
    ("one keyframe", [0.0], 3.0, [(0, 3)]),
    ("keyframes past the end are ignored", [0.0, 1.0, 2.0, 9.0], 2.5, [(0, 1), (1, 1.5)]),
    ("a short last piece joins the one before", [0.0, 1.0, 3.0, 7.0, 11.0, 11.5], 12.0,
     [(0, 1), (1, 2), (3, 4), (7, 5)]),
]  # fmt: skip


@pytest.mark.parametrize(
    "keyframes, end, expected", [c[1:] for c in SEGMENTS], ids=[c[0] for c in SEGMENTS]
)
def test_segments_from_keyframes(
    keyframes: list[float], end: float, expected: list[tuple[float, float]]
) -> None:
    segments = build_segments(keyframes, end)
    flat = [x for s in segments for x in (s.start, s.duration)]
    assert flat == pytest.approx([x for pair in expected for x in pair])
    assert [s.index for s in segments] == list(range(len(expected)))
    for a, b in itertools.pairwise(segments):
        assert a.end == pytest.approx(b.start)  # no gap, no overlap
        assert b.start in keyframes  # every segment starts on a keyframe
    assert segments[-1].end == pytest.approx(end)


def test_no_keyframe_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_segments([], 10.0)


def test_uniform_cuts_for_a_transcode() -> None:
    assert uniform_cuts(0.0, 20.0) == (0.0, 1.0, 3.0, 7.0, 11.0, 15.0)  # 15-20: one piece
    assert uniform_cuts(0.0, 0.5) == (0.0,)
    cuts = uniform_cuts(0.0, 7200.0)
    segments = build_segments(cuts, 7200.0)
    assert [s.start for s in segments] == list(cuts)  # one transcode piece per segment
    assert max(s.duration for s in segments[:-1]) == 4.0 and segments[-1].duration < 6.0


def test_segment_at() -> None:
    segments = build_segments([float(t) for t in range(20)], 20.0)
    assert segment_at(segments, 0).index == 0
    assert segment_at(segments, 2.9).index == 1
    assert segment_at(segments, 3.0).index == 2
    assert segment_at(segments, 19.9).index == 5
    assert segment_at(segments, 99).index == 5


def test_vod_playlist() -> None:
    segments = (Segment(0, 0.005, 1.0), Segment(1, 1.005, 2.0), Segment(2, 3.005, 4.5))
    text = render_vod(segments, init_uri="init.mp4", segment_uri=lambda n: f"s/{n}.m4s?t=x")
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:5\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXTINF:1.000000,\ns/0.m4s?t=x\n#EXTINF:2.000000,\ns/1.m4s?t=x\n"
        "#EXTINF:4.500000,\ns/2.m4s?t=x\n#EXT-X-ENDLIST\n"
    )


FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init.mp4"
#EXTINF:1.000000,
10.m4s
#EXTINF:0.984375,
/tmp/x/11.m4s
"""


def test_ffmpegs_playlist() -> None:
    written = parse_written(FFMPEG_PLAYLIST)
    assert written.entries == ((10, 1.0), (11, 0.984375))
    assert not written.ended
    assert parse_written(FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n").ended
    # A playlist caught while being rewritten: the cut entry does not count.
    assert parse_written(FFMPEG_PLAYLIST + "#EXTINF:1.0,\n12.m4").entries == written.entries
    assert parse_written(FFMPEG_PLAYLIST + "#EXTINF:1.").entries == written.entries
    event = render_event(written, init_uri="i.mp4", segment_uri=lambda n: f"{n}.m4s")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in event and "#EXT-X-ENDLIST" not in event
    assert event.endswith("#EXTINF:0.984375,\n11.m4s\n")


# -- the restart rule ----------------------------------------------------------------------

RESTARTS: list[tuple[str, int, RunState | None, bool]] = [
    ("nothing running", 0, None, True),
    ("the next segment", 5, RunState(first=0, produced=4, alive=True), False),
    ("already produced", 2, RunState(first=0, produced=4, alive=True), False),
    ("a few ahead: wait", 7, RunState(first=0, produced=4, alive=True), False),
    ("far ahead: restart", 8, RunState(first=0, produced=4, alive=True), True),
    ("behind the run's start", 3, RunState(first=4, produced=9, alive=True), True),
    ("nothing produced yet, the first", 4, RunState(first=4, produced=3, alive=True), False),
    ("nothing produced yet, far", 9, RunState(first=4, produced=3, alive=True), True),
    ("produced by a run that ended", 6, RunState(first=4, produced=9, alive=False), False),
    ("beyond a run that died", 10, RunState(first=4, produced=9, alive=False), True),
]


@pytest.mark.parametrize(
    "requested, run, restart", [c[1:] for c in RESTARTS], ids=[c[0] for c in RESTARTS]
)
def test_restart_rule(requested: int, run: RunState | None, restart: bool) -> None:
    assert needs_restart(requested, run, max_ahead=3) is restart


# -- ffmpeg's command lines ----------------------------------------------------------------

COPY = HlsOutput(video_stream=0, audio_stream=1, copy_video=True, copy_audio=False)
TAIL = ["-f", "hls", "-hls_segment_type", "fmp4", "-hls_segment_options",
        "movflags=+frag_discont", "-hls_fmp4_init_filename", "init.mp4"]  # fmt: skip


def test_argv_for_a_remux_from_the_start() -> None:
    argv = hls_argv("http://127.0.0.1:8080/media/m.mkv", COPY, Path("/t/run-1"))
    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-protocol_whitelist", "http,https,tcp,tls", "-user_agent", "Matinee ffmpeg",
        "-format_whitelist", argv[argv.index("-format_whitelist") + 1],
        "-noaccurate_seek", "-i", "http://127.0.0.1:8080/media/m.mkv",
        "-map", "0:0", "-c:v", "copy", "-map", "0:1", "-c:a", "aac", "-ac", "2", "-b:a", "192k",
        "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
        "-max_muxing_queue_size", "4096", "-output_ts_offset", f"{TIMELINE_OFFSET:.6f}",
        *TAIL, "-hls_time", "0", "-hls_list_size", "0", "-hls_flags", "temp_file",
        "-start_number", "0", "-hls_segment_filename", "/t/run-1/%d.m4s", "/t/run-1/ffmpeg.m3u8",
    ]  # fmt: skip
    assert "matroska" in argv[argv.index("-format_whitelist") + 1]


def test_argv_for_a_restart_keeps_film_time_and_numbering() -> None:
    argv = hls_argv("/m/movie.mkv", COPY, Path("/t/run-2"), start_number=42,
                    start_time=84.005, seek_time=84.205)  # fmt: skip
    assert argv[argv.index("-ss") + 1] == "84.205000"
    assert argv[argv.index("-output_ts_offset") + 1] == f"{84.205 + TIMELINE_OFFSET:.6f}"
    assert argv[argv.index("-start_number") + 1] == "42"
    assert argv[argv.index("-i") + 1] == "file:/m/movie.mkv"
    assert argv.index("-noaccurate_seek") < argv.index("-ss") < argv.index("-i")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"


def test_argv_for_a_transcode_forces_keyframes_at_the_cuts() -> None:
    output = HlsOutput(video_stream=0, audio_stream=2, copy_video=False, copy_audio=True)
    argv = hls_argv("/m/m.avi", output, Path("/t"), start_number=3, start_time=7.0,
                    cuts=uniform_cuts(0.0, 20.0))  # fmt: skip
    assert "-noaccurate_seek" not in argv  # a transcode seeks exactly
    assert argv[argv.index("-ss") + 1] == "7.000000"
    # Output time starts at the seek point: the cuts after it, shifted.
    assert argv[argv.index("-force_key_frames") + 1] == "0,4.000,8.000"
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-preset") + 1] == "veryfast"
    assert argv[argv.index("-threads") + 1] == "2"
    assert argv[argv.index("-sc_threshold") + 1] == "0"  # no keyframes of its own
    assert argv[argv.index("-c:a") + 1] == "copy"


def test_surround_and_tags_and_tonemapping() -> None:
    hevc = HlsOutput(0, 1, copy_video=True, copy_audio=False, audio_channels=6, video_tag="hvc1")
    argv = hls_argv("/m/m.mkv", hevc, Path("/t"))
    assert argv[argv.index("-tag:v") + 1] == "hvc1"
    assert argv[argv.index("-ac") + 1] == "6" and argv[argv.index("-b:a") + 1] == "384k"
    hdr = HlsOutput(0, None, copy_video=False, copy_audio=False, tonemap=True)
    argv = hls_argv("/m/m.mkv", hdr, Path("/t"))
    assert "tonemap=hable" in argv[argv.index("-vf") + 1]
    assert "-c:a" not in argv


def test_burning_in_an_image_subtitle_transcodes() -> None:
    info = parse_probe((DATA / "ffprobe" / "h264-aac.mkv.json").read_text())
    chosen = plan(info, "chrome")
    output = HlsOutput.from_plan(chosen, burn_subtitle=4)
    assert (output.copy_video, output.burn_subtitle) == (False, 4)
    argv = hls_argv("/m/m.mkv", output, Path("/t"))
    assert argv[argv.index("-filter_complex") + 1] == "[0:0][0:4]overlay[v]"
    assert argv[argv.index("-filter_complex") + 2 : argv.index("-filter_complex") + 4] == [
        "-map",
        "[v]",
    ]
    assert "libx264" in argv


@pytest.mark.parametrize(
    "encoder, expected",
    [
        (VideoEncoder(hardware="vaapi"), ["-vaapi_device", "/dev/dri/renderD128", "-vf",
                                          "format=nv12,hwupload", "-c:v", "h264_vaapi"]),
        (VideoEncoder(hardware="nvenc"), ["-c:v", "h264_nvenc", "-preset", "p4"]),
        (VideoEncoder(hardware="qsv", device="/dev/dri/renderD129"),
         ["-init_hw_device", "qsv=hw:/dev/dri/renderD129", "-c:v", "h264_qsv"]),
    ],
)  # fmt: skip
def test_hardware_encoders(encoder: VideoEncoder, expected: list[str]) -> None:
    args = video_encoder_args(encoder)
    assert args[: len(expected)] == expected
    probe_argv = encoder_probe_argv(encoder)
    assert probe_argv[-3:] == ["-f", "null", "-"] and expected[-1] in probe_argv


def test_the_plan_becomes_the_output() -> None:
    caps = CHROMIUM
    info = parse_probe((DATA / "ffprobe" / "h264-ac3-2srt.mkv.json").read_text())
    output = HlsOutput.from_plan(plan(info, caps))
    assert (output.video_stream, output.audio_stream) == (0, 1)
    assert (output.copy_video, output.copy_audio, output.audio_channels) == (True, False, 2)


def test_pieces_lose_their_index_boxes() -> None:
    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    piece = (
        box(b"styp", b"msdh") + box(b"sidx", b"x" * 12) + box(b"moof", b"m") + box(b"mdat", b"d")
    )
    assert strip_piece_boxes(piece, keep_styp=True) == box(b"styp", b"msdh") + piece[32:]
    assert strip_piece_boxes(piece, keep_styp=False) == piece[32:]


# -- keyframes from the real index ---------------------------------------------------------

CLIPS = ["h264-ac3-2srt.mkv", "hevc10-eac3-ass.mkv", "h264-aac.mp4", "hevc-aac.mp4"]


def _ffprobe_keyframes(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(float(line.split(",")[0]) for line in out.split() if ",K" in line)


@pytest.mark.parametrize("name", CLIPS)
async def test_keyframes_from_the_index_alone(release_clips: ReleaseClips, name: str) -> None:
    """The index gives the keyframes ffprobe finds by reading every packet, while reads
    are only allowed near the ends (the engine fetches each file's first and last MiB
    first; these clips are 1-2 MiB, so a quarter of each stands for that)."""
    path = release_clips.path(name)
    size = path.stat().st_size
    whole = file_reader(path)
    edge = size // 4
    reads: list[tuple[int, int]] = []

    async def head_and_tail(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        assert offset + length <= edge or offset >= size - edge, (offset, length)
        return await whole(offset, length)

    container = "mp4" if name.endswith(".mp4") else "matroska"
    index = await read_keyframes(head_and_tail, size, container)
    assert isinstance(index, KeyframeIndex)
    expected = await asyncio.to_thread(_ffprobe_keyframes, path)
    assert list(index.times) == pytest.approx(expected, abs=0.001)
    assert index.source == ("stss" if container == "mp4" else "cues")
    assert index.duration == pytest.approx(20.0, abs=0.1)
    segments = build_segments(index.times, index.duration or 20.0)
    assert segments[0].duration <= 2.0 and all(s.duration <= 6.0 for s in segments)


async def test_no_index_means_none(release_clips: ReleaseClips, tmp_path: Path) -> None:
    avi = release_clips.path("xvid-mp3.avi")
    assert await read_keyframes(file_reader(avi), avi.stat().st_size, "avi") is None
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x1a\x45\xdf\xa3" + b"\xff" * 5000)
    assert await read_keyframes(file_reader(junk), 5004, "matroska") is None
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(release_clips.path("h264-aac.mp4").read_bytes()[:100_000])  # moov lost
    assert await read_keyframes(file_reader(cut), 100_000, "mp4") is None
