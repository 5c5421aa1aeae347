"""Reading newznab API replies: search results (RSS), capabilities (t=caps) and error documents.

Pure: bytes in, frozen dataclasses out; no network, no clock. The HTTP client that fetches these
documents lives elsewhere and hands the body over unchanged.

Parsing goes through defusedxml, which refuses entity declarations and external entities, so a
hostile or broken indexer cannot expand an XML bomb or make us read a local file. Indexers differ
in details this module absorbs: attribute elements come as ``newznab:attr`` or ``nZEDb:attr``
(any prefix is accepted; the local name ``attr`` is what counts), ``apilimits`` attribute names
vary in case, documents may start with a UTF-8 byte-order mark, and dates are RFC 2822.

Newznab error codes (``<error code="…" description="…"/>``), grouped as :attr:`NewznabError.kind`:

==========  ==============  ===========================================================
code        kind            meaning
==========  ==============  ===========================================================
100-102     credentials     wrong API key, account suspended, not authorised
103-107     registration    account registration refused (never expected from searches)
200-203     request         missing or wrong parameter, unknown or unavailable function
300         not_found       no such item (an NZB id that is gone)
500-501     limit           request limit / download (grab) limit reached: rest the indexer
900-910     server          unknown error, API disabled
other       unknown         anything else an indexer invents
==========  ==============  ===========================================================
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, cast
from xml.etree.ElementTree import Element, ParseError

# defusedxml ships no type information; the two names used are wrapped in typed helpers below.
import defusedxml
import defusedxml.ElementTree

ErrorKind = Literal[
    "credentials", "registration", "request", "not_found", "limit", "server", "unknown", "parse"
]

#: The meaning of each code in the newznab API specification, used when an indexer sends a code
#: without a description.
ERROR_CODES: Mapping[int, str] = MappingProxyType(
    {
        100: "Incorrect user credentials",
        101: "Account suspended",
        102: "Insufficient privileges/not authorized",
        103: "Registration denied",
        104: "Registrations are closed",
        105: "Invalid registration (email address taken)",
        106: "Invalid registration (email address bad format)",
        107: "Registration failed (data error)",
        200: "Missing parameter",
        201: "Incorrect parameter",
        202: "No such function",
        203: "Function not available",
        300: "No such item",
        500: "Request limit reached",
        501: "Download limit reached",
        900: "Unknown error",
        910: "API disabled",
    }
)

_UTF8_BOM = b"\xef\xbb\xbf"


class NewznabError(Exception):
    """An indexer's own error document, or (``code is None``) a reply that is not newznab XML.

    The message carries the indexer's description verbatim, because that text ("Request limit
    reached", "Incorrect user credentials") is what a person needs to fix the problem.
    """

    def __init__(self, code: int | None, description: str, *, indexer: str | None = None) -> None:
        self.code = code
        self.description = description
        self.indexer = indexer
        where = f" from {indexer}" if indexer else ""
        if code is None:
            message = f"unreadable newznab reply{where}: {description}"
        else:
            message = f"newznab error {code}{where}: {description}"
        super().__init__(message)

    @property
    def kind(self) -> ErrorKind:
        code = self.code
        if code is None:
            return "parse"
        if 100 <= code <= 102:
            return "credentials"
        if 103 <= code <= 107:
            return "registration"
        if 200 <= code <= 203:
            return "request"
        if code == 300:
            return "not_found"
        if code in (500, 501):
            return "limit"
        if 900 <= code <= 999:
            return "server"
        return "unknown"

    @property
    def rate_limited(self) -> bool:
        """True for 500/501: the indexer should be rested with backoff, not reported as broken."""
        return self.kind == "limit"

    @property
    def bad_credentials(self) -> bool:
        """True for 100-102: retrying cannot help until the API key or account is fixed."""
        return self.kind == "credentials"


class NewznabParseError(NewznabError):
    """The reply was not XML, not newznab, or was refused as hostile (entities, XML bombs)."""

    def __init__(self, description: str, *, indexer: str | None = None) -> None:
        super().__init__(None, description, indexer=indexer)


@dataclass(frozen=True, slots=True)
class NewznabItem:
    """One search result. ``link`` is the URL the NZB is fetched from."""

    title: str
    guid: str
    link: str
    size: int | None
    pub_date: datetime | None
    categories: tuple[int, ...]
    grabs: int | None
    usenetdate: datetime | None
    #: newznab's ``password`` attribute: 0 none, 1 passworded, 2 may contain a passworded archive.
    password: int | None
    #: ``tt`` plus at least seven digits, as TMDB and IMDb spell it.
    imdb_id: str | None
    indexer: str
    #: Every attribute element in document order, lower-cased names, for callers that need more.
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, name: str) -> str | None:
        """The first value of attribute ``name`` (case-insensitive), if the indexer sent it."""
        wanted = name.lower()
        return next((value for key, value in self.attrs if key == wanted), None)


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """``newznab:apilimits``: how much of today's allowance is used, when the indexer says."""

    api_current: int | None
    api_max: int | None
    grab_current: int | None
    grab_max: int | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    items: tuple[NewznabItem, ...]
    offset: int | None
    total: int | None
    apilimits: ApiLimits | None
    channel_title: str | None
    #: Items dropped because they had no title or no NZB link; counted so a caller can log it.
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SearchCapability:
    """One ``<searching>`` entry such as ``movie-search``."""

    name: str
    available: bool
    #: Lower-cased parameter names, or None when the indexer does not list them (not "none").
    supported_params: tuple[str, ...] | None

    def supports(self, param: str) -> bool | None:
        """Whether ``param`` is supported; None when the indexer did not say."""
        if self.supported_params is None:
            return None
        return param.lower() in self.supported_params


@dataclass(frozen=True, slots=True)
class Category:
    id: int
    name: str
    subcats: tuple[Category, ...] = ()


@dataclass(frozen=True, slots=True)
class Caps:
    server_title: str | None
    server_version: str | None
    app_version: str | None
    limit_max: int | None
    limit_default: int | None
    retention_days: int | None
    searching: tuple[SearchCapability, ...]
    categories: tuple[Category, ...]

    def search(self, name: str) -> SearchCapability | None:
        wanted = name.lower()
        return next((s for s in self.searching if s.name == wanted), None)

    @property
    def movie_search_by_imdb(self) -> bool | None:
        """True if ``t=movie&imdbid=`` is advertised, False if not, None if caps do not say.

        None happens when ``movie-search`` is available but lists no ``supportedParams``; the
        caller then tries the id search and falls back to a title search on error 201/203.
        """
        movie = self.search("movie-search")
        if movie is None or not movie.available:
            return False
        return movie.supports("imdbid")

    def category(self, category_id: int) -> Category | None:
        for top in self.categories:
            if top.id == category_id:
                return top
            for sub in top.subcats:
                if sub.id == category_id:
                    return sub
        return None

    def category_ids(self, parent_id: int) -> tuple[int, ...]:
        """``parent_id`` and all its subcategory ids (empty when the indexer lacks the parent)."""
        top = next((c for c in self.categories if c.id == parent_id), None)
        if top is None:
            return ()
        return (top.id, *(sub.id for sub in top.subcats))


def parse_search(xml: bytes, *, indexer: str) -> SearchResult:
    """Parse a ``t=search`` / ``t=movie`` RSS reply; error replies raise :class:`NewznabError`."""
    root = _parse_document(xml, indexer=indexer)
    if _local(root.tag) != "rss":
        raise NewznabParseError(
            f"expected an <rss> search result, got <{_local(root.tag)}>", indexer=indexer
        )
    channel = _child(root, "channel")
    if channel is None:
        raise NewznabParseError("the <rss> document has no <channel>", indexer=indexer)

    offset = total = None
    response = _child(channel, "response")
    if response is not None:
        offset = _int(response.get("offset"))
        total = _int(response.get("total"))

    apilimits = None
    limits_el = _child(channel, "apilimits")
    if limits_el is not None:
        # nZEDb writes apiCurrent, others apicurrent: compare case-insensitively.
        lowered = {key.lower(): value for key, value in limits_el.attrib.items()}
        apilimits = ApiLimits(
            api_current=_int(lowered.get("apicurrent")),
            api_max=_int(lowered.get("apimax")),
            grab_current=_int(lowered.get("grabcurrent")),
            grab_max=_int(lowered.get("grabmax")),
        )

    items: list[NewznabItem] = []
    skipped = 0
    for element in _children(channel, "item"):
        item = _parse_item(element, indexer)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    return SearchResult(
        items=tuple(items),
        offset=offset,
        total=total,
        apilimits=apilimits,
        channel_title=_text(_plain_child(channel, "title")),
        skipped=skipped,
    )


def parse_caps(xml: bytes) -> Caps:
    """Parse a ``t=caps`` reply; raise :class:`NewznabError` for error replies."""
    root = _parse_document(xml, indexer=None)
    if _local(root.tag) != "caps":
        raise NewznabParseError(f"expected a <caps> document, got <{_local(root.tag)}>")

    server = _child(root, "server")
    limits = _child(root, "limits")
    retention = _child(root, "retention")

    searching: list[SearchCapability] = []
    searching_el = _child(root, "searching")
    if searching_el is not None:
        # The default tree builder drops comments, so every child here is an element.
        for entry in searching_el:
            params_attr = _attr_ci(entry, "supportedParams")
            params = (
                None
                if params_attr is None
                else tuple(p.strip().lower() for p in params_attr.split(",") if p.strip())
            )
            searching.append(
                SearchCapability(
                    name=_local(entry.tag).lower(),
                    available=(entry.get("available") or "").strip().lower() == "yes",
                    supported_params=params,
                )
            )

    categories: list[Category] = []
    categories_el = _child(root, "categories")
    if categories_el is not None:
        for top in _children(categories_el, "category"):
            parsed = _category(top)
            if parsed is not None:
                subs = (_category(sub) for sub in _children(top, "subcat"))
                categories.append(
                    Category(parsed.id, parsed.name, tuple(s for s in subs if s is not None))
                )

    return Caps(
        server_title=_nonempty(server.get("title")) if server is not None else None,
        server_version=_nonempty(server.get("version")) if server is not None else None,
        app_version=_nonempty(server.get("appversion")) if server is not None else None,
        limit_max=_int(limits.get("max")) if limits is not None else None,
        limit_default=_int(limits.get("default")) if limits is not None else None,
        retention_days=_int(retention.get("days")) if retention is not None else None,
        searching=tuple(searching),
        categories=tuple(categories),
    )


def parse_error(xml: bytes, *, indexer: str | None = None) -> NewznabError | None:
    """The error a reply carries, or None when it is a normal document.

    For callers that receive something in place of an NZB (``t=get`` answers with an error
    document and a 200 status) and want to know before handing the bytes on.
    """
    try:
        _parse_document(xml, indexer=indexer)
    except NewznabError as exc:
        return exc
    return None


# --- internals ---------------------------------------------------------------------------------


def _parse_document(xml: bytes, *, indexer: str | None) -> Element:
    data = bytes(xml)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    # Some indexers emit a newline before the XML declaration, which expat rejects outright.
    data = data.lstrip()
    if not data:
        raise NewznabParseError("empty reply", indexer=indexer)
    try:
        root = _safe_fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise NewznabParseError(
            "refused: the document declares XML entities or external references "
            f"({type(exc).__name__}), which newznab never needs and XML bombs rely on",
            indexer=indexer,
        ) from exc
    except ParseError as exc:
        raise NewznabParseError(f"not XML ({exc})", indexer=indexer) from exc

    error = _find_error(root)
    if error is not None:
        raw_code = _attr_ci(error, "code")
        code = _int(raw_code)
        description = (_attr_ci(error, "description") or _text(error) or "").strip()
        if code is None:
            raise NewznabParseError(
                f"error document without a numeric code ({raw_code!r}): {description}",
                indexer=indexer,
            )
        raise NewznabError(
            code, description or ERROR_CODES.get(code, "no description"), indexer=indexer
        )
    if _local(root.tag) == "html":
        raise NewznabParseError("the indexer answered with an HTML page", indexer=indexer)
    return root


def _safe_fromstring(data: bytes) -> Element:
    # forbid_dtd stays False: a bare DOCTYPE is harmless (expat never fetches it); declaring
    # entities, internal or external, is what is refused.
    root = cast(Any, defusedxml.ElementTree).fromstring(
        data, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    return cast(Element, root)


def _find_error(root: Element) -> Element | None:
    """The ``<error>`` element, at the root or (as some nZEDb builds do) inside the channel."""
    if _local(root.tag) == "error":
        return root
    for child in root:
        if _local(child.tag) == "error":
            return child
        if _local(child.tag) == "channel":
            found = _child(child, "error")
            if found is not None:
                return found
    return None


def _parse_item(element: Element, indexer: str) -> NewznabItem | None:
    title = _text(_plain_child(element, "title"))
    enclosure = _child(element, "enclosure")
    enclosure_url = _nonempty(enclosure.get("url")) if enclosure is not None else None
    link = _text(_plain_child(element, "link")) or enclosure_url
    if not title or not link:
        return None

    attrs: list[tuple[str, str]] = []
    for child in _children(element, "attr"):
        name = child.get("name")
        value = child.get("value")
        if name is not None and value is not None:
            attrs.append((name.strip().lower(), value.strip()))

    def first(name: str) -> str | None:
        return next((value for key, value in attrs if key == name), None)

    size = _int(first("size"))
    if not size and enclosure is not None:
        size = _int(enclosure.get("length"))
    categories = tuple(
        number for key, value in attrs if key == "category" and (number := _int(value)) is not None
    )
    guid = _text(_plain_child(element, "guid")) or first("guid") or link
    return NewznabItem(
        title=title,
        guid=guid,
        link=link,
        size=size if size else None,
        pub_date=_date(_text(_plain_child(element, "pubDate"))),
        categories=categories,
        grabs=_int(first("grabs")),
        usenetdate=_date(first("usenetdate")),
        password=_int(first("password")),
        imdb_id=imdb_tt(first("imdb") or first("imdbid")),
        indexer=indexer,
        attrs=tuple(attrs),
    )


def _category(element: Element) -> Category | None:
    number = _int(element.get("id"))
    if number is None:
        return None
    return Category(number, (element.get("name") or "").strip())


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(parent: Element, local: str) -> Iterator[Element]:
    for child in parent:
        if _local(child.tag) == local:
            yield child


def _child(parent: Element, local: str) -> Element | None:
    return next(_children(parent, local), None)


def _plain_child(parent: Element, name: str) -> Element | None:
    """A child without a namespace (RSS's own), so ``atom:link`` never shadows ``<link>``."""
    plain = parent.find(name)
    return plain if plain is not None else _child(parent, name)


def _attr_ci(element: Element, name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in element.attrib.items() if k.lower() == wanted), None)


def _text(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return _nonempty(element.text)


def _nonempty(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped.isascii() or not stripped.lstrip("-").isdigit():
        return None
    return int(stripped)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 2822's "-0000" means "UTC, origin unknown"; Python returns it naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def imdb_number(value: str | None) -> int | None:
    """``tt0137523``, ``0137523`` or ``137523`` -> 137523; None when it is no IMDb id. The
    one reading of IMDb ids: newznab items carry them with or without "tt"."""
    if not value:
        return None
    digits = value.strip().lower().removeprefix("tt")
    if not digits.isascii() or not digits.isdigit() or int(digits) == 0:
        return None
    return int(digits)


def imdb_tt(value: str | None) -> str | None:
    """An IMDb id as TMDB and people write it: ``tt`` and at least seven digits."""
    number = imdb_number(value)
    return None if number is None else f"tt{number:07d}"
