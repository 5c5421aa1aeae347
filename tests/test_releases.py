"""releases: title parsing against a table of real-looking titles, ranking and dedupe."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.discovery.newznab import NewznabItem, parse_search
from server.discovery.releases.ranking import (
    Preference,
    dedupe,
    format_size,
    normalised_title,
    rank,
    release_id,
)
from server.discovery.releases.titles import ParsedRelease, parse_title
from tests.support.capabilities import CHROMIUM, FIREFOX

# (title, movie title, year, resolution, source, codec, group, other expected fields)
TITLES: list[tuple[str, str, int | None, str | None, str | None, str | None, str | None, dict[str, Any]]] = [  # noqa: E501
    ("The.Shawshank.Redemption.1994.1080p.BluRay.x264-AMIABLE",
     "The Shawshank Redemption", 1994, "1080p", "BluRay", "H.264", "AMIABLE", {}),
    ("Inception.2010.2160p.UHD.BluRay.x265.10bit.HDR.TrueHD.7.1.Atmos-TERMiNAL",
     "Inception", 2010, "2160p", "BluRay", "HEVC", "TERMiNAL",
     {"hdr": ("HDR",), "audio": "TrueHD", "audio_channels": "7.1", "atmos": True}),
    ("Parasite.2019.KOREAN.1080p.WEBRip.x264-VXT",
     "Parasite", 2019, "1080p", "WEBRip", "H.264", "VXT", {"languages": ("Korean",)}),
    ("Dune.Part.Two.2024.2160p.WEB-DL.DDP5.1.Atmos.DV.HDR10.H.265-FLUX",
     "Dune Part Two", 2024, "2160p", "WEB-DL", "HEVC", "FLUX",
     {"hdr": ("DV", "HDR10"), "audio": "EAC3", "audio_channels": "5.1", "atmos": True}),
    ("Oppenheimer.2023.1080p.AMZN.WEB-DL.DDP5.1.H.264-FLUX",
     "Oppenheimer", 2023, "1080p", "WEB-DL", "H.264", "FLUX",
     {"audio": "EAC3", "audio_channels": "5.1", "atmos": False}),
    ("Blade.Runner.2049.2017.2160p.UHD.BluRay.REMUX.HDR.HEVC.Atmos-EPSiLON",
     "Blade Runner 2049", 2017, "2160p", "REMUX", "HEVC", "EPSiLON",
     {"hdr": ("HDR",), "atmos": True}),
    ("2001.A.Space.Odyssey.1968.1080p.BluRay.x264-AMIABLE",
     "2001 A Space Odyssey", 1968, "1080p", "BluRay", "H.264", "AMIABLE", {}),
    ("1917.2019.1080p.WEB-DL.DDP5.1.H.264-NTG",
     "1917", 2019, "1080p", "WEB-DL", "H.264", "NTG", {"audio": "EAC3"}),
    ("The.Matrix.1999.4K.Remastered.1080p.BluRay.x264.DTS-HD.MA.5.1-SWTYBLZ",
     "The Matrix", 1999, "1080p", "BluRay", "H.264", "SWTYBLZ",
     {"editions": ("Remastered",), "audio": "DTS-HD MA", "audio_channels": "5.1"}),
    ("Spider-Man.Into.the.Spider-Verse.2018.720p.BluRay.x264-SPARKS",
     "Spider-Man Into the Spider-Verse", 2018, "720p", "BluRay", "H.264", "SPARKS", {}),
    ("Avengers.Endgame.2019.HDCAM.x264-ETRG",
     "Avengers Endgame", 2019, None, "CAM", "H.264", "ETRG", {"resolution_inferred": False}),
    ("Barbie.2023.HDTS.x264.AAC-SUNSCREEN",
     "Barbie", 2023, None, "TS", "H.264", "SUNSCREEN", {"audio": "AAC"}),
    ("Joker.2019.720p.HDTC.x264-ETHEL",
     "Joker", 2019, "720p", "TC", "H.264", "ETHEL", {}),
    ("The.Irishman.2019.DVDScr.XviD.AC3-EVO",
     "The Irishman", 2019, "480p", "SCR", "XviD", "EVO",
     {"resolution_inferred": True, "audio": "AC3"}),
    ("Heat.1995.Directors.Cut.1080p.BluRay.x264-DON",
     "Heat", 1995, "1080p", "BluRay", "H.264", "DON", {"editions": ("Director's Cut",)}),
    ("Aliens.1986.Special.Edition.REMASTERED.1080p.BluRay.x264-AMIABLE",
     "Aliens", 1986, "1080p", "BluRay", "H.264", "AMIABLE",
     {"editions": ("Remastered", "Special Edition")}),
    ("The.Lord.of.the.Rings.The.Fellowship.of.the.Ring.2001.EXTENDED.1080p.BluRay.x264-SiNNERS",
     "The Lord of the Rings The Fellowship of the Ring", 2001, "1080p", "BluRay", "H.264",
     "SiNNERS", {"editions": ("Extended",)}),
    ("Avatar.The.Way.of.Water.2022.IMAX.2160p.DSNP.WEB-DL.DDP5.1.Atmos.HDR.H.265-FLUX",
     "Avatar The Way of Water", 2022, "2160p", "WEB-DL", "HEVC", "FLUX",
     {"editions": ("IMAX",), "hdr": ("HDR",), "atmos": True}),
    ("Avatar.2009.3D.1080p.BluRay.Half-SBS.x264.DTS-HD.MA.5.1-RARBG",
     "Avatar", 2009, "1080p", "BluRay", "H.264", "RARBG",
     {"is_3d": True, "audio": "DTS-HD MA", "audio_channels": "5.1"}),
    ("Gravity.2013.1080p.3D.BluRay.AVC.DTS-HD.MA.5.1-FGT",
     "Gravity", 2013, "1080p", "BR-DISK", "H.264", "FGT", {"is_3d": True}),
    ("Interstellar.2014.COMPLETE.UHD.BLURAY-TERMiNAL",
     "Interstellar", 2014, "2160p", "BR-DISK", None, "TERMiNAL", {}),
    ("Amelie.2001.FRENCH.1080p.BluRay.x264.DTS-HDC",
     "Amelie", 2001, "1080p", "BluRay", "H.264", "HDC",
     {"languages": ("French",), "audio": "DTS"}),
    ("Das.Boot.1981.German.DL.1080p.BluRay.x264-DETAiLS",
     "Das Boot", 1981, "1080p", "BluRay", "H.264", "DETAiLS", {"languages": ("German",)}),
    ("Les.Miserables.2019.MULTi.1080p.BluRay.x264-LOST",
     "Les Miserables", 2019, "1080p", "BluRay", "H.264", "LOST", {"languages": ("Multi",)}),
    ("The.Dark.Knight.2008.PROPER.1080p.BluRay.x264-SECTOR7",
     "The Dark Knight", 2008, "1080p", "BluRay", "H.264", "SECTOR7", {"proper": 1}),
    ("Tenet.2020.REPACK.1080p.WEB-DL.DDP5.1.H.264-EVO",
     "Tenet", 2020, "1080p", "WEB-DL", "H.264", "EVO", {"proper": 1}),
    ("Nomadland.2020.REPACK2.1080p.WEB.H264-NAISU",
     "Nomadland", 2020, "1080p", "WEB-DL", "H.264", "NAISU", {"proper": 2}),
    ("The.Green.Knight.2021.REAL.PROPER.1080p.WEB.h264-KOGi",
     "The Green Knight", 2021, "1080p", "WEB-DL", "H.264", "KOGi", {"proper": 2}),
    ("Pulp.Fiction.1994.720p.BrRip.x264.YIFY",
     "Pulp Fiction", 1994, "720p", "BluRay", "H.264", None, {}),
    ("The.Godfather.1972.BRRip.x264-x0r",
     "The Godfather", 1972, "480p", "BluRay", "H.264", "x0r", {"resolution_inferred": True}),
    ("Seven.1995.DVDRip.XviD-DiAMOND",
     "Seven", 1995, "480p", "DVD", "XviD", "DiAMOND", {"resolution_inferred": True}),
    ("Fargo.1996.PAL.DVDR-iNTEGRiTY",
     "Fargo", 1996, "480p", "DVD-R", None, "iNTEGRiTY", {}),
    ("Casablanca.1942.576p.BluRay.DD1.0.x264-CtrlHD",
     "Casablanca", 1942, "576p", "BluRay", "H.264", "CtrlHD",
     {"audio": "AC3", "audio_channels": "1.0", "resolution_inferred": False}),
    ("Metropolis.1927.480p.BluRay.x264-mSD",
     "Metropolis", 1927, "480p", "BluRay", "H.264", "mSD", {"resolution_inferred": False}),
    ("Top.Gun.Maverick.2022.1080p.WEBRip.x265.10bit.AAC5.1-RARBG",
     "Top Gun Maverick", 2022, "1080p", "WEBRip", "HEVC", "RARBG",
     {"audio": "AAC", "audio_channels": "5.1"}),
    ("Everything.Everywhere.All.at.Once.2022.1080p.BluRay.x264.DTS-HD.MA.5.1-FGT",
     "Everything Everywhere All at Once", 2022, "1080p", "BluRay", "H.264", "FGT", {}),
    ("No.Time.to.Die.2021.2160p.UHD.BluRay.x265.10bit.HDR10Plus.TrueHD.7.1.Atmos-SWTYBLZ",
     "No Time to Die", 2021, "2160p", "BluRay", "HEVC", "SWTYBLZ",
     {"hdr": ("HDR10+",), "audio": "TrueHD", "audio_channels": "7.1", "atmos": True}),
    ("The.Batman.2022.1080p.HMAX.WEB-DL.DDP5.1.Atmos.H.264-CMRG",
     "The Batman", 2022, "1080p", "WEB-DL", "H.264", "CMRG", {"atmos": True}),
    ("Nope.2022.1080p.WEBRip.AV1.Opus.5.1-Rapta",
     "Nope", 2022, "1080p", "WEBRip", "AV1", "Rapta",
     {"audio": "Opus", "audio_channels": "5.1"}),
    ("Casino.Royale.2006.1080p.BluRay.VC-1.DTS-HD.MA.5.1-FGT",
     "Casino Royale", 2006, "1080p", "BR-DISK", "VC-1", "FGT", {"audio": "DTS-HD MA"}),
    ("Lawrence.of.Arabia.1962.1080p.BluRay.REMUX.AVC.DTS-HD.MA.5.1-FGT",
     "Lawrence of Arabia", 1962, "1080p", "REMUX", "H.264", "FGT", {}),
    ("The.Thing.1982.1080p.BluRay.REMUX.VC-1.DTS-HD.MA.5.1-EPSiLON",
     "The Thing", 1982, "1080p", "REMUX", "VC-1", "EPSiLON", {}),
    ("The Social Network (2010) (1080p BluRay x265 10bit Tigole)",
     "The Social Network", 2010, "1080p", "BluRay", "HEVC", None, {}),
    ("Moonlight (2016) [1080p] [BluRay] [5.1] [YTS.MX]",
     "Moonlight", 2016, "1080p", "BluRay", None, None, {"audio_channels": "5.1"}),
    ("Arrival.2016.1080p.BluRay.x264-SPARKS[rarbg]",
     "Arrival", 2016, "1080p", "BluRay", "H.264", "SPARKS", {}),
    ("Sicario.2015.1080p.BluRay.x264-SPARKS-Obfuscated",
     "Sicario", 2015, "1080p", "BluRay", "H.264", "SPARKS", {}),
    ("Her.2013.1080p.BluRay.x264-SPARKS.mkv",
     "Her", 2013, "1080p", "BluRay", "H.264", "SPARKS", {}),
    ("Drive.2011.1080p.BluRay.DTS.x264-D-Z0N3",
     "Drive", 2011, "1080p", "BluRay", "H.264", "D-Z0N3", {"audio": "DTS"}),
    ("Prisoners.2013.1080p.BluRay.DD5.1.x264-EbP",
     "Prisoners", 2013, "1080p", "BluRay", "H.264", "EbP",
     {"audio": "AC3", "audio_channels": "5.1"}),
    ("Baby.Driver.2017.1080p.BluRay.x264.DTS-X.7.1-SWTYBLZ",
     "Baby Driver", 2017, "1080p", "BluRay", "H.264", "SWTYBLZ",
     {"audio": "DTS:X", "audio_channels": "7.1"}),
    ("Whiplash.2014.720p.BluRay.x264.DTS-WiKi",
     "Whiplash", 2014, "720p", "BluRay", "H.264", "WiKi", {"audio": "DTS"}),
    ("Gone.Girl.2014.1080p.WEB-DL.AAC2.0.H264-RARBG",
     "Gone Girl", 2014, "1080p", "WEB-DL", "H.264", "RARBG",
     {"audio": "AAC", "audio_channels": "2.0"}),
    ("The.Revenant.2015.DVDSCR.x264-FiHTV",
     "The Revenant", 2015, None, "SCR", "H.264", "FiHTV", {}),
    ("Frozen.2013.R5.LINE.XviD-UNiQUE",
     "Frozen", 2013, "480p", "R5", "XviD", "UNiQUE", {}),
    ("Logan.2017.TELESYNC.x264-ETRG",
     "Logan", 2017, None, "TS", "H.264", "ETRG", {}),
    ("Doctor.Strange.2016.TC.x264.AC3-ETRG",
     "Doctor Strange", 2016, None, "TC", "H.264", "ETRG", {"audio": "AC3"}),
    ("Wonder.Woman.2017.HC.HDRip.XviD.AC3-EVO",
     "Wonder Woman", 2017, "480p", "WEBRip", "XviD", "EVO", {"hardcoded_subs": True}),
    ("Up.2009.1080p.BluRay.x264-Japhson",
     "Up", 2009, "1080p", "BluRay", "H.264", "Japhson", {"hardcoded_subs": False}),
    ("Coco.2017.1080p.BluRay.x264.TrueHD.7.1.Atmos-HDC",
     "Coco", 2017, "1080p", "BluRay", "H.264", "HDC", {"audio": "TrueHD", "atmos": True}),
    ("Zack.Snyders.Justice.League.2021.2160p.HMAX.WEB-DL.DDP5.1.Atmos.HDR.HEVC-EVO",
     "Zack Snyders Justice League", 2021, "2160p", "WEB-DL", "HEVC", "EVO", {"hdr": ("HDR",)}),
    ("The.Lighthouse.2019.2160p.WEB-DL.HLG.DDP5.1.HEVC-NTb",
     "The Lighthouse", 2019, "2160p", "WEB-DL", "HEVC", "NTb", {"hdr": ("HLG",)}),
    ("Goodfellas.1990.Open.Matte.1080p.WEBRip.x264-RARBG",
     "Goodfellas", 1990, "1080p", "WEBRip", "H.264", "RARBG", {"editions": ("Open Matte",)}),
    ("Apocalypse.Now.1979.Final.Cut.1080p.BluRay.x264-SiNNERS",
     "Apocalypse Now", 1979, "1080p", "BluRay", "H.264", "SiNNERS", {"editions": ("Final Cut",)}),
    ("Dawn.of.the.Dead.2004.UNRATED.720p.BluRay.x264-SiNNERS",
     "Dawn of the Dead", 2004, "720p", "BluRay", "H.264", "SiNNERS", {"editions": ("Unrated",)}),
    ("Back.to.the.Future.1985.25th.Anniversary.Edition.1080p.BluRay.x264-CiNEFiLE",
     "Back to the Future", 1985, "1080p", "BluRay", "H.264", "CiNEFiLE",
     {"editions": ("Anniversary",)}),
    ("Spirited.Away.2001.JAPANESE.1080p.BluRay.x264.FLAC.2.0-iON10",
     "Spirited Away", 2001, "1080p", "BluRay", "H.264", "iON10",
     {"languages": ("Japanese",), "audio": "FLAC", "audio_channels": "2.0"}),
    ("Train.to.Busan.2016.KOREAN.1080p.BluRay.x264.DTS-FGT",
     "Train to Busan", 2016, "1080p", "BluRay", "H.264", "FGT", {"languages": ("Korean",)}),
    ("Star.Wars.Episode.IV.A.New.Hope.1977.1080p.BluRay.x264-DON",
     "Star Wars Episode IV A New Hope", 1977, "1080p", "BluRay", "H.264", "DON", {}),
    ("Knives.Out.2019.1080p.WEBRip.x264-RARBG",
     "Knives Out", 2019, "1080p", "WEBRip", "H.264", "RARBG", {}),
    ("[Judas] Your Name (2016) (BD 1080p HEVC FLAC)",
     "Your Name", 2016, "1080p", "BluRay", "HEVC", "Judas", {"audio": "FLAC"}),
    ("[SubsPlease] Suzume (1080p) [ABCD1234].mkv",
     "Suzume", None, "1080p", None, None, "SubsPlease", {}),
    ("The.Day.After.Tomorrow.2004.720p.HDTV.x264-DHD",
     "The Day After Tomorrow", 2004, "720p", "HDTV", "H.264", "DHD", {}),
    ("Mad Max Fury Road 2015 1080p BluRay x264 DTS-JYK",
     "Mad Max Fury Road", 2015, "1080p", "BluRay", "H.264", "JYK", {"audio": "DTS"}),
    ("Casablanca.1942.1080i.HDTV.MPEG-2.DD2.0-TrollHD",
     "Casablanca", 1942, "1080p", "HDTV", "MPEG-2", "TrollHD",
     {"audio": "AC3", "audio_channels": "2.0"}),
    ("Gladiator.2000.DVDRip.DivX-FLiX",
     "Gladiator", 2000, "480p", "DVD", "DivX", "FLiX", {}),
    ("Hereditary.2018.2160p.BluRay.x265.DV.HDR10.DTS-HD.MA.5.1-SWTYBLZ",
     "Hereditary", 2018, "2160p", "BluRay", "HEVC", "SWTYBLZ", {"hdr": ("DV", "HDR10")}),
    ("Us.2019.2160p.WEB-DL.DDP5.1.DV.HEVC-CMRG",
     "Us", 2019, "2160p", "WEB-DL", "HEVC", "CMRG", {"hdr": ("DV",)}),
    ("Heat.1080p.BluRay.x264-AMIABLE",
     "Heat", None, "1080p", "BluRay", "H.264", "AMIABLE", {}),
    ("X-Men.2000.720p.BluRay.x264-SiNNERS",
     "X-Men", 2000, "720p", "BluRay", "H.264", "SiNNERS", {}),
    ("Blade.Runner.1982.The.Final.Cut.REMASTERED.2160p.UHD.BluRay.x265-TERMiNAL",
     "Blade Runner", 1982, "2160p", "BluRay", "HEVC", "TERMiNAL",
     {"editions": ("Remastered", "Final Cut")}),
    ("The.Cabin.in.the.Woods.2011.LIMITED.1080p.BluRay.x264-AMIABLE",
     "The Cabin in the Woods", 2011, "1080p", "BluRay", "H.264", "AMIABLE", {"editions": ()}),
    ("Jurassic.Park.1993.MULTi.2160p.UHD.BluRay.x265.HDR.DTS-X.7.1-DTOne",
     "Jurassic Park", 1993, "2160p", "BluRay", "HEVC", "DTOne",
     {"languages": ("Multi",), "audio": "DTS:X"}),
    ("Amadeus.1984.Directors.Cut.1080p.BluRay.x264.DD5.1-WiKi",
     "Amadeus", 1984, "1080p", "BluRay", "H.264", "WiKi",
     {"editions": ("Director's Cut",), "audio": "AC3", "audio_channels": "5.1"}),
    ("Toy.Story.1995.1920x1080.BluRay.x264-GRP",
     "Toy Story", 1995, "1080p", "BluRay", "H.264", "GRP", {}),
]  # fmt: skip


def test_the_table_is_large_enough() -> None:
    assert len(TITLES) >= 60
    assert len({row[0] for row in TITLES}) == len(TITLES)


@pytest.mark.parametrize(
    ("title", "movie", "year", "resolution", "source", "codec", "group", "extra"),
    TITLES,
    ids=[row[0][:60] for row in TITLES],
)
def test_parse_title_table(
    title: str,
    movie: str,
    year: int | None,
    resolution: str | None,
    source: str | None,
    codec: str | None,
    group: str | None,
    extra: dict[str, Any],
) -> None:
    parsed = parse_title(title)
    assert (
        parsed.movie_title,
        parsed.year,
        parsed.resolution,
        parsed.source,
        parsed.codec,
        parsed.group,
    ) == (movie, year, resolution, source, codec, group)
    for field, expected in extra.items():
        actual = getattr(parsed, field)
        if field in ("editions", "languages"):
            assert set(actual) == set(expected), field
        else:
            assert actual == expected, field


@pytest.mark.parametrize(
    "title",
    ["The.Cam.Man.2010.DVDRip.XviD-GRP", "Ts.2018.1080p.WEB-DL.H264-GRP"],
)
def test_short_markers_in_the_film_title_are_ignored(title: str) -> None:
    parsed = parse_title(title)
    assert parsed.source in ("DVD", "WEB-DL")
    assert parsed.source not in ("CAM", "TS")


WEIRD = ["", " ", "-", "---", "....", "[]", "[x]", "(2020)", "2020", "1080p", "-GRP", "a-b-c-d",
         "x" * 5000, "Movie.2020.1080p-", "\u00c9t\u00e9.2020.1080p.WEB-DL-G\u00e9"]  # fmt: skip


def test_weird_inputs_do_not_crash() -> None:
    for title in WEIRD:
        parsed = parse_title(title)
        assert isinstance(parsed, ParsedRelease)
        if parsed.group is not None:
            assert re.fullmatch(r"[A-Za-z0-9-]+", parsed.group)


# --- every title in the real captures --------------------------------------------------------

RESOLUTIONS = {"480p", "576p", "720p", "1080p", "2160p"}
SOURCES = {"REMUX", "BR-DISK", "BluRay", "WEB-DL", "WEBRip", "HDTV", "DVD-R", "DVD",
           "CAM", "TS", "TC", "SCR", "R5", "WORKPRINT"}  # fmt: skip
CODECS = {"H.264", "HEVC", "AV1", "VP9", "XviD", "DivX", "VC-1", "MPEG-2"}


def _captured_items(shared_fixtures: Path) -> list[NewznabItem]:
    items: list[NewznabItem] = []
    for path in sorted((shared_fixtures / "newznab").glob("*.xml")):
        data = path.read_bytes()
        if b"<rss" in data:
            items.extend(parse_search(data, indexer=path.stem.split("_")[0]).items)
    return items


def _all_titles(shared_fixtures: Path) -> list[str]:
    # The captures plus the table, each also with its separators swapped, so the invariants
    # run over a few hundred titles.
    titles = [i.title for i in _captured_items(shared_fixtures)] + [row[0] for row in TITLES]
    swapped = [t.replace(".", " ") if "." in t else t.replace(" ", ".") for t in titles]
    return titles + swapped


def test_captures_hold_enough_titles(shared_fixtures: Path) -> None:
    assert len(_captured_items(shared_fixtures)) >= 114
    assert len(_all_titles(shared_fixtures)) >= 300


def test_invariants_over_every_title(shared_fixtures: Path) -> None:
    for title in _all_titles(shared_fixtures):
        parsed = parse_title(title)
        assert parse_title(title) == parsed, title  # deterministic
        tokens = [t.lower() for t in re.split(r"[\s._\-\[\]()]+", title) if t]
        stated = [t[:-1] + "p" for t in tokens if re.fullmatch(r"(480|576|720|1080|2160)[pi]", t)]
        if stated:
            assert parsed.resolution in stated, title
            assert not parsed.resolution_inferred, title
        if "2160p" in title.lower():
            assert parsed.resolution == "2160p", title
        assert parsed.resolution is None or parsed.resolution in RESOLUTIONS, title
        assert parsed.source is None or parsed.source in SOURCES, title
        assert parsed.codec is None or parsed.codec in CODECS, title
        if parsed.group is not None:
            assert " " not in parsed.group and "." not in parsed.group, title
            assert parsed.group.lower() not in {"dl", "hd", "rip", "ray", "x", "ma"}, title
            assert parsed.group in title, title
        assert parsed.movie_title == parsed.movie_title.strip(), title
        assert "  " not in parsed.movie_title, title
        if parsed.year is not None:
            assert str(parsed.year) in title, title
            assert 1900 <= parsed.year <= 2099, title
        assert parsed.proper >= 0


def test_separator_style_does_not_change_the_reading(shared_fixtures: Path) -> None:
    for item in _captured_items(shared_fixtures):
        if "." not in item.title or " " in item.title:
            continue
        dotted = parse_title(item.title)
        spaced = parse_title(item.title.replace(".", " "))
        assert (dotted.resolution, dotted.source, dotted.codec, dotted.group, dotted.year) == (
            spaced.resolution,
            spaced.source,
            spaced.codec,
            spaced.group,
            spaced.year,
        ), item.title


# --- ranking ---------------------------------------------------------------------------------

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
GB = 1_000_000_000


def item(
    title: str,
    *,
    size: int | None = 8 * GB,
    indexer: str = "geek",
    guid: str | None = None,
    grabs: int | None = 100,
    password: int | None = 0,
    categories: tuple[int, ...] = (2000, 2040),
    days_old: int = 30,
) -> NewznabItem:
    posted = NOW - timedelta(days=days_old)
    return NewznabItem(
        title=title,
        guid=guid or f"{indexer}:{title}:{size}",
        link=f"https://{indexer}.example/get/{title}?apikey=SECRET",
        size=size,
        pub_date=posted,
        categories=categories,
        grabs=grabs,
        usenetdate=posted,
        password=password,
        imdb_id=None,
        indexer=indexer,
    )


def titles_of(ranked: list[Any]) -> list[str]:
    return [r.title for r in ranked]


def test_dognzb_capture_ranking(shared_fixtures: Path) -> None:
    data = (shared_fixtures / "newznab" / "dognzb_t-movie_imdbid_3079380.xml").read_bytes()
    items = parse_search(data, indexer="dognzb").items
    later = datetime(2016, 1, 1, tzinfo=UTC)
    cases: list[tuple[Preference, str]] = [("720p", "720p"), ("1080p", "1080p")]
    for preference, quality in cases:
        ranked = rank(items, runtime_minutes=120, preference=preference, now=later)
        assert len(ranked) == 13
        assert ranked[0].quality == quality
        assert not ranked[0].excluded
        # The telesync is the only excluded release, last, saying why.
        assert [r.title for r in ranked if r.excluded] == ["Spy.2015.TS.XVID.AC3-MRG"]
        assert ranked[-1].excluded
        assert "TS excluded" in ranked[-1].reasons[0]


def test_music_capture_is_excluded_as_not_a_movie(shared_fixtures: Path) -> None:
    data = (shared_fixtures / "newznab" / "nzbgeek_t-music_extended.xml").read_bytes()
    ranked = rank(parse_search(data, indexer="nzbgeek").items, runtime_minutes=100, now=NOW)
    assert ranked
    assert all(r.excluded and "not in a movie category" in r.reasons[0] for r in ranked)


def _ladder() -> list[NewznabItem]:
    return [
        item("Arrival.2016.720p.BluRay.x264-SPARKS", size=5 * GB),
        item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=10 * GB),
        item("Arrival.2016.2160p.UHD.BluRay.x265.HDR.DTS-HD.MA.5.1-TERMiNAL", size=25 * GB),
        item("Arrival.2016.BRRip.XviD-EVO", size=1 * GB),
    ]


@pytest.mark.parametrize(
    ("preference", "quality"), [("720p", "720p"), ("1080p", "1080p"), ("4K", "2160p")]
)
def test_preference_changes_the_top_result(preference: Preference, quality: str) -> None:
    ranked = rank(_ladder(), runtime_minutes=116, preference=preference, now=NOW)
    assert ranked[0].quality == quality
    assert "matches your" in ranked[0].reasons[0]


def test_nearby_resolutions_follow_the_preferred_one() -> None:
    ranked = rank(_ladder(), runtime_minutes=116, preference="1080p", now=NOW)
    assert [r.quality for r in ranked] == ["1080p", "720p", "2160p", "480p"]


CAMLIKE = [row[0] for row in TITLES if row[4] in ("CAM", "TS", "TC", "SCR", "R5")]
REAL = [row[0] for row in TITLES if row[4] in ("BluRay", "WEB-DL", "WEBRip", "HDTV", "DVD")]


def test_cam_never_ranks_above_a_real_source_when_allowed() -> None:
    assert len(CAMLIKE) >= 6
    rng = random.Random(4)
    for cam_title in CAMLIKE:
        for real_title in REAL:
            # Give the pre-release copy every advantage the score can give it.
            cam = item(cam_title, size=rng.choice([1, 2, 4]) * GB, grabs=100_000, days_old=1)
            real = item(real_title, size=rng.choice([60, 90]) * GB, grabs=0, days_old=4000)
            ranked = rank([cam, real], runtime_minutes=100, allow_cam=True, now=NOW)
            assert titles_of(ranked) == [real_title, cam_title]
            assert not any(r.excluded for r in ranked)


def test_cam_is_excluded_unless_allowed() -> None:
    cam = item("Avengers.Endgame.2019.HDCAM.x264-ETRG", size=2 * GB)
    (excluded,) = rank([cam], runtime_minutes=181, now=NOW)
    assert excluded.excluded
    assert excluded.reasons[0].startswith("CAM excluded")
    (allowed,) = rank([cam], runtime_minutes=181, allow_cam=True, now=NOW)
    assert not allowed.excluded


def test_cam_at_the_preferred_resolution_stays_below_a_bluray_at_the_same_resolution() -> None:
    cam = item("Joker.2019.720p.HDTC.x264-ETHEL", size=4 * GB, grabs=50_000)
    bluray = item("Joker.2019.720p.BluRay.x264-SPARKS", size=30 * GB, grabs=None)
    ranked = rank([cam, bluray], runtime_minutes=122, preference="720p", allow_cam=True, now=NOW)
    assert titles_of(ranked) == [bluray.title, cam.title]


def test_excluded_releases_are_last_and_say_why() -> None:
    items = [
        item("Arrival.2016.1080p.BluRay.x264-SPARKS", password=1, guid="pw"),
        item("Arrival.2016.1080p.BluRay.AVC.DTS-HD.MA.5.1-FGT", size=40 * GB),
        item("Arrival.2016.HDCAM.x264-ETRG"),
        item("Arrival.2016.720p.WEB-DL.DD5.1.H264-FGT", size=4 * GB),
        item("Arrival-Original.Soundtrack-2016-FLAC", categories=(3000, 3040)),
    ]
    ranked = rank(items, runtime_minutes=116, now=NOW)
    assert titles_of(ranked)[0] == "Arrival.2016.720p.WEB-DL.DD5.1.H264-FGT"
    assert [r.excluded for r in ranked] == [False, True, True, True, True]
    reasons = {r.title: r.reasons[0] for r in ranked if r.excluded}
    assert reasons["Arrival.2016.1080p.BluRay.x264-SPARKS"] == "passworded (excluded)"
    assert "disc image" in reasons["Arrival.2016.1080p.BluRay.AVC.DTS-HD.MA.5.1-FGT"]
    assert reasons["Arrival.2016.HDCAM.x264-ETRG"].startswith("CAM excluded")
    assert "not in a movie category" in reasons["Arrival-Original.Soundtrack-2016-FLAC"]


def test_maybe_passworded_is_penalised_not_excluded() -> None:
    clean = item("Arrival.2016.1080p.BluRay.x264-SPARKS", password=0, indexer="a")
    doubtful = item("Arrival.2016.1080p.BluRay.x264-AMIABLE", password=2, indexer="b")
    ranked = rank([doubtful, clean], runtime_minutes=116, now=NOW)
    assert titles_of(ranked) == [clean.title, doubtful.title]
    assert not ranked[1].excluded
    assert any("passworded archive" in r for r in ranked[1].reasons)


def test_size_for_the_runtime() -> None:
    small = item("Arrival.2016.1080p.WEB-DL.DD5.1.H264-FGT", size=1_200_000_000)
    fits = item("Arrival.2016.1080p.WEB-DL.DD5.1.H264-NTG", size=7 * GB)
    ranked = rank([small, fits], runtime_minutes=139, now=NOW)
    assert titles_of(ranked) == [fits.title, small.title]
    assert "size 1.2 GB is small for a 139 min film: probably fake or poor quality" in (
        ranked[1].reasons
    )
    # The same bytes are fine for a short film.
    (short,) = rank([small], runtime_minutes=40, now=NOW)
    assert short.score > ranked[1].score


def test_too_big_to_stream_loses_to_a_sane_size() -> None:
    huge = item("Arrival.2016.1080p.BluRay.x264-HUGE", size=45 * GB)
    sane = item("Arrival.2016.1080p.BluRay.x264-SANE", size=9 * GB)
    ranked = rank([huge, sane], runtime_minutes=116, now=NOW)
    assert titles_of(ranked) == [sane.title, huge.title]
    assert any("too big to stream" in r for r in ranked[1].reasons)


def test_browser_codecs_are_preferred() -> None:
    hevc = item("Arrival.2016.1080p.BluRay.x265-RARBG", size=6 * GB)
    avc = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=9 * GB)
    xvid = item("Arrival.2016.1080p.BluRay.XviD-EVO", size=9 * GB)
    ranked = rank([xvid, hevc, avc], runtime_minutes=116, now=NOW)
    assert titles_of(ranked) == [avc.title, hevc.title, xvid.title]
    assert "converting video: HEVC → H.264 (Chrome cannot play HEVC)" in ranked[1].reasons
    assert "H.264 video plays in Chrome (copied into HLS)" in ranked[0].reasons
    assert any("MPEG-4 Part 2 does not play in browsers" in r for r in ranked[2].reasons)


def test_remux_is_penalised_for_size() -> None:
    remux = item("Arrival.2016.1080p.BluRay.REMUX.AVC.DTS-HD.MA.5.1-EPSiLON", size=28 * GB)
    encode = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=10 * GB)
    ranked = rank([remux, encode], runtime_minutes=116, now=NOW)
    assert titles_of(ranked) == [encode.title, remux.title]
    assert "REMUX is very large and slow to start streaming" in ranked[1].reasons


def test_grabs_then_age_then_size_break_ties() -> None:
    base = "Arrival.2016.1080p.BluRay.x264-"
    popular = item(base + "A", grabs=5000)
    unpopular = item(base + "B", grabs=3)
    assert titles_of(rank([unpopular, popular], runtime_minutes=116, now=NOW))[0] == popular.title

    fresh = item(base + "C", days_old=10)
    old = item(base + "D", days_old=3000)
    assert titles_of(rank([old, fresh], runtime_minutes=116, now=NOW))[0] == fresh.title

    smaller = item(base + "E", size=8 * GB)
    larger = item(base + "F", size=int(8.5 * GB))
    ranked = rank([larger, smaller], runtime_minutes=116, now=NOW)
    assert ranked[0].score == ranked[1].score
    assert titles_of(ranked) == [smaller.title, larger.title]


def test_ranking_is_deterministic_whatever_the_input_order() -> None:
    items = [item(row[0], size=(i % 7 + 1) * GB, grabs=10) for i, row in enumerate(TITLES)]
    items += [replace(i, guid=i.guid + "#twin", indexer="slug") for i in items[:5]]
    expected = [r.release_id for r in rank(items, runtime_minutes=110, now=NOW)]
    rng = random.Random(7)
    for _ in range(5):
        shuffled = items[:]
        rng.shuffle(shuffled)
        assert [r.release_id for r in rank(shuffled, runtime_minutes=110, now=NOW)] == expected
    assert len(set(expected)) == len(expected)


def test_every_ranked_release_explains_itself() -> None:
    items = [item(row[0], size=(i % 9 + 1) * GB) for i, row in enumerate(TITLES)]
    ranked = rank(items, runtime_minutes=None, allow_cam=True, now=NOW)
    scores = [r.score for r in ranked if not r.excluded and r.source not in CAM_SOURCES]
    assert scores == sorted(scores, reverse=True)
    for release in ranked:
        assert release.reasons
        assert any("runtime unknown" in r or "size unknown" in r for r in release.reasons)


CAM_SOURCES = {"CAM", "TS", "TC", "SCR", "R5", "WORKPRINT"}


def test_api_shape() -> None:
    (release,) = rank([item("Arrival.2016.1080p.BluRay.x264-SPARKS")], runtime_minutes=116, now=NOW)
    api = release.as_api()
    assert set(api) == {
        "release_id", "title", "size", "quality", "source", "codec", "group", "indexer",
        "pub_date", "score", "reasons",
    }  # fmt: skip
    assert api["release_id"] == release_id("geek", release.guid)
    assert api["quality"] == "1080p"
    assert api["pub_date"] == (NOW - timedelta(days=30)).isoformat()
    # The NZB link can carry the API key; it must not leak into the API.
    assert "SECRET" not in repr(api)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rank([], runtime_minutes=100, now=datetime(2024, 1, 1))


# --- dedupe ----------------------------------------------------------------------------------


def test_release_id_is_stable_and_per_indexer() -> None:
    assert release_id("geek", "abc") == release_id("geek", "abc")
    assert release_id("geek", "abc") != release_id("slug", "abc")
    assert re.fullmatch(r"rel_[0-9a-f]{20}", release_id("geek", "abc"))


def test_same_release_on_two_indexers_is_counted_once() -> None:
    geek = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=10_000_000_000, indexer="geek",
                grabs=40)  # fmt: skip
    slug = item("Arrival 2016 1080p BluRay x264-SPARKS", size=10_080_000_000, indexer="slug",
                grabs=2, password=None)  # fmt: skip
    (merged,) = dedupe([slug, geek])
    # geek's copy is known not to be passworded and more grabbed: it is the one kept.
    assert merged.item == geek
    assert merged.indexers == ("geek", "slug")
    assert merged.grabs == 42
    (ranked,) = rank([geek, slug], runtime_minutes=116, now=NOW)
    assert ranked.indexers == ("geek", "slug")
    assert "also on slug" in ranked.reasons


def test_indexer_priority_decides_which_copy_is_kept() -> None:
    geek = item("Arrival.2016.1080p.BluRay.x264-SPARKS", indexer="geek", grabs=500)
    slug = item("Arrival.2016.1080p.BluRay.x264-SPARKS", indexer="slug", grabs=1)
    (merged,) = dedupe([geek, slug], indexer_priority={"slug": 1, "geek": 2})
    assert merged.item == slug
    assert merged.indexers == ("slug", "geek")


def test_sizes_more_than_one_percent_apart_are_different_releases() -> None:
    a = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=10_000_000_000, indexer="geek")
    b = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=10_200_000_000, indexer="slug")
    assert len(dedupe([a, b])) == 2
    unknown = item("Arrival.2016.1080p.BluRay.x264-SPARKS", size=None, indexer="dog")
    assert len(dedupe([a, unknown])) == 2


def test_a_password_seen_by_one_indexer_applies_to_the_merged_release() -> None:
    clean = item("Arrival.2016.1080p.BluRay.x264-SPARKS", indexer="geek", password=0)
    flagged = item("Arrival.2016.1080p.BluRay.x264-SPARKS", indexer="slug", password=1)
    (merged,) = dedupe([clean, flagged])
    assert merged.password == 1
    (ranked,) = rank([clean, flagged], runtime_minutes=116, now=NOW)
    assert ranked.excluded


def test_the_same_item_twice_is_dropped() -> None:
    once = item("Arrival.2016.1080p.BluRay.x264-SPARKS")
    assert len(dedupe([once, once])) == 1


def test_normalised_title_ignores_separators_and_site_tags() -> None:
    assert normalised_title("Arrival.2016.1080p.BluRay.x264-SPARKS[rarbg]") == (
        normalised_title("Arrival 2016 1080p BluRay x264-SPARKS")
    )
    assert normalised_title("Arrival.2016.1080p") != normalised_title("Arrival.2016.720p")


@pytest.mark.parametrize(
    ("size", "text"),
    [(1_234_567_890, "1.2 GB"), (700_000_000, "700 MB"), (25_000, "25 kB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


# --- the score says the order (issue 14, item 4) ----------------------------------------------


def test_scores_are_in_order_over_every_real_capture(shared_fixtures: Path) -> None:
    """Every captured reply at once (a movie search, a music reply answering it, an RSS item):
    fetchable releases first, excluded ones last, and the scores say so."""
    items = _captured_items(shared_fixtures)
    for allow_cam in (False, True):
        ranked = rank(items, runtime_minutes=120, allow_cam=allow_cam, now=NOW)
        scores = [r.score for r in ranked]
        assert scores == sorted(scores, reverse=True), scores
        excluded = [r.excluded for r in ranked]
        assert excluded == sorted(excluded), "an excluded release ranks above a fetchable one"
        assert any(excluded) and not all(excluded)
        for release in ranked:
            if release.excluded:
                assert any("ranked last" in r for r in release.reasons)


def test_pre_release_copies_rank_below_real_sources_by_their_score() -> None:
    items = [item(row[0], size=(i % 5 + 1) * GB) for i, row in enumerate(TITLES)]
    ranked = rank(items, runtime_minutes=100, allow_cam=True, now=NOW)
    tiers = [2 if r.excluded else 1 if r.source in CAM_SOURCES else 0 for r in ranked]
    assert tiers == sorted(tiers)
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)


# --- the player's logic ranks the sound (issue 14, item 6) -------------------------------------


@pytest.mark.parametrize("browser", ["chrome", "firefox", "safari", CHROMIUM, FIREFOX])
def test_dts_never_ranks_above_an_equal_release_with_browser_sound(browser: Any) -> None:
    base = "Arrival.2016.1080p.BluRay.{}.x264-GRP"
    dts = item(base.format("DTS"), size=8 * GB)  # the smallest: it wins a tie
    ac3 = item(base.format("AC3"), size=int(8.2 * GB))
    aac = item(base.format("AAC"), size=int(8.4 * GB))
    ranked = rank([dts, ac3, aac], runtime_minutes=116, now=NOW, browser=browser)
    order = titles_of(ranked)
    assert order.index(dts.title) == 2, order
    scores = {r.title: r.score for r in ranked}
    assert scores[aac.title] >= scores[ac3.title] > scores[dts.title], scores
    (said,) = [r for r in ranked[2].reasons if "DTS" in r]
    assert "no browser plays DTS" in said


def test_hevc_ranks_by_what_the_browser_decodes() -> None:
    """Chromium has no HEVC decoder (a transcode); Firefox ESR's decodes it (copied)."""
    hevc = item("Arrival.2016.1080p.BluRay.x265.AAC-GRP", size=6 * GB)
    avc = item("Arrival.2016.1080p.BluRay.x264.AAC-GRP", size=6 * GB)
    chromium = rank([hevc, avc], runtime_minutes=116, now=NOW, browser=CHROMIUM)
    firefox = rank([hevc, avc], runtime_minutes=116, now=NOW, browser=FIREFOX)
    assert titles_of(chromium)[0] == avc.title and chromium[0].score > chromium[1].score
    assert chromium[1].score == firefox[0].score - 100  # converted (-40) instead of copied (+60)
    assert "converting video: HEVC → H.264 (this browser cannot play HEVC)" in chromium[1].reasons
    assert firefox[0].score == firefox[1].score  # both play in Firefox
