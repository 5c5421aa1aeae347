"""File names from subjects and posted names: ordinary posts keep their name, hostile ones lose
everything that could leave the download directory or confuse a terminal or a browser."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from nntp.names import (
    MAX_NAME_BYTES,
    filename_from_subject,
    names_a_media_part,
    numbered_filename,
    safe_filename,
)

SAFE_FILENAME_CASES = [
    # ordinary names are kept as they are
    ("Movie.2019.1080p.mkv", "Movie.2019.1080p.mkv"),
    ("Big Buck Bunny - S01E01.mkv", "Big Buck Bunny - S01E01.mkv"),
    ("你好世界.part01.rar", "你好世界.part01.rar"),
    ("Amélie.2001.mkv", "Amélie.2001.mkv"),
    (".hidden", "_hidden"),  # names that start with a dot are the engine's own
    (".matinee-download.json", "_matinee-download.json"),
    ("..x.mkv", "__x.mkv"),
    ("Movie: Part 2.mkv", "Movie: Part 2.mkv"),
    # only the last path component survives
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("dir\\sub/file.txt", "file.txt"),
    ("C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
    ("\\\\server\\share\\x.mkv", "x.mkv"),
    ("C:evil.exe", "evil.exe"),
    ("movies/../../../root/.ssh/authorized_keys", "authorized_keys"),
    # control characters disappear
    ("evil\x00.mkv", "evil.mkv"),
    ("tab\there\nnewline.mkv", "tabherenewline.mkv"),
    ("bell\x07\x1b[31mred.mkv", "bell[31mred.mkv"),
    ("del\x7f.mkv", "del.mkv"),
    ("c1\x85\x9b.mkv", "c1.mkv"),
    ("你好世界\x95\x8c.part02.rar", "你好世界.part02.rar"),
    ("evil\u202emkv.exe", "evilmkv.exe"),
    ("lone\udc80surrogate.mkv", "lonesurrogate.mkv"),
    # surrounding whitespace is trimmed
    ("  spaced name.mkv \t", "spaced name.mkv"),
    ("\u3000wide.mkv\u3000", "wide.mkv"),
    # nothing usable left
    ("", None),
    ("   ", None),
    (".", None),
    ("..", None),
    ("....", None),
    (". .", None),
    ("a/", None),
    ("a/..", None),
    ("..\\", None),
    (".\x00.", None),
    ("C:", None),
    ("C:..", None),
    ("\x00\x01\x02", None),
]


@pytest.mark.parametrize(("raw", "expected"), SAFE_FILENAME_CASES)
def test_safe_filename(raw: str, expected: str | None) -> None:
    assert safe_filename(raw) == expected


def test_long_names_are_cut_to_255_bytes_keeping_the_extension() -> None:
    assert safe_filename("a" * 300 + ".mkv") == "a" * 251 + ".mkv"
    # 3-byte characters are never cut in half: 83 of them and ".mkv" fill 253 bytes.
    assert safe_filename("你" * 100 + ".mkv") == "你" * 83 + ".mkv"
    # an "extension" of 300 characters is part of the name, not worth keeping whole
    assert safe_filename("a." + "b" * 300) == "a." + "b" * 253
    assert safe_filename("x" * 255) == "x" * 255


def test_names_from_hostile_input_are_one_component_inside_the_download_dir(
    tmp_path: Path,
) -> None:
    # A deterministic fuzz over the characters that make names dangerous.
    alphabet = ["/", "\\", ".", ":", " ", "\x00", "\n", "\x7f", "\x85", "\u202e", "\udc80"]
    alphabet += ["C", "a", "你", "é", "mkv", "..", "C:", "\t"]
    rng = random.Random(1968)
    for _ in range(3000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        name = safe_filename(raw)
        if name is None:
            continue
        assert "/" not in name and "\\" not in name, raw
        assert name.replace(".", "").strip() and name == name.strip(), raw
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in name), raw
        assert len(name.encode()) <= MAX_NAME_BYTES, raw
        assert (tmp_path / name).resolve().parent == tmp_path.resolve(), raw


def test_every_single_character_is_handled() -> None:
    for code in range(0x3100):
        name = safe_filename(f"x{chr(code)}y.bin")
        assert name is not None and len(name.encode()) <= MAX_NAME_BYTES


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("a.mkv", 2, "a (2).mkv"),
        ("noext", 3, "noext (3)"),
        ("你好世界.part01.rar", 2, "你好世界.part01 (2).rar"),
        ("x" * 251 + ".mkv", 2, "x" * 247 + " (2).mkv"),
    ],
)
def test_numbered_filename(name: str, number: int, expected: str) -> None:
    assert numbered_filename(name, number) == expected
    assert len(expected.encode()) <= MAX_NAME_BYTES


SUBJECT_CASES = [
    # the usual poster conventions
    ('[1/5] - "Movie.2019.1080p.mkv" yEnc (1/24) 12345', "Movie.2019.1080p.mkv"),
    ("Movie.2019.1080p.mkv (1/24)", "Movie.2019.1080p.mkv"),
    ("Movie.2019.1080p.mkv yEnc (1/24) 734003", "Movie.2019.1080p.mkv"),
    ("Movie.2019.1080p.mkv(1/24)", "Movie.2019.1080p.mkv"),
    ("archive.7z.001 yEnc (1/50)", "archive.7z.001"),
    ("Here's your file!  abc-mr2a.r01 (1/2)", "abc-mr2a.r01"),
    ('"Big Buck Bunny - S01E01.mkv" yEnc (1/24) 16981056', "Big Buck Bunny - S01E01.mkv"),
    (
        '[2/5] - "Big Buck Bunny - S01E01.mkv.vol00+01.par2" yEnc (1/2) 717788',
        "Big Buck Bunny - S01E01.mkv.vol00+01.par2",
    ),
    ('"你好世界.part01.rar"', "你好世界.part01.rar"),
    ('"  padded name.mkv  " yEnc (1/1)', "padded name.mkv"),
    (
        "[432278]-[FULL]-[#a.b.teevee@EFNet]-[ Series.Title.S04E06.720p.HDTV.x264-KILLERS ]"
        '-[01/46] - "Series.Title.s04e06.720p.hdtv.x264-killers.nfo" yEnc (1/1)',
        "Series.Title.s04e06.720p.hdtv.x264-killers.nfo",
    ),
    (
        'RefTestNZB: rar5 8288192_RAR5_FILE.rar ff2f7ca6 - "8288192_RAR5_FILE.rar" yEnc (1/11)',
        "8288192_RAR5_FILE.rar",
    ),
    # obfuscated posts quote a bare hash: it is still the name
    (
        '20155f68b0df03cc9bca2c58d426163ff [2/15] - "20155f68b0df03cc9bca2c58d426163ff" '
        "yEnc (62/68)",
        "20155f68b0df03cc9bca2c58d426163ff",
    ),
    # a quoted title before the quoted file name
    ('"Some Movie" [1/5] - "some.movie.2019.mkv" yEnc (1/24)', "some.movie.2019.mkv"),
    ("&quot;double.escaped.mkv&quot; yEnc (1/2)", "double.escaped.mkv"),
    # no file name in the subject
    ("abc123def yEnc (1/1)", None),
    ("WQDMm92SQnbDguxHUwXugqbku5Z22JSs", None),
    ("yEnc (1/1) 123", None),
    ("", None),
    ('"" yEnc (1/1)', None),
    ('"...." yEnc (1/1)', None),
    ("Movie 2019 (1/24)", None),
    # hostile names
    ('"../../etc/passwd" yEnc (1/1)', "passwd"),
    ('"/etc/shadow" yEnc (1/1)', "shadow"),
    ('"C:\\Windows\\win.ini" yEnc (1/1)', "win.ini"),
    ('"..\\..\\boot.ini" yEnc (1/1)', "boot.ini"),
    ("../../etc/passwd.txt (1/1)", "passwd.txt"),
    ('"evil\nname\x00.mkv" yEnc (1/1)', "evilname.mkv"),
    ('"..\x00/" yEnc (1/1)', None),
]


@pytest.mark.parametrize(("subject", "expected"), SUBJECT_CASES)
def test_filename_from_subject(subject: str, expected: str | None) -> None:
    assert filename_from_subject(subject) == expected


def test_a_very_long_quoted_name_is_cut_keeping_its_extension() -> None:
    name = filename_from_subject('"' + "long" * 100 + '.mkv" yEnc (1/9)')
    assert name is not None
    assert name.endswith(".mkv") and name.startswith("longlong")
    assert len(name.encode()) == MAX_NAME_BYTES


def test_a_huge_subject_is_handled_in_linear_time() -> None:
    # Subjects come from the NZB; a pathological one must not stall the parser.
    assert filename_from_subject(" " * 200_000 + "x" * 200_000 + " (1/2)") is None
    assert filename_from_subject('"' * 100_001) is None
    assert filename_from_subject("a." * 100_000 + "mkv (1/2)") is not None


@pytest.mark.parametrize(
    ("name", "tells"),
    [
        ("Movie.2019.1080p.mkv", True),
        ("b2d3075d94af88c6742b1fdfc34b225e.mp4", True),
        ("movie.PAR2", True),
        ("movie.vol07+08.par2", True),
        ("movie.part01.rar", True),
        ("movie.r17", True),
        ("movie.001", True),
        # obfuscated: no extension, or a random one
        ("b2d3075d94af88c6742b1fdfc34b225e", False),
        ("file-001", False),
        ("a8f3e1c9.x7q", False),
        ("b2d3075d94af88c6742b1fdfc34b225e.10", False),
        # neither the movie nor its recovery data
        ("Movie.2019.nfo", False),
        ("", False),
    ],
)
def test_names_a_media_part(name: str, tells: bool) -> None:
    assert names_a_media_part(name) is tells
