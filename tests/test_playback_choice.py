"""The server's playback choice (pure): real ffprobe outputs of release-shaped files and the
capabilities Debian's Chromium and Firefox ESR reported; the names of HLS outputs in URLs; audio
by the household's languages; image subtitles burned in only when asked; subtitle files named
by language; preferences as the API takes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from server.errors import InvalidInput
from server.playback.choice import capabilities_of, choose, parse_preferences
from server.playback.outputs import BadOutput, output_for, output_name, parse_output
from server.playback.subtitles import external_subtitles, language_of
from tests.support.capabilities import CHROMIUM
from transcode.argv import HlsOutput
from transcode.capabilities import parse_capabilities
from transcode.compat import plan
from transcode.probe import MediaInfo, Stream, parse_probe

DATA = Path(__file__).parent / "data"
FIREFOX = parse_capabilities((DATA / "capabilities" / "firefox-esr-153-headless.json").read_text())


def film(name: str) -> MediaInfo:
    return parse_probe((DATA / "ffprobe" / f"{name}.json").read_text())


# The table of issue 9, and the MP4 with HEVC: what each browser gets, and its output's name.
PLANS = [
    ("h264-aac.mkv", CHROMIUM, "direct", None),
    ("h264-ac3-2srt.mkv", CHROMIUM, "remux_audio", "v0c.a1t2"),
    ("h264-dts.mkv", CHROMIUM, "remux_audio", "v0c.a1t2"),
    ("hevc10-eac3-ass.mkv", CHROMIUM, "transcode", "v0t.a1t2"),
    ("xvid-mp3.avi", CHROMIUM, "transcode", "v0t.a1t2"),  # its MSE takes no MP3
    ("hevc-aac.mp4", CHROMIUM, "transcode", "v0t.a1c"),
    ("h264-aac.mkv", FIREFOX, "direct", None),
    ("h264-ac3-2srt.mkv", FIREFOX, "remux_audio", "v0c.a1t2"),
    ("hevc10-eac3-ass.mkv", FIREFOX, "remux_audio", "v0c-hvc1.a1t2"),
    ("hevc-aac.mp4", FIREFOX, "direct", None),
]


@pytest.mark.parametrize(("name", "caps", "kind", "output"), PLANS)
def test_plan_and_output_per_browser(name: str, caps: object, kind: str, output: str) -> None:
    choice = choose(film(name), caps)  # type: ignore[arg-type]
    assert (choice.kind, choice.output) == (kind, output), choice.reasons
    assert choice.reasons


def test_reasons_say_what_is_converted() -> None:
    choice = choose(film("h264-ac3-2srt.mkv"), CHROMIUM)
    assert "converting sound: AC3 → AAC" in choice.reasons
    choice = choose(film("hevc10-eac3-ass.mkv"), CHROMIUM)
    assert any(r.startswith("converting video: HEVC 10-bit → H.264") for r in choice.reasons)


@pytest.mark.parametrize("name", sorted(p.name[:-5] for p in (DATA / "ffprobe").glob("*.json")))
def test_output_names_round_trip(name: str) -> None:
    info = film(name)
    for caps in (CHROMIUM, FIREFOX):
        decided = plan(info, caps)
        if not decided.hls:
            continue
        made = output_for(decided)
        back = parse_output(output_name(made), info)
        # The same ffmpeg job: what the name leaves out comes from the film.
        assert dataclasses.replace(back, audio_codec=made.audio_codec) == made


@pytest.mark.parametrize(
    "name",
    ["", "x", "v0", "v0c.", "v0ca1c", "a1t", "v9c.a1c", "v1c.a1c", "v0c.a0c", "v0c.b2",
     "v0t.b1", "../v0c", "v0c.a1c\n", "v0c-avc1.a1c", "v00000c"],
)  # fmt: skip
def test_bad_output_names_are_refused(name: str) -> None:
    with pytest.raises(BadOutput):
        parse_output(name, film("h264-ac3-2srt.mkv"))


def test_a_subtitle_is_burned_only_into_an_image_stream_and_a_transcode() -> None:
    pgs = _with_pgs(film("h264-aac.mkv"))
    output = parse_output("v0t.a1c.b2", pgs)
    assert output == HlsOutput(
        video_stream=0, audio_stream=1, copy_video=False, copy_audio=True, burn_subtitle=2,
        audio_codec="aac",
    )  # fmt: skip
    with pytest.raises(BadOutput, match="made anew"):
        parse_output("v0c.a1c.b2", pgs)


def _with_pgs(info: MediaInfo) -> MediaInfo:
    pgs = Stream(index=2, kind="subtitle", codec="hdmv_pgs_subtitle", language="eng")
    return dataclasses.replace(info, streams=(*info.streams, pgs))


def test_image_subtitles_are_listed_and_burned_in_on_request() -> None:
    info = _with_pgs(film("h264-aac.mkv"))
    plain = choose(info, CHROMIUM)
    assert plain.kind == "direct"
    (track,) = plain.subtitles
    assert (track["id"], track["kind"]) == ("s2", "image")
    burned = choose(info, CHROMIUM, burn=2)
    assert (burned.kind, burned.output) == ("transcode", "v0t.a1c.b2")
    assert burned.reasons[-1] == "burning in subtitles: eng"
    with pytest.raises(InvalidInput):
        choose(info, CHROMIUM, burn=1)  # the audio stream


def test_audio_follows_the_languages_then_an_explicit_choice() -> None:
    info = film("h264-2audio.mkv")  # AC3 eng (default), AAC ger
    assert _selected(choose(info, CHROMIUM)) == 1
    german = choose(info, CHROMIUM, languages=["de", "en"])
    assert _selected(german) == 2
    assert german.kind == "remux"  # AAC plays, but only HLS can pick the second track
    assert _selected(choose(info, CHROMIUM, languages=["fr", "ger"])) == 2
    assert _selected(choose(info, CHROMIUM, languages=["fr"])) == 1
    assert _selected(choose(info, CHROMIUM, languages=["de"], audio=1)) == 1
    with pytest.raises(InvalidInput):
        choose(info, CHROMIUM, audio=0)  # the video stream


def _selected(choice: object) -> int:
    (index,) = [t["index"] for t in choice.audio if t["selected"]]  # type: ignore[attr-defined]
    return int(index)


def test_text_subtitles_and_files_are_offered() -> None:
    files = external_subtitles(
        [("Film.2019.fre.srt", Path("/x/a")), ("Film.2019.nfo", Path("/x/b")),
         ("../Film.English.forced.srt", Path("/x/c"))]
    )  # fmt: skip
    choice = choose(film("h264-ac3-2srt.mkv"), CHROMIUM, external=files)
    assert [(t["id"], t["kind"], t["language"]) for t in choice.subtitles] == [
        ("s2", "text", "eng"),
        ("s3", "text", "ger"),
        ("x0", "text", "en"),
        ("x1", "text", "fre"),
    ]
    assert [t["default"] for t in choice.subtitles] == [True, False, False, False]
    assert choice.subtitles[2]["title"] == "forced"


@pytest.mark.parametrize(
    ("name", "language"),
    [("Movie.2019.eng.srt", "eng"), ("Movie.2019.en.srt", "en"), ("Movie.English.srt", "en"),
     ("Movie.2019.ger.forced.srt", "ger"), ("Movie.2019.srt", None),
     ("Movie.2019.1080p.srt", None), ("Movie.pt-BR.srt", "pt")],
)  # fmt: skip
def test_language_of_a_subtitle_file(name: str, language: str | None) -> None:
    assert language_of(name)[0] == language


def test_capabilities_come_from_the_player_else_the_user_agent() -> None:
    measured = capabilities_of({"capabilities": '{"mse": true, "mse_codecs": ["h264_high"]}'}, "")
    assert measured.measured and measured.mse_codecs == {"h264_high"}
    chrome_ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"
    assert capabilities_of({}, chrome_ua).name == "Chrome"
    assert capabilities_of({}, "curl/8.0").name == "this browser"
    with pytest.raises(InvalidInput, match="capabilities"):
        capabilities_of({"capabilities": "[1, 2"}, "")


def test_preferences_as_the_api_takes_them() -> None:
    assert parse_preferences({"audio_language": "ger", "subtitle_language": "off"}) == {
        "audio_language": "ger",
        "subtitle_language": "off",
    }
    assert parse_preferences({"subtitle_language": None}) == {"subtitle_language": None}
    for bad in ({"volume": 3}, {"audio_language": "x" * 40},
                {"audio_language": 7}, {"subtitle_language": "<b>"}):  # fmt: skip
        with pytest.raises(InvalidInput):
            parse_preferences(bad)
