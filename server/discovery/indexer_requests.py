"""What goes into a newznab request and what is checked of its reply, pure: the query words,
the IMDb digits, the categories an indexer knows, and the API key kept out of every URL
and reply that leaves the indexers' module."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, quote_plus, urlsplit
from xml.sax.saxutils import escape

from server.discovery.newznab import Caps, NewznabItem, imdb_number

#: What stands for the API key in every link that leaves the indexers' module.
APIKEY_PLACEHOLDER = "{apikey}"


def imdb_digits(imdb_id: str | None) -> str | None:
    """``tt0137523`` -> ``0137523`` (seven digits or more, as newznab wants); None if unusable."""
    number = imdb_number(imdb_id)
    return None if number is None else f"{number:07d}"


def search_query(title: str, year: int | None) -> str:
    """Title plus year as a newznab ``q``: apostrophes dropped, other punctuation as spaces."""
    words = re.sub(r"['’`]", "", title)
    words = " ".join(re.sub(r"[^\w]+", " ", words).split())
    if not words:
        return ""
    return f"{words} {year}" if year else words


def relevant(items: Sequence[NewznabItem], wanted: str | None) -> list[NewznabItem]:
    """Drop items the indexer itself matched to another film (a different IMDb id): title
    searches find remakes and namesakes ("Dune" 1984 for "Dune" 2021)."""
    return [i for i in items if not (wanted and i.imdb_id and i.imdb_id != wanted)]


def known_categories(configured: Sequence[int], caps: Caps | None) -> tuple[int, ...]:
    """The configured categories the indexer knows; all of them when caps do not say."""
    if caps is None or not caps.categories:
        return tuple(configured)
    known = tuple(c for c in configured if caps.category(c) is not None)
    return known or tuple(configured)


def key_forms(key: str) -> set[str]:
    forms = {key, quote(key, safe=""), quote_plus(key)}
    return forms | {escape(f) for f in forms}


def redactor(key: str | None) -> Callable[[bytes], bytes]:
    """Replaces the key inside URLs of a reply (after ``=`` or ``/``) by the placeholder."""
    if not key:
        return lambda body: body
    forms = sorted({f.encode() for f in key_forms(key)}, key=len, reverse=True)
    pattern = re.compile(
        rb"(?<=[=/])(?:" + b"|".join(re.escape(f) for f in forms) + rb")(?=[&\"'<\s/?#;]|$)"
    )
    placeholder = APIKEY_PLACEHOLDER.encode()
    return lambda body: pattern.sub(placeholder, body)


def key_hint(name: str) -> str:
    return f"; check the api_key of {name!r} under [[indexers]] in the configuration"


def maybe_error_document(data: bytes) -> bool:
    # An NZB names its root within the first bytes; only other documents are parsed here, so
    # a 60 MB NZB is not read twice on the event loop.
    return b"<nzb" not in data[:4096]


def host(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname or ""
    default = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}" if port and port != default else host
