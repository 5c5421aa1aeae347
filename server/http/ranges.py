"""Range and If-Range headers (RFC 9110 section 14 and 13.1.5): what part of a representation
of known size a GET asks for. Pure functions, no I/O.

Choices, all allowed by the RFC:

* A header that is not a valid ``bytes`` ranges-specifier is ignored: the whole body (200).
* Several ranges are answered with the whole body (200) rather than ``multipart/byteranges``:
  players ask for one range at a time, and multipart would cost a second, copying code path.
* Pathological headers (longer than any sane single range) are ignored without parsing.
* Whitespace is tolerated around ``=``, ``,`` and ``-``; empty list elements are skipped
  (RFC 9110 5.6.1 asks recipients to accept a reasonable number of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Far beyond ``bytes=<19 digits>-<19 digits>`` with generous whitespace. Anything longer is
#: either several ranges (which we answer with the whole body anyway) or an attack.
MAX_HEADER_LENGTH = 256

# first-pos / last-pos / suffix-length are 1*DIGIT: ASCII digits only. int() alone would
# also take "+1", " 1", "1_0" and non-ASCII digits such as "١", so the grammar is checked here.
_SPEC = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)")
_OWS = " \t"

OK, PARTIAL, UNSATISFIABLE = 200, 206, 416


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """The answer to a Range header: a status and the bytes [start, stop) of a ``size`` body."""

    status: int  # OK (whole body), PARTIAL or UNSATISFIABLE
    start: int
    stop: int  # exclusive
    size: int  # the representation's full (final) length
    reason: str = ""  # why the header was ignored or refused; for logs and tests

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def content_range(self) -> str | None:
        """The Content-Range value for a 206 or 416, None for a 200."""
        if self.status == PARTIAL:
            return f"bytes {self.start}-{self.stop - 1}/{self.size}"
        if self.status == UNSATISFIABLE:
            return f"bytes */{self.size}"
        return None


def whole(size: int, reason: str = "") -> RangeSpec:
    return RangeSpec(OK, 0, size, size, reason)


def _unsatisfiable(size: int, reason: str) -> RangeSpec:
    return RangeSpec(UNSATISFIABLE, 0, 0, size, reason)


def parse_range(header: str | None, size: int) -> RangeSpec:
    """What to send for a GET with this Range header over a body of ``size`` bytes."""
    if size < 0:
        raise ValueError(f"size must not be negative: {size}")
    if header is None:
        return whole(size)
    if len(header) > MAX_HEADER_LENGTH:
        return whole(size, "header too long")
    unit, eq, range_set = header.partition("=")
    if not eq:
        return whole(size, "not a ranges-specifier")
    # RFC 9110 14.1: range units are case-insensitive; unknown units are ignored (14.2).
    if unit.strip(_OWS).lower() != "bytes":
        return whole(size, "not a bytes range")

    specs: list[tuple[str, str]] = []
    for element in range_set.split(","):
        element = element.strip(_OWS)
        if not element:
            continue
        m = _SPEC.fullmatch(element)
        if m is None:
            return whole(size, "invalid range syntax")
        first, last = m.group(1), m.group(2)
        if not first and not last:
            return whole(size, "invalid range syntax")
        if first and last and int(last) < int(first):
            # RFC 9110 14.1.1: an int-range with last-pos < first-pos is invalid.
            return whole(size, "last-pos before first-pos")
        specs.append((first, last))
    if not specs:
        return whole(size, "empty range set")
    if len(specs) > 1:
        return whole(size, "several ranges")

    first, last = specs[0]
    if size == 0:
        return _unsatisfiable(size, "empty body")
    if not first:
        suffix = int(last)
        if suffix == 0:
            return _unsatisfiable(size, "zero-length suffix")
        return RangeSpec(PARTIAL, max(0, size - suffix), size, size)
    start = int(first)
    if start >= size:
        return _unsatisfiable(size, "first-pos at or beyond the end")
    # A last-pos at or past the end means "to the end" (RFC 9110 14.1.1).
    stop = size if not last else min(int(last) + 1, size)
    return RangeSpec(PARTIAL, start, stop, size)


def _split_etag(value: str) -> tuple[bool, str] | None:
    """(weak, opaque-tag) of an entity-tag, or None when the value is not one."""
    weak = value.startswith("W/")
    tag = value[2:] if weak else value
    if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"' or '"' in tag[1:-1]:
        return None
    return weak, tag


def if_range_matches(header: str, etag: str, last_modified: str | None = None) -> bool:
    """Whether an If-Range condition holds, so the Range may be honoured (RFC 9110 13.1.5).

    An entity-tag matches only by strong comparison: a weak tag on either side never does.
    An HTTP-date matches only when it equals ``last_modified`` exactly; pass that only for a
    strong Last-Modified. Matinee's validator is the ETag and it sends no Last-Modified, so
    its handler passes None and dates never match: the client then gets the whole body,
    which is always correct.
    """
    value = header.strip(_OWS)
    if value.startswith(('"', "W/")):
        theirs, ours = _split_etag(value), _split_etag(etag)
        if theirs is None or ours is None or theirs[0] or ours[0]:
            return False
        return theirs[1] == ours[1]
    return last_modified is not None and value == last_modified
