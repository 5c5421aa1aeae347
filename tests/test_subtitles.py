"""Subtitles as WebVTT: tracks inside real MKV clips (SRT, ASS) extracted by ffmpeg, also
while the file is still downloading; external SRT files converted; hardware encoders that
are not there fall back to libx264 with a reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.media import ReleaseClips
from tests.support.range_server import RangeServer
from transcode.argv import VideoEncoder
from transcode.hardware import check_encoder, choose_encoder
from transcode.subtitles import (
    SubtitleError,
    decode_subtitle_file,
    srt_to_webvtt,
    stream_webvtt,
    webvtt_argv,
)


async def _vtt(source: str, index: int) -> str:
    return b"".join([piece async for piece in stream_webvtt(source, index)]).decode()


async def test_srt_and_ass_tracks_become_webvtt(release_clips: ReleaseClips) -> None:
    srt = str(release_clips.path("h264-ac3-2srt.mkv"))
    english, german = await _vtt(srt, 2), await _vtt(srt, 3)
    assert english.startswith("WEBVTT\n")
    assert "00:00.505 --> 00:02.005\nHello from the first subtitle" in english
    assert "<i>in italics</i>" in english and english.count(" --> ") == 3
    assert "Größe & Übermut" in german
    ass = await _vtt(str(release_clips.path("hevc10-eac3-ass.mkv")), 2)
    assert "<b>Styled</b> first line" in ass  # ASS bold kept, the rest of the style gone
    assert "Second\nline break" in ass


async def test_cues_arrive_while_the_file_downloads(
    release_clips: ReleaseClips,
) -> None:
    path = release_clips.path("h264-ac3-2srt.mkv")
    size = path.stat().st_size
    async with RangeServer(path, progressive=True) as server:
        await server.make_available(0, size // 3)  # about the first 6 s of 20
        await server.make_available(size - 64 * 1024, size)
        cues = stream_webvtt(server.url, 2)
        text = ""
        while "Hello from the first subtitle" not in text:
            text += (await asyncio.wait_for(anext(cues), 20)).decode()
        assert server.available_bytes < size  # the rest is not there yet
        await server.make_available(0, size)
        text += "".join([piece.decode() async for piece in cues])
        assert "Near the end" in text


async def test_a_missing_track_is_an_error(release_clips: ReleaseClips) -> None:
    with pytest.raises(SubtitleError, match="subtitle track 9"):
        await _vtt(str(release_clips.path("h264-aac.mkv")), 9)


def test_argv_from_a_point_keeps_film_times() -> None:
    argv = webvtt_argv("http://127.0.0.1:1/m.mkv", 3, start=600.0)
    assert argv[argv.index("-ss") + 1] == "600.000" and "-copyts" in argv
    assert argv[argv.index("-map") + 1] == "0:3"
    assert argv[-3:] == ["-f", "webvtt", "pipe:1"] and "-flush_packets" in argv


SRT = (
    "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\nFirst <font color=red>red</font> & <b>bold</b>"
    "\r\n\r\n2\r\n00:00:03,5 --> 00:00:04,000\r\n{\\an8}Top --> text\r\nx < y\r\n\r\n"
    "garbage\r\n\r\n3\r\n00:01:00,000 --> 00:01:02,000\r\n\r\n"
    "4\r\n01:02:03,004 --> 01:02:04,000\r\nLast\r\n"
)


def test_external_srt_files() -> None:
    assert srt_to_webvtt(decode_subtitle_file(SRT.encode("utf-8"))) == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.500\nFirst red &amp; <b>bold</b>\n\n"
        "00:00:03.500 --> 00:00:04.000\nTop -> text\nx &lt; y\n\n"
        "01:02:03.004 --> 01:02:04.000\nLast\n\n"
    )


@pytest.mark.parametrize(
    "data, text",
    [
        ("Übermut".encode("cp1252"), "Übermut"),
        ("Übermut".encode("utf-16"), "Übermut"),
        (b"\xef\xbb\xbfplain", "plain"),
    ],
)
def test_subtitle_file_encodings(data: bytes, text: str) -> None:
    assert decode_subtitle_file(data) == text


async def test_hardware_that_is_not_there_falls_back() -> None:
    # This machine has no GPU: each hardware encoder must fail its test encode.
    for hardware in ("vaapi", "nvenc", "qsv"):
        reason = await check_encoder(VideoEncoder(hardware=hardware))
        assert reason, hardware
    encoder, why = await choose_encoder("vaapi", device="/dev/dri/renderD199")
    assert encoder.hardware is None and why is not None and "using libx264" in why
    assert await check_encoder(VideoEncoder()) is None  # libx264 always works
    assert await choose_encoder(None) == (VideoEncoder(), None)


def test_no_webvtt_from_a_path_that_looks_like_a_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        webvtt_argv("ftp://example.invalid/x.mkv", 2)
