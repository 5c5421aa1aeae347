"""newznab: search results, caps and error documents, from literal XML and real captures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.discovery.newznab import (
    ERROR_CODES,
    NewznabError,
    NewznabParseError,
    parse_caps,
    parse_error,
    parse_search,
)

NS = 'xmlns:newznab="http://www.newznab.com/DTD/2010/feeds/attributes/"'

SEARCH = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" {NS}>
  <channel>
    <atom:link href="https://indexer.example/api?t=movie" rel="self" type="application/rss+xml"/>
    <title>indexer.example</title>
    <newznab:response offset="100" total="250"/>
    <newznab:apilimits ApiCurrent="7" apimax="100" GRABCURRENT="2" grabMax="25"/>
    <item>
      <title>Arrival.2016.1080p.BluRay.x264-SPARKS</title>
      <guid isPermaLink="true">https://indexer.example/details/aaa111</guid>
      <link>https://indexer.example/api?t=get&amp;id=aaa111&amp;apikey=KEY</link>
      <pubDate>Sat, 11 Feb 2017 19:15:49 -0600</pubDate>
      <enclosure url="https://indexer.example/enclosure/aaa111" length="1"
                 type="application/x-nzb"/>
      <newznab:attr name="category" value="2000"/>
      <newznab:attr name="category" value="2040"/>
      <newznab:attr name="size" value="8765432109"/>
      <newznab:attr name="grabs" value="1234"/>
      <newznab:attr name="usenetdate" value="Sat, 11 Feb 2017 18:00:00 +0000"/>
      <newznab:attr name="password" value="0"/>
      <newznab:attr name="imdb" value="2543164"/>
      <newznab:attr name="coverurl" value="https://indexer.example/covers/2543164.jpg"/>
    </item>
    <item>
      <title>Arrival.2016.720p.WEB-DL.DD5.1.H264-FGT</title>
      <guid isPermaLink="false">bbb222</guid>
      <enclosure url="https://indexer.example/getnzb/bbb222.nzb" length="3456789012"
                 type="application/x-nzb"/>
      <pubDate>Tue, 07 Feb 2017 10:00:00 -0000</pubDate>
      <newznab:attr name="Category" value="2040"/>
      <newznab:attr name="password" value="2"/>
      <newznab:attr name="imdbid" value="tt2543164"/>
    </item>
  </channel>
</rss>
""".encode()


def test_search_reads_items_and_their_attributes() -> None:
    result = parse_search(SEARCH, indexer="example")

    assert (result.offset, result.total, result.channel_title) == (100, 250, "indexer.example")
    assert result.skipped == 0
    first, second = result.items

    assert first.title == "Arrival.2016.1080p.BluRay.x264-SPARKS"
    assert first.guid == "https://indexer.example/details/aaa111"
    # <link>, not atom:link and not the enclosure, is the NZB URL.
    assert first.link == "https://indexer.example/api?t=get&id=aaa111&apikey=KEY"
    # The size attribute wins over a bogus enclosure length.
    assert first.size == 8765432109
    assert first.pub_date == datetime(2017, 2, 11, 19, 15, 49, tzinfo=timezone(timedelta(hours=-6)))
    assert first.categories == (2000, 2040)
    assert first.grabs == 1234
    assert first.usenetdate == datetime(2017, 2, 11, 18, 0, tzinfo=UTC)
    assert first.password == 0
    assert first.imdb_id == "tt2543164"
    assert first.indexer == "example"
    assert first.attr("coverurl") == "https://indexer.example/covers/2543164.jpg"
    assert first.attr("COVERURL") == first.attr("coverurl")

    # Without <link> or a size attribute the enclosure supplies both.
    assert second.link == "https://indexer.example/getnzb/bbb222.nzb"
    assert second.size == 3456789012
    assert second.guid == "bbb222"
    assert second.categories == (2040,)
    assert second.grabs is None
    assert second.usenetdate is None
    assert second.password == 2
    assert second.imdb_id == "tt2543164"
    # "-0000" is UTC with no origin; it must still come back timezone-aware.
    assert second.pub_date == datetime(2017, 2, 7, 10, 0, tzinfo=UTC)


def test_apilimits_attribute_names_in_any_case() -> None:
    limits = parse_search(SEARCH, indexer="example").apilimits
    assert limits is not None
    assert (limits.api_current, limits.api_max, limits.grab_current, limits.grab_max) == (
        7,
        100,
        2,
        25,
    )


def test_empty_result() -> None:
    xml = f"""<?xml version="1.0" encoding="utf-8" ?>
    <rss version="2.0" {NS}><channel><title>Empty</title>
    <newznab:response offset="0" total="0"/></channel></rss>""".encode()
    result = parse_search(xml, indexer="e")
    assert result.items == ()
    assert (result.offset, result.total) == (0, 0)
    assert result.apilimits is None


def test_items_without_title_or_link_are_skipped_and_counted() -> None:
    xml = f"""<rss {NS}><channel>
      <item><guid>no-title</guid><link>https://x.example/1</link></item>
      <item><title>No.Link.2020.1080p.WEB-DL-GRP</title><guid>no-link</guid></item>
      <item><title>Kept.2020.1080p.WEB-DL-GRP</title><link>https://x.example/3</link></item>
    </channel></rss>""".encode()
    result = parse_search(xml, indexer="x")
    assert [i.title for i in result.items] == ["Kept.2020.1080p.WEB-DL-GRP"]
    assert result.skipped == 2
    # No guid at all: the link identifies the item.
    assert result.items[0].guid == "https://x.example/3"


def test_unreadable_values_become_none_instead_of_failing() -> None:
    xml = f"""<rss {NS}><channel><item>
      <title>Odd.2020.1080p.WEB-DL-GRP</title><link>https://x.example/1</link>
      <pubDate>yesterday-ish</pubDate>
      <newznab:attr name="size" value="12 GB"/>
      <newznab:attr name="grabs" value=""/>
      <newznab:attr name="category" value="movies"/>
      <newznab:attr name="imdb" value="0000000"/>
    </item></channel></rss>""".encode()
    (item,) = parse_search(xml, indexer="x").items
    assert item.pub_date is None
    assert item.size is None
    assert item.grabs is None
    assert item.categories == ()
    assert item.imdb_id is None


def test_nzedb_attribute_namespace() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:nZEDb="https://nzedb.example/rss-info/">
 <channel>
  <nZEDb:response offset="0" total="1"/>
  <nZEDb:apilimits apiCurrent="3" apiMax="1000" grabCurrent="1" grabMax="100"/>
  <item>
   <title>Heat.1995.1080p.BluRay.x264-AMIABLE</title>
   <guid isPermaLink="true">https://nzedb.example/details/cafe</guid>
   <link>https://nzedb.example/getnzb/cafe.nzb&amp;i=1&amp;r=KEY</link>
   <pubDate>Mon, 04 Dec 2023 05:48:03 +0000</pubDate>
   <nZEDb:attr name="category" value="2040"/>
   <nZEDb:attr name="size" value="9876543210"/>
   <nZEDb:attr name="imdb" value="0113277"/>
   <nZEDb:attr name="grabs" value="4"/>
   <nZEDb:attr name="password" value="1"/>
  </item>
 </channel>
</rss>"""
    result = parse_search(xml, indexer="nzedb")
    (item,) = result.items
    assert item.size == 9876543210
    assert item.categories == (2040,)
    assert item.imdb_id == "tt0113277"
    assert item.grabs == 4
    assert item.password == 1
    assert result.total == 1
    assert result.apilimits is not None
    assert result.apilimits.grab_max == 100


def test_attributes_without_a_namespace_prefix_are_read_too() -> None:
    xml = b"""<rss><channel><item><title>T.2020.720p.WEB-DL-G</title>
      <link>https://x.example/t</link><attr name="size" value="42"/></item></channel></rss>"""
    (item,) = parse_search(xml, indexer="x").items
    assert item.size == 42


CAPS = b"""<?xml version="1.0" encoding="UTF-8"?>
<caps>
  <!-- a comment the parser must step over -->
  <server appversion="1.4" version="0.1" title="Example Indexer" url="https://indexer.example/"/>
  <limits max="200" default="75"/>
  <retention days="4200"/>
  <searching>
    <search available="yes" supportedParams="q,cat,limit"/>
    <tv-search available="no" supportedParams="q,season,ep"/>
    <movie-search available="yes" supportedParams="q, IMDBID ,cat"/>
    <audio-search available="yes"/>
  </searching>
  <categories>
    <category id="2000" name="Movies">
      <subcat id="2040" name="HD"/>
      <subcat id="2045" name="UHD"/>
    </category>
    <category id="5000" name="TV"/>
    <category id="nope" name="Broken"/>
  </categories>
</caps>"""


def test_caps() -> None:
    caps = parse_caps(CAPS)
    assert (caps.server_title, caps.server_version, caps.app_version) == (
        "Example Indexer",
        "0.1",
        "1.4",
    )
    assert (caps.limit_max, caps.limit_default, caps.retention_days) == (200, 75, 4200)
    assert [s.name for s in caps.searching] == [
        "search",
        "tv-search",
        "movie-search",
        "audio-search",
    ]
    movie = caps.search("movie-search")
    assert movie is not None
    assert movie.available
    assert movie.supported_params == ("q", "imdbid", "cat")
    assert caps.movie_search_by_imdb is True
    tv = caps.search("TV-Search")
    assert tv is not None
    assert not tv.available
    audio = caps.search("audio-search")
    assert audio is not None
    assert audio.supported_params is None
    assert audio.supports("artist") is None
    assert caps.search("book-search") is None

    assert [(c.id, c.name) for c in caps.categories] == [(2000, "Movies"), (5000, "TV")]
    assert caps.category_ids(2000) == (2000, 2040, 2045)
    assert caps.category_ids(7000) == ()
    found = caps.category(2045)
    assert found is not None
    assert found.name == "UHD"


@pytest.mark.parametrize(
    ("movie_search", "expected"),
    [
        ('<movie-search available="yes" supportedParams="q,imdbid"/>', True),
        ('<movie-search available="yes" supportedParams="q"/>', False),
        ('<movie-search available="no" supportedParams="q,imdbid"/>', False),
        ('<movie-search available="yes"/>', None),
        ("", False),
    ],
)
def test_movie_search_by_imdb(movie_search: str, expected: bool | None) -> None:
    caps = parse_caps(f"<caps><searching>{movie_search}</searching></caps>".encode())
    assert caps.movie_search_by_imdb is expected


def test_caps_with_empty_app_version_and_no_retention() -> None:
    caps = parse_caps(b'<caps><server appversion="" version="0.1"/><limits max="60"/></caps>')
    assert caps.app_version is None
    assert caps.server_title is None
    assert (caps.limit_max, caps.limit_default, caps.retention_days) == (60, None, None)
    assert caps.categories == ()


@pytest.mark.parametrize(
    ("code", "kind", "rate_limited", "bad_credentials"),
    [
        (100, "credentials", False, True),
        (101, "credentials", False, True),
        (102, "credentials", False, True),
        (103, "registration", False, False),
        (107, "registration", False, False),
        (200, "request", False, False),
        (201, "request", False, False),
        (202, "request", False, False),
        (203, "request", False, False),
        (300, "not_found", False, False),
        (500, "limit", True, False),
        (501, "limit", True, False),
        (900, "server", False, False),
        (910, "server", False, False),
        (429, "unknown", False, False),
    ],
)
def test_error_classes(code: int, kind: str, rate_limited: bool, bad_credentials: bool) -> None:
    description = f"Indexer says no ({code})"
    declaration = '<?xml version="1.0" encoding="UTF-8"?>'
    xml = f'{declaration}\n<error code="{code}" description="{description}" />'
    with pytest.raises(NewznabError) as caught:
        parse_search(xml.encode(), indexer="geek")
    error = caught.value
    assert error.code == code
    assert error.description == description
    assert error.kind == kind
    assert error.rate_limited is rate_limited
    assert error.bad_credentials is bad_credentials
    # The indexer's own words and its name reach the message a person reads.
    assert description in str(error)
    assert "geek" in str(error)


def test_error_without_description_uses_the_specification_text() -> None:
    with pytest.raises(NewznabError) as caught:
        parse_caps(b'<error code="500"/>')
    assert caught.value.description == ERROR_CODES[500] == "Request limit reached"


def test_error_with_bom_declaration_and_trailing_space() -> None:
    xml = (
        b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8" ?> \r\n'
        b'<error code="100" description="Incorrect user credentials"/>'
    )
    with pytest.raises(NewznabError, match="Incorrect user credentials") as caught:
        parse_search(xml, indexer="geek")
    assert caught.value.code == 100


def test_error_inside_the_channel() -> None:
    xml = b'<rss><channel><error code="501" description="Download limit reached"/></channel></rss>'
    with pytest.raises(NewznabError) as caught:
        parse_search(xml, indexer="slug")
    assert caught.value.rate_limited


def test_error_document_with_a_non_numeric_code_is_a_parse_error() -> None:
    with pytest.raises(NewznabParseError, match="numeric code") as caught:
        parse_search(b'<error code="oops" description="broken"/>', indexer="x")
    assert caught.value.code is None
    assert caught.value.kind == "parse"


def test_bom_before_a_normal_document() -> None:
    result = parse_search(b"\xef\xbb\xbf" + SEARCH, indexer="example")
    assert len(result.items) == 2


def test_blank_lines_before_the_declaration_are_tolerated() -> None:
    result = parse_search(b"\n\n  " + SEARCH, indexer="example")
    assert len(result.items) == 2


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss><channel><item><title>&lol3;</title><link>https://x.example/</link></item></channel></rss>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE caps [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<caps><server title="&secret;"/></caps>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "external"])
def test_entity_declarations_are_refused(xml: bytes) -> None:
    with pytest.raises(NewznabParseError, match="entities") as caught:
        if b"<caps>" in xml:
            parse_caps(xml)
        else:
            parse_search(xml, indexer="evil")
    assert caught.value.code is None
    assert not caught.value.rate_limited


def test_a_doctype_without_entities_is_harmless() -> None:
    xml = b'<!DOCTYPE rss SYSTEM "http://unreachable.invalid/rss.dtd">' + SEARCH.split(b"?>", 1)[1]
    assert len(parse_search(xml, indexer="example").items) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"error": "json"}', "not XML"),
        (b"<html><body><h1>502 Bad Gateway</h1>", "not XML"),
        (b"<html><body><h1>Cloudflare</h1></body></html>", "HTML page"),
        (b"<caps/>", "expected an <rss>"),
        (b"<rss version='2.0'/>", "no <channel>"),
    ],
)
def test_not_newznab(body: bytes, message: str) -> None:
    with pytest.raises(NewznabParseError, match=message) as caught:
        parse_search(body, indexer="broken")
    assert caught.value.code is None
    assert "broken" in str(caught.value)


def test_caps_rejects_a_search_result() -> None:
    with pytest.raises(NewznabParseError, match="expected a <caps>"):
        parse_caps(SEARCH)


def test_parse_error_reports_without_raising() -> None:
    found = parse_error(b'<error code="300" description="No such item"/>', indexer="x")
    assert found is not None
    assert (found.code, found.kind) == (300, "not_found")
    assert parse_error(SEARCH) is None
    not_xml = parse_error(b"\x1f\x8b\x08 gzip bytes")
    assert not_xml is not None
    assert not_xml.code is None


# --- the real captures in ../shared/fixtures/newznab (see SOURCES.md there) --------------------


def _nzbgeek(path: Path) -> None:
    result = parse_search(path.read_bytes(), indexer="nzbgeek")
    assert len(result.items) == 100
    assert (result.offset, result.total) == (0, 132)
    assert result.channel_title == "api.nzbgeek.info"
    assert all(len(i.categories) >= 2 and i.categories[0] == 3000 for i in result.items)
    assert all(i.size and i.size > 0 for i in result.items)
    assert all(i.usenetdate is not None and i.usenetdate.tzinfo for i in result.items)
    assert all(i.pub_date is not None and i.pub_date.tzinfo for i in result.items)
    assert all("t=get" in i.link for i in result.items)
    # "Some items have no grabs."
    with_grabs = [i for i in result.items if i.grabs is not None]
    assert 0 < len(with_grabs) < 100
    assert all(i.attr("year") for i in result.items)


def _dognzb_movie(path: Path) -> None:
    result = parse_search(path.read_bytes(), indexer="dognzb")
    assert len(result.items) == 13
    assert result.total == 13
    assert {i.imdb_id for i in result.items} == {"tt3079380"}
    assert all(i.grabs is not None for i in result.items)
    assert all(i.title.startswith("Spy.2015.") for i in result.items)
    assert all(2000 in i.categories for i in result.items)
    assert all(i.attr("imdbtitle") == "Spy" for i in result.items)
    assert len({i.guid for i in result.items}) == 13


def _dognzb_empty(path: Path) -> None:
    result = parse_search(path.read_bytes(), indexer="dognzb")
    assert result.items == ()
    assert result.total == 0


def _drunkenslug(path: Path) -> None:
    result = parse_search(path.read_bytes(), indexer="drunkenslug")
    assert result.items == ()
    assert result.total == 7800
    assert result.apilimits is not None
    assert (
        result.apilimits.api_current,
        result.apilimits.api_max,
        result.apilimits.grab_current,
        result.apilimits.grab_max,
    ) == (44, 50, None, 5)


def _nzedb(path: Path) -> None:
    result = parse_search(path.read_bytes(), indexer="ds")
    (item,) = result.items
    assert item.imdb_id == "tt0042054"
    assert (item.grabs, item.password, item.size) == (4, 0, 7445312955)
    assert item.categories == (2040,)
    assert item.usenetdate == datetime(2023, 12, 4, 5, 46, 59, tzinfo=UTC)
    assert item.attr("season") == "S03"
    assert result.apilimits is not None
    assert (result.apilimits.api_current, result.apilimits.grab_current) == (29, 102)


def _caps_dognzb(path: Path) -> None:
    caps = parse_caps(path.read_bytes())
    assert caps.server_title == "DOGnzb"
    assert caps.retention_days == 3427
    assert caps.movie_search_by_imdb is True
    movie = caps.search("movie-search")
    assert movie is not None
    assert movie.supported_params == ("q", "imdbid", "genre")
    assert 2045 in caps.category_ids(2000)
    assert len(caps.categories) == 8


def _caps_nzbsorg(path: Path) -> None:
    caps = parse_caps(path.read_bytes())
    assert caps.server_title == "NZBs(dot)ORG"
    assert caps.movie_search_by_imdb is True
    assert caps.category_ids(2000)[0] == 2000
    assert len(caps.category_ids(2000)) == 8


def _caps_omgwtf(path: Path) -> None:
    assert not path.read_bytes().lstrip().startswith(b"<?xml")
    caps = parse_caps(path.read_bytes())
    assert (caps.limit_max, caps.limit_default, caps.retention_days) == (500, 500, 2000)
    assert caps.movie_search_by_imdb is True
    audio = caps.search("audio-search")
    assert audio is not None
    assert not audio.available


def _caps_minimal(path: Path) -> None:
    caps = parse_caps(path.read_bytes())
    assert caps.app_version is None
    assert (caps.limit_max, caps.limit_default) == (60, 25)
    assert all(s.supported_params is None for s in caps.searching)
    assert caps.movie_search_by_imdb is None
    assert [c.id for c in caps.categories] == [5000, 7000, 8000]


def _error(code: int, description: str, bom: bool) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") is bom
        with pytest.raises(NewznabError) as caught:
            parse_search(data, indexer="captured")
        assert (caught.value.code, caught.value.description) == (code, description)
        assert description in str(caught.value)

    return check


CAPTURES: dict[str, Callable[[Path], None]] = {
    "nzbgeek_t-music_extended.xml": _nzbgeek,
    "dognzb_t-movie_imdbid_3079380.xml": _dognzb_movie,
    "dognzb_empty_result_total0.xml": _dognzb_empty,
    "drunkenslug_apilimits_no_items.xml": _drunkenslug,
    "nzedb_rss_feed_nZEDb_namespace.xml": _nzedb,
    "caps_dognzb.xml": _caps_dognzb,
    "caps_nzbsorg.xml": _caps_nzbsorg,
    "caps_omgwtfnzbs.xml": _caps_omgwtf,
    "caps_radarr_minimal.xml": _caps_minimal,
    "error_100_incorrect_user_credentials.xml": _error(100, "Incorrect user credentials", True),
    "error_201_incorrect_parameter.xml": _error(201, "Incorrect parameter", True),
    "error_300_no_such_item.xml": _error(300, "No such item", False),
}


def test_every_capture_parses_as_sources_md_describes(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "newznab"
    present = {p.name for p in folder.iterdir() if p.is_file()}
    # A capture added later must get its own expectations here, not be skipped silently.
    assert present == set(CAPTURES)
    for name, check in sorted(CAPTURES.items()):
        check(folder / name)
