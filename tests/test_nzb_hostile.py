"""Hostile and broken NZBs: each one gives an NzbError a user can act on, or a safe result;
never a crash, a hang, a fetched URL, a file outside the download directory or an injected
NNTP command."""

from __future__ import annotations

import gzip
import random
import time
import zlib
from pathlib import Path

import pytest

from nntp import nzb as nzb_module
from nntp.names import MAX_NAME_BYTES
from nntp.nzb import MAX_FILES, MAX_NZB_BYTES, NzbError, parse_nzb

GOOD_FILE = (
    '<file poster="p" date="1" subject="&quot;good.mkv&quot; yEnc (1/1)">'
    "<groups><group>alt.binaries.test</group></groups>"
    '<segments><segment bytes="100" number="1">good@x</segment></segments></file>'
)


def nzb_with(body: str, *, doctype: str = "") -> bytes:
    return f'<?xml version="1.0"?>\n{doctype}<nzb>{body}</nzb>'.encode()


def file_with(subject: str = "&quot;f.mkv&quot;", segments: str = "") -> str:
    return (
        f'<file poster="p" date="1" subject="{subject}"><groups><group>g</group></groups>'
        f"<segments>{segments}</segments></file>"
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE nzb [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<nzb><head><meta type="title">&lol9;</meta></head></nzb>
"""

QUADRATIC_BLOWUP = (
    '<?xml version="1.0"?>\n<!DOCTYPE nzb [<!ENTITY a "'
    + "x" * 50_000
    + '">]>\n<nzb><head><meta type="title">'
    + "&a;" * 50_000
    + "</meta></head></nzb>"
).encode()

EXTERNAL_ENTITY = nzb_with(
    '<head><meta type="title">&xxe;</meta></head>' + GOOD_FILE,
    doctype='<!DOCTYPE nzb [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n',
)

EXTERNAL_PARAMETER_ENTITY = nzb_with(
    GOOD_FILE,
    doctype=(
        '<!DOCTYPE nzb [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">\n%remote;]>\n'
    ),
)


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, QUADRATIC_BLOWUP, EXTERNAL_ENTITY, EXTERNAL_PARAMETER_ENTITY],
    ids=["billion laughs", "quadratic blowup", "external entity", "external parameter entity"],
)
def test_entity_declarations_are_refused(data: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(NzbError, match="declares XML entities"):
        parse_nzb(data)
    assert time.monotonic() - started < 2


def test_an_external_dtd_is_never_read(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY secret "pwned">')
    data = nzb_with(
        '<head><meta type="note">x</meta></head>'
        + file_with("&quot;&secret;.mkv&quot;", '<segment bytes="1" number="1">a@x</segment>'),
        doctype=f'<!DOCTYPE nzb SYSTEM "{dtd.as_uri()}">\n',
    )
    nzb = parse_nzb(data)
    # Had the DTD been loaded, the entity would have become "pwned" in the subject.
    (file,) = nzb.files
    assert "pwned" not in file.subject
    assert "pwned" not in file.name


def test_an_undefined_entity_in_text_is_an_error_not_a_fetch(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY secret "pwned">')
    data = nzb_with(
        '<head><meta type="title">&secret;</meta></head>' + GOOD_FILE,
        doctype=f'<!DOCTYPE nzb SYSTEM "{dtd.as_uri()}">\n',
    )
    with pytest.raises(NzbError, match="not valid XML"):
        parse_nzb(data)


def _one_member_bomb() -> bytes:
    """128 MiB of spaces after "<nzb>", as one gzip member of about 600 kB."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1024 * 1024)
    parts = [compressor.compress(b"<nzb>")]
    parts += [compressor.compress(chunk) for _ in range(128)]
    return b"".join(parts) + compressor.flush()


def _many_member_bomb() -> bytes:
    """128 MiB in 16 concatenated gzip members of 8 MiB each, about 130 kB in all."""
    return gzip.compress(b" " * (8 * 1024 * 1024), 9) * 16


@pytest.mark.parametrize(
    "bomb", [_one_member_bomb(), _many_member_bomb()], ids=["one member", "many members"]
)
def test_a_gzip_bomb_is_refused_without_expanding_it(bomb: bytes) -> None:
    assert len(bomb) < 2 * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(NzbError, match="expands to more than 64 MiB"):
        parse_nzb(bomb)
    assert time.monotonic() - started < 5


def test_concatenated_gzip_members_are_one_nzb() -> None:
    data = nzb_with(GOOD_FILE)
    nzb = parse_nzb(gzip.compress(data[:40]) + gzip.compress(data[40:]) + b"\x00" * 8)
    assert [f.name for f in nzb.files] == ["good.mkv"]


def test_millions_of_empty_gzip_members_are_refused_quickly() -> None:
    data = gzip.compress(nzb_with(GOOD_FILE)) + gzip.compress(b"") * 3_000_000
    started = time.monotonic()
    with pytest.raises(NzbError, match="more than 16 gzip parts"):
        parse_nzb(data)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(nzb_with(GOOD_FILE))[:-20], "cut short"),
        (b"\x1f\x8b" + b"\x00" * 40, "damaged"),
        (gzip.compress(b""), "empty"),
        (gzip.compress(nzb_with(GOOD_FILE)) + b"junk", "damaged"),
    ],
    ids=["truncated", "corrupt", "empty", "junk after the end"],
)
def test_broken_gzip(data: bytes, message: str) -> None:
    with pytest.raises(NzbError, match=message):
        parse_nzb(data)


def test_an_oversized_nzb_is_refused() -> None:
    with pytest.raises(NzbError, match="larger than 64 MiB"):
        parse_nzb(b"<nzb>" + b" " * MAX_NZB_BYTES + b"</nzb>")


NOT_AN_NZB = [
    (b"", "The NZB is empty"),
    (b" \r\n\t ", "The NZB is empty"),
    (b"\xef\xbb\xbf", "The NZB is empty"),
    (
        b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body><form>"
        b"<input name=user><br></form></body></html>",
        "web page",
    ),
    (b"<html><body><p>Service Unavailable</p></body></html>", "web page"),
    (bytes(range(256)) * 4, "not valid XML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not valid XML"),
    (b'{"error": "Incorrect user credentials"}', "not valid XML"),
    (b"Request limit reached", "not valid XML"),
    (nzb_with(GOOD_FILE)[:-30], "cut short"),
    (b"<nzb><file subject='x'><segments><segm", "cut short"),
    (b'<?xml version="1.0" encoding="x-klingon"?><nzb/>', "encoding Matinee cannot read"),
    (b'<?xml version="1.0" encoding="shift_jis"?><nzb/>', "encoding Matinee cannot read"),
    (b'<?xml version="1.0" encoding="rot13"?><nzb/>', "encoding Matinee cannot read"),
    (b'<rss version="2.0"><channel/></rss>', "the document is <rss>, not <nzb>"),
    (
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?> \n'
        b'<error code="100" description="Incorrect user credentials"/>',
        r"The indexer sent an error instead of an NZB: Incorrect user credentials \(code 100\)",
    ),
    (
        b'<error code="300" description="No such item&#10;&#x9b;[2J"/>',
        r"instead of an NZB: No such item  \[2J \(code 300\)",
    ),
    (b"<nzb></nzb>", "contains no files"),
    (b"<nzb><head><meta type='title'>x</meta></head></nzb>", "contains no files"),
]


@pytest.mark.parametrize(("data", "message"), NOT_AN_NZB)
def test_what_is_not_an_nzb_says_so(data: bytes, message: str) -> None:
    with pytest.raises(NzbError, match=message):
        parse_nzb(data)


def test_an_error_description_is_cut_to_a_readable_length() -> None:
    data = f'<error code="1" description="{"spam " * 10_000}"/>'.encode()
    with pytest.raises(NzbError) as caught:
        parse_nzb(data)
    assert len(str(caught.value)) < 300


def test_hostile_names_stay_inside_the_download_directory(tmp_path: Path) -> None:
    long_name = "a" * 400 + ".mkv"
    subjects = [
        "&quot;../../etc/passwd&quot; yEnc (1/1)",
        "&quot;/etc/shadow&quot; yEnc (1/1)",
        "&quot;C:\\Windows\\win.ini&quot; yEnc (1/1)",
        "&quot;..\\..\\..\\autoexec.bat&quot; yEnc (1/1)",
        "&quot;&#10;evil&#x85;&#x9b;name&#x7f;.mkv&quot; yEnc (1/1)",
        "&quot;....&quot; yEnc (1/1)",
        "&quot;..&quot; yEnc (1/1)",
        f"&quot;{long_name}&quot; yEnc (1/1)",
        "&quot;movie&#x202e;vkm.exe&quot; yEnc (1/1)",
    ]
    body = "".join(
        file_with(subject, f'<segment bytes="1" number="1">id{i}@x</segment>')
        for i, subject in enumerate(subjects)
    )
    names = [f.name for f in parse_nzb(nzb_with(body)).files]
    assert names == [
        "passwd",
        "shadow",
        "win.ini",
        "autoexec.bat",
        "evilname.mkv",
        "file-006",
        "file-007",
        "a" * (MAX_NAME_BYTES - 4) + ".mkv",
        "movievkm.exe",
    ]
    for name in names:
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_ids_and_groups_that_could_inject_nntp_commands_are_dropped() -> None:
    segments = (
        '<segment bytes="1" number="1">ok@x</segment>'
        '<segment bytes="1" number="2">a@x&#13;&#10;QUIT</segment>'
        '<segment bytes="1" number="3">a@x&#10;GROUP alt.evil</segment>'
        '<segment bytes="1" number="4">two words@x</segment>'
        '<segment bytes="1" number="5">tab\t@x</segment>'
        '<segment bytes="1" number="6">a@x&gt; &lt;b@y</segment>'
        '<segment bytes="1" number="7">&lt;&gt;</segment>'
        f'<segment bytes="1" number="8">{"x" * 251}</segment>'
        f'<segment bytes="1" number="9">{"x" * 250}</segment>'
    )
    body = (
        '<file poster="p" date="1" subject="&quot;f.mkv&quot;"><groups>'
        "<group>alt.binaries.ok</group><group>alt.binaries.x&#13;&#10;QUIT</group>"
        "<group>alt binaries</group></groups>"
        f"<segments>{segments}</segments></file>"
    )
    (file,) = parse_nzb(nzb_with(body)).files
    assert [(s.number, s.message_id) for s in file.segments] == [(1, "ok@x"), (9, "x" * 250)]
    assert file.groups == ("alt.binaries.ok",)


def test_absurd_numbers_and_sizes_drop_the_segment() -> None:
    segments = "".join(
        f'<segment bytes="{size}" number="{number}">{i}@x</segment>'
        for i, (number, size) in enumerate(
            [
                ("1", "100"),
                ("2", "99999999999999"),
                ("-1", "100"),
                ("1e9", "100"),
                ("99999999999", "100"),
                ("3", "-5"),
                ("4", "0x10"),
                ("5", "1.5"),
                ("٦", "100"),  # an Arabic-Indic six: a digit to Python's int(), not to us
                ("7", "１００"),
                ("", "100"),
                ("8", ""),
                (" 9 ", " 200 "),
                ("10", "100000001"),
                ("11", "100000000"),
            ]
        )
    )
    (file,) = parse_nzb(nzb_with(file_with(segments=segments))).files
    assert [(s.number, s.bytes) for s in file.segments] == [(1, 100), (9, 200), (11, 100000000)]


def test_an_nzb_of_only_absurd_segments_contains_no_files() -> None:
    bad = '<segment bytes="99999999999999" number="-1">a@x</segment>'
    with pytest.raises(NzbError, match="contains no files that can be downloaded"):
        parse_nzb(nzb_with(file_with(segments=bad) * 3))


def test_two_hundred_thousand_segments_parse_in_bounded_time() -> None:
    segments = "".join(
        f'<segment bytes="700000" number="{n}">part{n}@x</segment>' for n in range(200_000, 0, -1)
    )
    started = time.monotonic()
    (file,) = parse_nzb(nzb_with(file_with("&quot;huge.mkv&quot;", segments))).files
    assert time.monotonic() - started < 20
    assert len(file.segments) == 200_000
    assert file.segments[0].message_id == "part1@x"
    assert file.segments[-1].number == 200_000
    assert file.bytes == 200_000 * 700_000


def test_too_many_files_are_refused() -> None:
    one = file_with(segments='<segment bytes="1" number="1">a@x</segment>')
    with pytest.raises(NzbError, match=f"more than {MAX_FILES} files"):
        parse_nzb(nzb_with(one * (MAX_FILES + 1)))


def test_too_many_segments_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limits (500 000 per file, 1 000 000 in all) take a 60 MB document to reach;
    # the mechanism is the same at a smaller scale.
    monkeypatch.setattr(nzb_module, "MAX_SEGMENTS_PER_FILE", 1000)
    monkeypatch.setattr(nzb_module, "MAX_TOTAL_SEGMENTS", 1500)
    segments = "".join(f'<segment bytes="1" number="{n}">{n}@x</segment>' for n in range(1, 1001))
    assert len(parse_nzb(nzb_with(file_with(segments=segments))).files[0].segments) == 1000
    with pytest.raises(NzbError, match="more than 1000 segments"):
        parse_nzb(
            nzb_with(
                file_with(segments=segments + '<segment bytes="1" number="1001">z@x</segment>')
            )
        )
    with pytest.raises(NzbError, match="more than 1500 segments"):
        parse_nzb(nzb_with(file_with(segments=segments) * 2))


def test_thousands_of_files_with_one_name_get_distinct_names_quickly() -> None:
    one = file_with("&quot;same.mkv&quot;", '<segment bytes="1" number="1">a@x</segment>')
    started = time.monotonic()
    nzb = parse_nzb(nzb_with(one * 5000))
    assert time.monotonic() - started < 10
    names = [f.name for f in nzb.files]
    assert len(set(names)) == 5000
    assert names[:3] == ["same.mkv", "same (2).mkv", "same (3).mkv"]
    assert names[-1] == "same (5000).mkv"


@pytest.mark.parametrize(
    "data",
    [
        nzb_with("<a>" * 100_000 + "</a>" * 100_000),
        nzb_with(file_with(segments="<x>" * 100_000 + "</x>" * 100_000)),
        b"<nzb>" + b"<a>" * 100_000,
    ],
    ids=["inside nzb", "inside segments", "never closed"],
)
def test_deeply_nested_elements_are_refused(data: bytes) -> None:
    with pytest.raises(NzbError, match="nests elements more than 64 deep"):
        parse_nzb(data)


def test_a_deeply_nested_document_of_another_kind_is_not_an_nzb() -> None:
    with pytest.raises(NzbError, match="not <nzb>"):
        parse_nzb(b"<a>" * 1_000_000 + b"</a>" * 1_000_000)


def test_random_damage_to_an_nzb_gives_an_nzb_or_an_nzb_error() -> None:
    # A deterministic fuzz: whatever the damage, nothing but NzbError may escape.
    segments = "".join(f'<segment bytes="700" number="{n}">p{n}@x</segment>' for n in range(1, 9))
    original = nzb_with(GOOD_FILE + file_with("&quot;two.mkv&quot; (1/8)", segments))
    inserts = [b"<", b">", b"&", b'"', b"\x00", b"&#0;", b'<!ENTITY a "b">', b"]]>", b"\xff\xfe"]
    rng = random.Random(2024)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(2000):
        damaged = bytearray(original)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(damaged))
            operation = rng.randrange(3)
            if operation == 0:
                damaged[at] = rng.randrange(256)
            elif operation == 1:
                del damaged[at : at + rng.randrange(1, 40)]
            else:
                damaged[at:at] = rng.choice(inserts)
        try:
            nzb = parse_nzb(bytes(damaged))
        except NzbError as error:
            assert str(error)
            outcomes["refused"] += 1
        else:
            assert all(f.segments and f.name for f in nzb.files)
            outcomes["parsed"] += 1
    assert outcomes["parsed"] > 0 and outcomes["refused"] > 0
