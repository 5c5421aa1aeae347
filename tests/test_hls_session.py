"""HLS sessions with real ffmpeg reading release-shaped clips over HTTP ranges: segments whose
timestamps are the playlist's (also after restarts), sound made AAC, HEVC made H.264, a file
that is still downloading, ffmpeg always reaped and the session's files always removed."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app import wait_for
from tests.support.capabilities import CHROMIUM
from tests.support.media import ReleaseClips
from tests.support.processes import children_named
from tests.support.range_server import RangeServer
from transcode.argv import TIMELINE_OFFSET, HlsOutput
from transcode.capabilities import BrowserFamily, Capabilities
from transcode.compat import plan
from transcode.keyframes import file_reader, read_keyframes
from transcode.probe import probe
from transcode.session import HlsError, HlsSession, SessionClosed
from transcode.sessions import HlsSessions

DATA = Path(__file__).parent / "data"


def _ffmpeg_children() -> list[int]:
    return children_named("ffmpeg")


@pytest.fixture(autouse=True)
def _no_ffmpeg_left() -> Iterator[None]:
    yield
    assert _ffmpeg_children() == []


async def _session(
    path: Path,
    url: str,
    directory: Path,
    caps: Capabilities | BrowserFamily = CHROMIUM,
    **options: float,
) -> HlsSession:
    info = await probe(path)
    chosen = plan(info, caps)
    assert chosen.hls
    size = info.size or 0  # ffprobe's view of the whole file
    index = await read_keyframes(file_reader(path), size, info.container)
    return HlsSession(
        url,
        HlsOutput.from_plan(chosen),
        directory,
        keyframes=index.times if index else None,
        duration=info.duration,
        **options,  # type: ignore[arg-type]
    )


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def _first_pts(init: bytes, segment: bytes, tmp: Path) -> dict[str, float]:
    """The first presentation time of each stream of init + segment, by codec."""
    probe_file = tmp / "probe.mp4"
    probe_file.write_bytes(init + segment)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
         "-show_entries", "packet=stream_index,pts_time", str(probe_file)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    codecs = {s["index"]: s["codec_name"] for s in data["streams"]}
    first: dict[str, float] = {}
    for packet in data["packets"]:
        codec = codecs[packet["stream_index"]]
        first[codec] = min(first.get(codec, float("inf")), float(packet["pts_time"]))
    return first


async def test_remux_segments_follow_the_playlist_across_restarts(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    path = release_clips.path("h264-ac3-2srt.mkv")
    size = path.stat().st_size
    async with RangeServer(path, progressive=True) as server:
        # The first fifth of the film and the index are downloaded: ffmpeg cannot run
        # ahead to the end by itself, so the jump there must restart it.
        await server.make_available(0, size // 5)
        await server.make_available(size - 64 * 1024, size)
        session = await _session(path, server.url, tmp_path / "s")
        try:
            assert session.vod and session.segments is not None
            text = await session.playlist(init_uri="init.mp4", segment_uri=lambda n: f"{n}.m4s")
            assert text.count("#EXTINF") == len(session.segments) and "#EXT-X-ENDLIST" in text
            init = await session.init()
            last = len(session.segments) - 1
            # In order, then a jump to the end (restart), then back (restart again).
            for index, restarts in [(0, 0), (1, 0), (last, 1), (2, 2), (3, 2)]:
                if index == last:
                    await server.make_available(0, size)
                data = await session.segment(index)
                assert session.restarts == restarts, index
                first = await asyncio.to_thread(_first_pts, init, data, tmp_path)
                start = session.segments[index].start
                assert set(first) == {"h264", "aac"}  # AC3 became AAC
                assert first["h264"] == pytest.approx(start + TIMELINE_OFFSET, abs=0.002)
                assert first["aac"] == pytest.approx(start + TIMELINE_OFFSET, abs=0.15)
        finally:
            await session.close()
    assert not (tmp_path / "s").exists()


async def test_a_segment_the_player_passed_is_made_again(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    """The run made the whole film; the player jumped to the end (so the pieces behind were
    deleted) and comes back: the segment is made again, not read from a deleted file."""
    path = release_clips.path("h264-ac3-2srt.mkv")
    async with RangeServer(path) as server:
        session = await _session(path, server.url, tmp_path / "s", buffer_ahead=1000.0)
        try:
            assert session.segments is not None
            last = len(session.segments) - 1
            await session.segment(0)
            run = session._run
            assert run is not None

            def made_all() -> bool:
                run.refresh()
                return run.ended

            await wait_for(made_all, within=30)
            await session.segment(last)  # no restart: it is made; the pieces behind go
            assert session.restarts == 0
            await wait_for(lambda: not (run.directory / "1.m4s").exists(), within=5)
            init = await session.init()
            data = await session.segment(1)
            assert session.restarts == 1
            first = await asyncio.to_thread(_first_pts, init, data, tmp_path)
            start = session.segments[1].start
            assert first["h264"] == pytest.approx(start + TIMELINE_OFFSET, abs=0.002)
        finally:
            await session.close()


@pytest.mark.slow
async def test_hevc_10bit_becomes_h264(release_clips: ReleaseClips, tmp_path: Path) -> None:
    path = release_clips.path("hevc10-eac3-ass.mkv")
    async with RangeServer(path) as server:
        session = await _session(path, server.url, tmp_path / "s")
        try:
            assert session.output.copy_video is False
            init = await session.init()
            assert session.segments is not None
            for index in (0, len(session.segments) - 1, 1):
                data = await session.segment(index)
                first = await asyncio.to_thread(_first_pts, init, data, tmp_path)
                assert set(first) == {"h264", "aac"}
                start = session.segments[index].start
                assert first["h264"] == pytest.approx(start + TIMELINE_OFFSET, abs=0.002)
            probe_file = tmp_path / "probe.mp4"
            argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                    "stream=profile,pix_fmt", "-of", "csv=p=0", str(probe_file)]  # fmt: skip
            out = await asyncio.to_thread(_run, argv)
            assert out == "High,yuv420p"  # 8-bit H.264 a browser decodes
        finally:
            await session.close()


async def test_plays_while_the_file_downloads(release_clips: ReleaseClips, tmp_path: Path) -> None:
    path = release_clips.path("h264-dts.mkv")
    size = path.stat().st_size
    edge = 256 * 1024
    async with RangeServer(path, progressive=True) as server:
        # What the engine fetches first: the head and the tail (with the Cues).
        await server.make_available(0, edge)
        await server.make_available(size - edge, size)
        session = await _session(path, server.url, tmp_path / "s")
        try:
            # The first segments need the start of the film only; let the download go on
            # slowly and serve them before it is finished.
            first = asyncio.create_task(session.segment(0))
            done = edge
            while not first.done():
                done = min(done + 64 * 1024, size - edge)
                await server.make_available(0, done)
                await asyncio.sleep(0.02)
            assert len(await first) > 0
            assert done < size - edge, "the segment waited for the whole download"
            await server.make_available(0, size)
            assert session.segments is not None
            assert len(await session.segment(len(session.segments) - 1)) > 0
        finally:
            await session.close()


async def test_close_while_ffmpeg_waits_for_bytes(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    path = release_clips.path("h264-aac.mkv")
    size = path.stat().st_size
    async with RangeServer(path, progressive=True) as server:
        await server.make_available(0, 64 * 1024)  # the download stalls after the head
        await server.make_available(size - 64 * 1024, size)
        session = await _session(path, server.url, tmp_path / "s", "firefox")
        waiting = asyncio.create_task(session.segment(3))
        while not _ffmpeg_children():
            await asyncio.sleep(0.01)
        assert not waiting.done()
        await session.close()
        with pytest.raises(SessionClosed):
            await waiting
    assert _ffmpeg_children() == []
    assert not (tmp_path / "s").exists()


async def test_cancelling_a_request_leaves_the_session_usable(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    path = release_clips.path("h264-aac.mkv")
    async with RangeServer(path) as server:
        session = await _session(path, server.url, tmp_path / "s", "firefox")
        try:
            task = asyncio.create_task(session.segment(4))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(await session.segment(4)) > 0
        finally:
            await session.close()


async def test_a_broken_source_is_a_clear_error(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    path = release_clips.path("h264-aac.mkv")
    broken = tmp_path / "broken.mkv"
    data = bytearray(path.read_bytes())
    data[2000 : len(data) - 2000] = b"\0" * (len(data) - 4000)  # head and Cues survive
    broken.write_bytes(bytes(data))
    async with RangeServer(broken) as server:
        session = await _session(path, server.url, tmp_path / "s", "firefox", segment_timeout=20)
        try:
            with pytest.raises(HlsError) as caught:
                await session.segment(1)
            assert "could not be read past" in str(caught.value)
            assert "damaged or missing data" in str(caught.value)
        finally:
            await session.close()


async def test_no_index_gives_an_event_playlist(
    release_clips: ReleaseClips, tmp_path: Path
) -> None:
    ts = tmp_path / "movie.ts"
    source = str(release_clips.path("h264-aac.mkv"))
    await asyncio.to_thread(_run, ["ffmpeg", "-v", "error", "-i", source, "-c", "copy", str(ts)])
    async with RangeServer(ts) as server:
        session = await _session(ts, server.url, tmp_path / "s", "firefox", segment_timeout=20)
        try:
            assert not session.vod
            init = await session.init()
            data = await session.segment(2)
            assert set(await asyncio.to_thread(_first_pts, init, data, tmp_path)) == {"h264", "aac"}
            text = await session.playlist(init_uri="i.mp4", segment_uri=lambda n: f"{n}.m4s")
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "\n0.m4s\n" in text
        finally:
            await session.close()


async def test_sessions_are_bounded_and_reaped(release_clips: ReleaseClips, tmp_path: Path) -> None:
    path = release_clips.path("h264-aac.mkv")
    async with (
        RangeServer(path) as server,
        HlsSessions(tmp_path / "hls", max_sessions=1, idle_timeout=3600) as sessions,
    ):

        async def make(directory: Path) -> HlsSession:
            return await _session(path, server.url, directory, "firefox")

        first = await sessions.open("job_1-a", make)
        assert await sessions.open("job_1-a", make) is first
        await first.segment(0)
        second = await sessions.open("job_2-a", make)  # over the limit: the first stops
        assert sessions.get("job_1-a") is None and len(sessions) == 1
        with pytest.raises(SessionClosed):
            await first.segment(1)
        await second.segment(0)
        assert _ffmpeg_children() or True  # the run may have finished the short clip
        assert await sessions.reap_idle(now=second.last_used + 1) == []
        assert await sessions.reap_idle(now=second.last_used + 3601) == ["job_2-a"]
        assert len(sessions) == 0 and not (tmp_path / "hls" / "job_2-a").exists()
        with pytest.raises(ValueError):
            await sessions.open("../escape", make)
