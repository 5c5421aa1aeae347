"""Range and If-Range headers, good and hostile, against bodies of 0, 1 and 1000 bytes."""

from __future__ import annotations

import random

import pytest

from server.http.ranges import (
    MAX_HEADER_LENGTH,
    OK,
    PARTIAL,
    UNSATISFIABLE,
    RangeSpec,
    if_range_matches,
    parse_range,
)


def outcome(spec: RangeSpec) -> str:
    """What a client sees: "200", "416", or "206 first-last" (inclusive, as in Content-Range)."""
    if spec.status == PARTIAL:
        return f"206 {spec.start}-{spec.stop - 1}"
    return str(spec.status)


THOUSAND_RANGES = "bytes=" + ",".join(f"{i}-{i}" for i in range(1000))
HUGE = "9" * 30

# header -> expected outcome for a body of 0, 1 and 1000 bytes
TABLE: list[tuple[str | None, tuple[str, str, str]]] = [
    # no header, or one that is not a ranges-specifier: the whole body
    (None, ("200", "200", "200")),
    ("", ("200", "200", "200")),
    ("bytes", ("200", "200", "200")),
    ("bytes=", ("200", "200", "200")),
    ("bytes=,", ("200", "200", "200")),
    ("bytes=-", ("200", "200", "200")),
    ("=1-2", ("200", "200", "200")),
    # the three kinds of range
    ("bytes=0-0", ("416", "206 0-0", "206 0-0")),
    ("bytes=0-", ("416", "206 0-0", "206 0-999")),
    ("bytes=5-", ("416", "416", "206 5-999")),
    ("bytes=10-19", ("416", "416", "206 10-19")),
    ("bytes=999-", ("416", "416", "206 999-999")),
    ("bytes=999-999", ("416", "416", "206 999-999")),
    ("bytes=-1", ("416", "206 0-0", "206 999-999")),
    ("bytes=-10", ("416", "206 0-0", "206 990-999")),
    ("bytes=-1000", ("416", "206 0-0", "206 0-999")),
    ("bytes=-2000", ("416", "206 0-0", "206 0-999")),
    # last-pos past the end is clamped; first-pos past the end is unsatisfiable
    ("bytes=0-999999999999", ("416", "206 0-0", "206 0-999")),
    (f"bytes=0-{HUGE}", ("416", "206 0-0", "206 0-999")),
    (f"bytes=-{HUGE}", ("416", "206 0-0", "206 0-999")),
    (f"bytes={HUGE}-", ("416", "416", "416")),
    (f"bytes={HUGE}-{HUGE}", ("416", "416", "416")),
    ("bytes=1000-", ("416", "416", "416")),
    ("bytes=1000-2000", ("416", "416", "416")),
    ("bytes=1-1", ("416", "416", "206 1-1")),
    # a zero-length suffix selects nothing
    ("bytes=-0", ("416", "416", "416")),
    ("bytes=-000", ("416", "416", "416")),
    # leading zeros are digits like any other
    ("bytes=00-01", ("416", "206 0-0", "206 0-1")),
    # last-pos before first-pos is invalid: the header is ignored
    ("bytes=9-3", ("200", "200", "200")),
    ("bytes=1-0", ("200", "200", "200")),
    # whitespace and case
    ("bytes= 1-2", ("416", "416", "206 1-2")),
    ("bytes=1-2 ", ("416", "416", "206 1-2")),
    ("bytes=\t1-2", ("416", "416", "206 1-2")),
    ("bytes = 1-2", ("416", "416", "206 1-2")),
    ("bytes=1 - 2", ("416", "416", "206 1-2")),
    ("BYTES=1-2", ("416", "416", "206 1-2")),
    ("Bytes=-5", ("416", "206 0-0", "206 995-999")),
    # empty list elements are skipped
    ("bytes=1-2,", ("416", "416", "206 1-2")),
    ("bytes=,1-2", ("416", "416", "206 1-2")),
    ("bytes=, ,1-2, ,", ("416", "416", "206 1-2")),
    # other units are ignored
    ("items=1-2", ("200", "200", "200")),
    ("byte=1-2", ("200", "200", "200")),
    ("bytesx=1-2", ("200", "200", "200")),
    # several ranges: the whole body, however many and whatever they say
    ("bytes=1-2,4-5", ("200", "200", "200")),
    ("bytes=0-0,-1", ("200", "200", "200")),
    ("bytes=0-,0-", ("200", "200", "200")),
    ("bytes=5000-,6000-", ("200", "200", "200")),
    (THOUSAND_RANGES, ("200", "200", "200")),
    # broken numbers and separators
    ("bytes=abc", ("200", "200", "200")),
    ("bytes=a-b", ("200", "200", "200")),
    ("bytes=--1", ("200", "200", "200")),
    ("bytes=-1-", ("200", "200", "200")),
    ("bytes=-1-2", ("200", "200", "200")),
    ("bytes=+1-2", ("200", "200", "200")),
    ("bytes=1-+2", ("200", "200", "200")),
    ("bytes=1-2-3", ("200", "200", "200")),
    ("bytes=1", ("200", "200", "200")),
    ("bytes=0x10-20", ("200", "200", "200")),
    ("bytes=1e3-", ("200", "200", "200")),
    ("bytes=-1e3", ("200", "200", "200")),
    ("bytes=1.5-2", ("200", "200", "200")),
    ("bytes=1_0-20", ("200", "200", "200")),
    ("bytes=1 2-3", ("200", "200", "200")),
    ("bytes=\u0661-\u0662", ("200", "200", "200")),  # Arabic-Indic digits: int() takes them
    ("bytes=\u22121", ("200", "200", "200")),  # a minus sign that is not "-"
    ("bytes=1-2;q=1", ("200", "200", "200")),
    ("bytes=1-2\x00", ("200", "200", "200")),
    ("bytes=1-2=3", ("200", "200", "200")),
    # pathological lengths are refused before parsing
    ("bytes=" + "0" * 5000 + "-1", ("200", "200", "200")),
    ("bytes=" + " " * MAX_HEADER_LENGTH + "0-1", ("200", "200", "200")),
    ("bytes=0-" + "9" * 10_000, ("200", "200", "200")),
]


@pytest.mark.parametrize(("header", "expected"), TABLE, ids=lambda v: repr(v)[:40])
def test_range_table(header: str | None, expected: tuple[str, str, str]) -> None:
    got = tuple(outcome(parse_range(header, size)) for size in (0, 1, 1000))
    assert got == expected


@pytest.mark.parametrize(
    ("header", "size", "content_range", "length"),
    [
        ("bytes=0-0", 1000, "bytes 0-0/1000", 1),
        ("bytes=-1", 1000, "bytes 999-999/1000", 1),
        ("bytes=5-", 1000, "bytes 5-999/1000", 995),
        ("bytes=0-999999999999", 1000, "bytes 0-999/1000", 1000),
        ("bytes=1000-", 1000, "bytes */1000", 0),
        ("bytes=0-", 0, "bytes */0", 0),
        (None, 1000, None, 1000),
        ("bytes=1-2,4-5", 1000, None, 1000),
    ],
)
def test_headers_a_client_gets(
    header: str | None, size: int, content_range: str | None, length: int
) -> None:
    spec = parse_range(header, size)
    assert spec.content_range == content_range
    assert spec.length == length
    assert spec.size == size


def test_big_files_keep_exact_offsets() -> None:
    size = 5 * 1024**4  # 5 TiB: beyond 32-bit and float-exact ranges alike
    spec = parse_range(f"bytes={size - 10}-", size)
    assert spec.content_range == f"bytes {size - 10}-{size - 1}/{size}"
    assert parse_range("bytes=-3", size).content_range == f"bytes {size - 3}-{size - 1}/{size}"


def test_ignored_headers_say_why() -> None:
    assert parse_range("bytes=1-2,4-5", 100).reason == "several ranges"
    assert parse_range(THOUSAND_RANGES, 100).reason == "header too long"
    assert parse_range("items=1-2", 100).reason == "not a bytes range"
    assert parse_range("bytes=9-3", 100).reason == "last-pos before first-pos"
    assert parse_range("bytes=1000-", 100).reason == "first-pos at or beyond the end"


def test_negative_size_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_range("bytes=0-", -1)


def test_random_headers_never_escape_the_body() -> None:
    rng = random.Random(9110)
    alphabet = "bytes=-, \t0123456789+xe;BYTES\x00\u0661"
    for _ in range(5000):
        header = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        if rng.random() < 0.5:
            header = "bytes=" + header
        for size in (0, 1, 7, 1000):
            spec = parse_range(header, size)
            assert spec.status in (OK, PARTIAL, UNSATISFIABLE), header
            assert 0 <= spec.start <= spec.stop <= size, header
            if spec.status == PARTIAL:
                assert spec.length > 0, header
            if spec.status == OK:
                assert (spec.start, spec.stop) == (0, size), header


ETAG = '"job_1700000000000_ab12-1000"'
DATE = "Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("header", "etag", "last_modified", "matches"),
    [
        (ETAG, ETAG, None, True),
        (f"  {ETAG}\t", ETAG, None, True),
        ('"job_1700000000000_ab12-999"', ETAG, None, False),
        (f"W/{ETAG}", ETAG, None, False),  # weak tags never match strongly
        (ETAG, f"W/{ETAG}", None, False),
        (f"W/{ETAG}", f"W/{ETAG}", None, False),
        (ETAG[1:-1], ETAG, None, False),  # unquoted: not an entity-tag, and no date
        (f"{ETAG}, {ETAG}", ETAG, None, False),  # If-Range takes one validator, not a list
        ("*", ETAG, None, False),
        ('""', '""', None, True),
        ('"', '"', None, False),
        ("", ETAG, None, False),
        (DATE, ETAG, None, False),  # our validator is the ETag: dates never match
        (DATE, ETAG, DATE, True),  # ...unless the caller vouches for a strong Last-Modified
        (DATE, ETAG, "Mon, 07 Nov 1994 08:49:37 GMT", False),
    ],
)
def test_if_range(header: str, etag: str, last_modified: str | None, matches: bool) -> None:
    assert if_range_matches(header, etag, last_modified) is matches
