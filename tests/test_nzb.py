"""Parsing NZBs as indexers serve them: literal documents in every dialect met in the wild, and
every real NZB in the shared fixtures with what a user expects from each."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nntp.nzb import Nzb, NzbError, parse_nzb

PLAIN = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.1//EN" "http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd">
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
 <head>
  <meta type="title">Night of the Living Dead</meta>
  <meta type="category">Movies &gt; HD</meta>
 </head>
 <file poster="Uploader &lt;up@example.invalid&gt;" date="1700000000"
       subject="[1/2] - &quot;Night.of.the.Living.Dead.1968.1080p.mkv&quot; yEnc (1/3) 1900000">
  <groups>
   <group>alt.binaries.movies</group>
   <group>alt.binaries.hdtv</group>
  </groups>
  <segments>
   <segment bytes="750000" number="1">night-1@news.example.invalid</segment>
   <segment bytes="750000" number="2">night-2@news.example.invalid</segment>
   <segment bytes="400000" number="3">night-3@news.example.invalid</segment>
  </segments>
 </file>
 <file poster="Uploader &lt;up@example.invalid&gt;" date="1700000001"
       subject="[2/2] - &quot;Night.of.the.Living.Dead.1968.1080p.par2&quot; yEnc (1/1) 20000">
  <groups><group>alt.binaries.movies</group></groups>
  <segments>
   <segment bytes="21000" number="1">night-par@news.example.invalid</segment>
  </segments>
 </file>
</nzb>
"""

PLAIN_VIEW: dict[str, Any] = {
    "files": [
        (
            "Night.of.the.Living.Dead.1968.1080p.mkv",
            ("alt.binaries.movies", "alt.binaries.hdtv"),
            [
                (1, 750000, "night-1@news.example.invalid"),
                (2, 750000, "night-2@news.example.invalid"),
                (3, 400000, "night-3@news.example.invalid"),
            ],
        ),
        (
            "Night.of.the.Living.Dead.1968.1080p.par2",
            ("alt.binaries.movies",),
            [(1, 21000, "night-par@news.example.invalid")],
        ),
    ],
    "meta": {"title": ("Night of the Living Dead",), "category": ("Movies > HD",)},
    "title": "Night of the Living Dead",
    "password": None,
}

NO_NAMESPACE_NO_PROLOG = """<nzb>
<head><meta type="title">Night of the Living Dead</meta>
<meta type="category">Movies &gt; HD</meta></head>
<file poster="Uploader &lt;up@example.invalid&gt;" date="1700000000"
 subject="[1/2] - &quot;Night.of.the.Living.Dead.1968.1080p.mkv&quot; yEnc (1/3) 1900000">
<groups><group>alt.binaries.movies</group><group>alt.binaries.hdtv</group></groups>
<segments><segment bytes="750000" number="1">night-1@news.example.invalid</segment
><segment bytes="750000" number="2">night-2@news.example.invalid</segment
><segment bytes="400000" number="3">night-3@news.example.invalid</segment></segments>
</file>
<file poster="Uploader &lt;up@example.invalid&gt;" date="1700000001"
 subject="[2/2] - &quot;Night.of.the.Living.Dead.1968.1080p.par2&quot; yEnc (1/1) 20000">
<groups><group>alt.binaries.movies</group></groups>
<segments><segment bytes="21000" number="1">night-par@news.example.invalid</segment></segments>
</file>
</nzb>"""

# NZB 1.0 DOCTYPE over three lines with single quotes, as some writers emit it.
SPLIT_DOCTYPE = PLAIN.replace(
    '<!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.1//EN" "http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd">',
    "<!DOCTYPE nzb\n  PUBLIC '-//newzBin//DTD NZB 1.0//EN'\n"
    "  'http://www.newzbin.com/DTD/nzb/nzb-1.0.dtd'>",
)

LATIN1 = """<?xml version="1.0" encoding="iso-8859-1" ?>
<!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.0//EN" "http://www.newzbin.com/DTD/nzb/nzb-1.0.dtd">
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
<head><meta type="title">Le Fabuleux Destin d'Amélie Poulain</meta></head>
<file poster="poste@example.invalid" date="1600000000"
      subject="Amélie (2001) - &quot;Amélie.2001.1080p.mkv&quot; yEnc (1/2)">
<groups><group>alt.binaries.movies</group></groups>
<segments>
<segment bytes="700000" number="1">amelie-1@example.invalid</segment>
<segment bytes="300000" number="2">amelie-2@example.invalid</segment>
</segments>
</file>
</nzb>
"""

LATIN1_VIEW: dict[str, Any] = {
    "files": [
        (
            "Amélie.2001.1080p.mkv",
            ("alt.binaries.movies",),
            [(1, 700000, "amelie-1@example.invalid"), (2, 300000, "amelie-2@example.invalid")],
        )
    ],
    "meta": {"title": ("Le Fabuleux Destin d'Amélie Poulain",)},
    "title": "Le Fabuleux Destin d'Amélie Poulain",
    "password": None,
}

OUT_OF_ORDER = """<?xml version="1.0" encoding="UTF-8"?>
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
<file poster="p" date="1" subject="&quot;order.mkv&quot; yEnc (1/4)">
<groups><group>alt.binaries.test</group><group>alt.binaries.test</group><group> </group></groups>
<segments>
<segment bytes="30" number="3">third@x</segment>
<segment bytes="10" number="1">first@x</segment>
<segment bytes="99" number="1">first-again@x</segment>
<segment bytes="40" number="4">
    &lt;fourth@x&gt;
</segment>
<segment bytes="20" number="2"><![CDATA[ <second@x> ]]></segment>
<segment bytes="98" number="3">third-again@x</segment>
</segments>
</file>
</nzb>
"""

OUT_OF_ORDER_VIEW: dict[str, Any] = {
    "files": [
        (
            "order.mkv",
            ("alt.binaries.test",),
            [(1, 10, "first@x"), (2, 20, "second@x"), (3, 30, "third@x"), (4, 40, "fourth@x")],
        )
    ],
    "meta": {},
    "title": None,
    "password": None,
}

META = """<?xml version="1.0" encoding="UTF-8"?>
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
<head>
  <meta type="title">  Dawn of the Dead  </meta>
  <meta type="Password">hunter2</meta>
  <meta type="password">second-password</meta>
  <meta type="category">Movies</meta>
  <meta type="tag">HD</meta>
  <meta type="tag">Remux</meta>
  <meta type="tag"></meta>
  <meta>no type</meta>
</head>
<file poster="p" date="1" subject="dawn.of.the.dead.mkv (1/1)">
<groups><group>alt.binaries.test</group></groups>
<segments><segment bytes="5" number="1">dawn@x</segment></segments>
</file>
</nzb>
"""

META_VIEW: dict[str, Any] = {
    "files": [("dawn.of.the.dead.mkv", ("alt.binaries.test",), [(1, 5, "dawn@x")])],
    "meta": {
        "title": ("Dawn of the Dead",),
        "password": ("hunter2", "second-password"),
        "category": ("Movies",),
        "tag": ("HD", "Remux"),
    },
    "title": "Dawn of the Dead",
    "password": "hunter2",
}

NO_META = """<nzb>
<file poster="p" date="1" subject="&quot;locked.part01.rar&quot; yEnc (1/1)">
<groups><group>alt.binaries.test</group></groups>
<segments><segment bytes="5" number="1">locked@x</segment></segments>
</file>
</nzb>"""

NO_META_VIEW: dict[str, Any] = {
    "files": [("locked.part01.rar", ("alt.binaries.test",), [(1, 5, "locked@x")])],
    "meta": {},
    "title": None,
}


def view(nzb: Nzb) -> dict[str, Any]:
    """What a user sees of a parsed NZB, as plain data."""
    return {
        "files": [
            (
                f.name,
                f.groups,
                [(s.number, s.bytes, s.message_id) for s in f.segments],
            )
            for f in nzb.files
        ],
        "meta": dict(nzb.meta),
        "title": nzb.title,
        "password": nzb.password,
    }


CASES = [
    ("plain", PLAIN.encode(), None, PLAIN_VIEW),
    ("gzip", gzip.compress(PLAIN.encode()), None, PLAIN_VIEW),
    ("utf-8 BOM", b"\xef\xbb\xbf" + PLAIN.encode(), None, PLAIN_VIEW),
    ("blank lines before the declaration", b"\r\n\n  " + PLAIN.encode(), None, PLAIN_VIEW),
    (
        "utf-16",
        PLAIN.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
        None,
        PLAIN_VIEW,
    ),
    ("no namespace, no declaration", NO_NAMESPACE_NO_PROLOG.encode(), None, PLAIN_VIEW),
    ("DOCTYPE 1.0 split over lines", SPLIT_DOCTYPE.encode(), None, PLAIN_VIEW),
    ("iso-8859-1", LATIN1.encode("iso-8859-1"), None, LATIN1_VIEW),
    ("gzip iso-8859-1", gzip.compress(LATIN1.encode("iso-8859-1")), None, LATIN1_VIEW),
    ("out of order and duplicates", OUT_OF_ORDER.encode(), None, OUT_OF_ORDER_VIEW),
    ("meta", META.encode(), None, META_VIEW),
    (
        "meta password wins over the file name",
        META.encode(),
        "Dawn {{not-this-one}}.nzb",
        META_VIEW,
    ),
    (
        "{{password}} in the file name",
        NO_META.encode(),
        "Locked.Movie.2020{{open sesame}}.nzb",
        NO_META_VIEW | {"password": "open sesame"},
    ),
    (
        "{{password}} in a path",
        NO_META.encode(),
        "/downloads/incoming/Locked{{pw}}.nzb",
        NO_META_VIEW | {"password": "pw"},
    ),
    ("no {{password}}", NO_META.encode(), "Locked {{}}.nzb", NO_META_VIEW | {"password": None}),
]


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_parse(data: bytes, filename: str | None, expected: dict[str, Any]) -> None:
    assert view(parse_nzb(data, filename=filename)) == expected


def test_sizes_add_up() -> None:
    nzb = parse_nzb(PLAIN.encode())
    assert [f.bytes for f in nzb.files] == [1_900_000, 21_000]
    assert nzb.bytes == 1_921_000


def test_file_attributes_are_kept() -> None:
    first = parse_nzb(PLAIN.encode()).files[0]
    assert first.subject == ('[1/2] - "Night.of.the.Living.Dead.1968.1080p.mkv" yEnc (1/3) 1900000')
    assert first.poster == "Uploader <up@example.invalid>"
    assert first.date == 1_700_000_000


def _one_segment_file(subject: str, message_id: str, *, date: str = "1") -> str:
    return (
        f'<file poster="p" date="{date}" subject="{subject}"><groups><group>g</group></groups>'
        f'<segments><segment bytes="1" number="1">{message_id}</segment></segments></file>'
    )


def test_names_are_unique_within_an_nzb() -> None:
    files = [
        _one_segment_file("&quot;same.mkv&quot; yEnc (1/1)", "a@x"),
        _one_segment_file("&quot;same.mkv&quot; yEnc (1/1)", "b@x"),
        _one_segment_file("&quot;same (2).mkv&quot; yEnc (1/1)", "c@x"),
        _one_segment_file("&quot;SAME.MKV&quot; yEnc (1/1)", "d@x"),
        _one_segment_file("no name here", "e@x"),
        _one_segment_file("&quot;file-005&quot;", "f@x"),
    ]
    nzb = parse_nzb(("<nzb>" + "".join(files) + "</nzb>").encode())
    assert [f.name for f in nzb.files] == [
        "same.mkv",
        "same (2).mkv",
        "same (2) (2).mkv",
        "SAME (3).MKV",
        "file-005",
        "file-005 (2)",
    ]


def test_fallback_names_count_the_files_that_are_kept() -> None:
    empty = '<file poster="p" date="1" subject="x"><segments/></file>'
    files = [empty, _one_segment_file("obfuscated", "a@x"), _one_segment_file("again", "b@x")]
    nzb = parse_nzb(("<nzb>" + "".join(files) + "</nzb>").encode())
    assert [f.name for f in nzb.files] == ["file-001", "file-002"]


def test_an_unreadable_date_is_zero() -> None:
    files = [
        _one_segment_file("a.mkv (1/1)", "a@x", date="yesterday"),
        _one_segment_file("b.mkv (1/1)", "b@x", date=""),
        _one_segment_file("c.mkv (1/1)", "c@x", date=" 1071674882 "),
    ]
    nzb = parse_nzb(("<nzb>" + "".join(files) + "</nzb>").encode())
    assert [f.date for f in nzb.files] == [0, 0, 1071674882]


def test_unnumbered_segments_are_dropped_unless_none_is_numbered() -> None:
    doc = """<nzb>
    <file poster="p" date="1" subject="&quot;mixed.mkv&quot;"><segments>
      <segment bytes="1" number="2">two@x</segment>
      <segment bytes="1">lost@x</segment>
      <segment bytes="1" number="1">one@x</segment>
    </segments></file>
    <file poster="p" date="1" subject="&quot;unnumbered.mkv&quot;"><segments>
      <segment bytes="1">u1@x</segment>
      <segment bytes="1"></segment>
      <segment bytes="1">u3@x</segment>
    </segments></file>
    </nzb>"""
    nzb = parse_nzb(doc.encode())
    mixed, unnumbered = nzb.files
    assert [(s.number, s.message_id) for s in mixed.segments] == [(1, "one@x"), (2, "two@x")]
    # Numbered by position in the document; the empty id keeps its place as a gap.
    assert [(s.number, s.message_id) for s in unnumbered.segments] == [(1, "u1@x"), (3, "u3@x")]


def test_elements_outside_the_nzb_structure_are_ignored() -> None:
    doc = """<nzb xmlns:x="urn:example">
    <x:extension><file poster="p" date="1" subject="&quot;hidden.mkv&quot;"><segments>
      <segment bytes="1" number="1">hidden@x</segment></segments></file></x:extension>
    <file poster="p" date="1" subject="&quot;real.mkv&quot;"><x:note>ignored</x:note>
      <groups><group>alt.binaries.test<x:b>junk</x:b></group></groups>
      <segments><segment bytes="1" number="1">real@x<x:c>junk</x:c></segment>
      <extra><segment bytes="1" number="2">nested@x</segment></extra></segments>
    </file></nzb>"""
    nzb = parse_nzb(doc.encode())
    assert view(nzb)["files"] == [("real.mkv", ("alt.binaries.test",), [(1, 1, "real@x")])]


# What each real NZB in ../shared/fixtures/nzb must give (see SOURCES.md there).
Check = Callable[[Nzb], None]


def _names(nzb: Nzb) -> list[str]:
    return [f.name for f in nzb.files]


def _segment_count(nzb: Nzb) -> int:
    return sum(len(f.segments) for f in nzb.files)


def _ubuntu_obfuscated(nzb: Nzb) -> None:
    assert len(nzb.files) == 55
    assert _segment_count(nzb) == 1013
    assert nzb.meta["category"] == ("Apps > ISO",)
    assert nzb.title == "Ubuntu-16.04.1-Server-i386"
    assert nzb.files[0].name == "b2d3075d94af88c6742b1fdfc34b225e.10"
    assert nzb.files[0].poster == (
        "bd432ea78c21c132e87d167117355297 <grCGpgPrFZENhq8PQh5@xvfeR0aaq.Db>"
    )
    assert "b2d3075d94af88c6742b1fdfc34b225e.vol127+74.par2" in _names(nzb)
    for file in nzb.files:
        numbers = [s.number for s in file.segments]
        assert numbers == list(range(1, len(numbers) + 1)), file.name


def _ubuntu_no_first_segment(nzb: Nzb) -> None:
    # The first <file> has no segment at all: it is dropped, the other 54 stay.
    assert len(nzb.files) == 54
    assert nzb.files[0].name == "b2d3075d94af88c6742b1fdfc34b225e.11"
    assert "b2d3075d94af88c6742b1fdfc34b225e.10" not in _names(nzb)


def _dotless(nzb: Nzb) -> None:
    assert _names(nzb) == ["20155f68b0df03cc9bca2c58d426163ff", "2261fa83d164f651d19a7ff923f633e00"]
    assert [f.segments[0].message_id for f in nzb.files] == ["1@ngroups.net"] * 2
    assert nzb.meta["category"] == ("Movies",)


UBUNTU_12 = ["ubuntu-12.04-desktop-i386.nfo", "ubuntu-12.04-desktop-i386.par2"]
UBUNTU_12 += ["ubuntu-12.04-desktop-i386.r00"]


def _ubuntu_12(password: str | None, category: str | None) -> Check:
    def check(nzb: Nzb) -> None:
        assert _names(nzb) == UBUNTU_12
        assert nzb.password == password
        assert nzb.meta.get("category") == ((category,) if category else None)
        assert nzb.files[2].segments[0].message_id == (
            "4f9a1f3a$0$23145$c3e8da3$40cb80c2@news.astraweb.com"
        )
        assert nzb.files[0].groups == ("alt.binaries.boneless",)

    return check


def _radarr_valid(nzb: Nzb) -> None:
    base = "Series.Title.s04e06.720p.hdtv.x264-killers"
    assert _names(nzb) == [
        f"{base}.nfo",
        f"{base}.par2",
        f"{base}.r00",
        f"sample-{base}.vol31+04.par2",
    ]
    assert [len(f.segments) for f in nzb.files] == [1, 1, 66, 3]
    assert _segment_count(nzb) == 71


def _bad_subject(nzb: Nzb) -> None:
    assert _names(nzb) == ["file-001"]
    assert nzb.files[0].groups == ("alt.binaries.newzbin", "alt.binaries.mojo")
    assert [s.bytes for s in nzb.files[0].segments] == [102394, 4501]


BUNNY = "Big Buck Bunny - S01E01.mkv"


def _big_buck_bunny(nzb: Nzb) -> None:
    assert _names(nzb) == [
        f"{BUNNY}.par2",
        f"{BUNNY}.vol00+01.par2",
        f"{BUNNY}.vol01+02.par2",
        f"{BUNNY}.vol03+04.par2",
        BUNNY,
    ]
    mkv = nzb.files[-1]
    assert [s.number for s in mkv.segments] == list(range(1, 25))
    assert mkv.segments[0].message_id == "9cacde4c986547369becbf97003fb2c5-9483514693959@example"
    assert mkv.segments[-1].bytes == 510541
    assert [len(f.segments) for f in nzb.files] == [1, 2, 3, 5, 24]


def _bunny_with_bad_segments(nzb: Nzb) -> None:
    # 11 has no bytes, 12 has no number, 13 has an empty message-id: exactly those go.
    mkv = nzb.files[-1]
    assert mkv.name == BUNNY
    assert [s.number for s in mkv.segments] == [*range(1, 11), *range(14, 25)]
    assert [len(f.segments) for f in nzb.files] == [1, 2, 3, 5, 21]
    ids = {s.message_id for s in mkv.segments}
    assert "fb2bd74e1257487a9240ef0cf81765cc-7147741101314@example" not in ids
    assert "d39ca8be78c34e3fa6f3211f1b397b3a-4725950858191@example" not in ids


def _non_standard_meta(nzb: Nzb) -> None:
    assert dict(nzb.meta) == {
        "name": ("Your File!",),
        "badmeta1": ("secret",),
        "badmeta2": ("HD",),
        "badmeta3": ("TV",),
    }
    assert nzb.password is None
    assert _names(nzb) == ["abc-mr2a.r01"]


def _spec_example(nzb: Nzb) -> None:
    assert nzb.title == "Your File!"
    assert nzb.password == "secret"
    assert nzb.meta["tag"] == ("HD",)
    assert nzb.meta["category"] == ("TV",)
    assert _names(nzb) == ["abc-mr2a.r01"]
    assert nzb.files[0].poster == "Joe Bloggs <bloggs@nowhere.example>"
    assert nzb.bytes == 102394 + 4501


def _reftest(nzb: Nzb) -> None:
    (rar,) = nzb.files
    assert rar.name == "8288192_RAR5_FILE.rar"
    assert [s.number for s in rar.segments] == list(range(1, 12))
    assert rar.segments[-1].message_id == "2zZUA.55289$4Z1.25108@fx31.am4"
    assert rar.segments[7].message_id == "0zZUA.55286$4Z1.37644@fx31.am4"


def _some_nzb_file(nzb: Nzb) -> None:
    names = _names(nzb)
    assert len(names) == 10
    assert names[0] == "inthemix.par2"
    assert names[5] == "inthemix.rar"
    assert sum(name.endswith(".par2") for name in names) == 9


def _unicode_rar(nzb: Nzb) -> None:
    names = _names(nzb)
    # The first <file> (an empty <segments/>) is dropped; the C1 characters that parts
    # 02-11 carry in their subjects are stripped from their names.
    assert sorted(n for n in names if n.endswith(".rar")) == [
        f"你好世界.part{i:02d}.rar" for i in range(1, 12)
    ]
    assert sum(n.endswith(".par2") for n in names) == 8
    assert len(names) == 19
    part01 = nzb.files[names.index("你好世界.part01.rar")]
    assert [s.bytes for s in part01.segments] == [500000, 500000, 48576]


FIXTURE_EXPECTATIONS: dict[str, Check | str] = {
    "newsreap_ubuntu-16.04.1-server-i386_obfuscated.nzb": _ubuntu_obfuscated,
    "newsreap_ubuntu_nofile.nzb": "contains no files",
    "newsreap_ubuntu_nofirstsegment.nzb": _ubuntu_no_first_segment,
    # No segment has a number: each file's segments are numbered in document order
    # (checked below to give exactly the numbered original).
    "newsreap_ubuntu_noindex.nzb": _ubuntu_obfuscated,
    "nzbget_dotless_obfuscated.nzb": _dotless,
    "nzbget_passwdMeta.nzb": _ubuntu_12("hqn8zQSuYBwWeoscZaOplJ", None),
    "nzbget_passwd{{thisisthepassword}}.nzb": _ubuntu_12("thisisthepassword", None),
    "nzbget_plain.nzb": _ubuntu_12(None, "TV > 4K"),
    "radarr_NewznabError.nzb": "Incorrect parameter",
    "radarr_NoFiles.nzb": "contains no files",
    "radarr_ValidNzb.nzb": _radarr_valid,
    "ravencentric_bad_subject.nzb": _bad_subject,
    "ravencentric_big_buck_bunny.nzb": _big_buck_bunny,
    "ravencentric_big_buck_bunny.nzb.gz": _big_buck_bunny,
    "ravencentric_non_standard_meta.nzb": _non_standard_meta,
    "ravencentric_spec_example.nzb": _spec_example,
    "ravencentric_valid_nzb_with_bad_segments.nzb": _bunny_with_bad_segments,
    "sabnzbd_reftestnzb.nzb": _reftest,
    "sabnzbd_some_nzb_file.nzb": _some_nzb_file,
    "sabnzbd_unicode_rar_localfile_segments.nzb": _unicode_rar,
}


def test_every_real_nzb_in_the_shared_fixtures(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "nzb"
    paths = sorted(p for p in folder.iterdir() if p.name.endswith((".nzb", ".nzb.gz")))
    # A new fixture without an expectation here must fail, not pass unchecked.
    assert {p.name for p in paths} == set(FIXTURE_EXPECTATIONS)
    parsed: dict[str, Nzb] = {}
    for path in paths:
        expectation = FIXTURE_EXPECTATIONS[path.name]
        if isinstance(expectation, str):
            with pytest.raises(NzbError, match=expectation):
                parse_nzb(path.read_bytes(), filename=path.name)
            continue
        nzb = parse_nzb(path.read_bytes(), filename=path.name)
        expectation(nzb)
        parsed[path.name] = nzb
        names = [f.name.casefold() for f in nzb.files]
        assert len(names) == len(set(names)), path.name
    assert parsed["ravencentric_big_buck_bunny.nzb.gz"] == parsed["ravencentric_big_buck_bunny.nzb"]
    assert (
        parsed["newsreap_ubuntu_noindex.nzb"].files
        == parsed["newsreap_ubuntu-16.04.1-server-i386_obfuscated.nzb"].files
    )
