"""yEnc articles and NZB documents for tests and benchmarks: what a poster such as Nyuu makes.

Used by the INN2 poster and the scriptable NNTP server alike, so both serve the same bytes.
Streams from files by offset so a multi-GB post never sits in memory.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import sabctools

DEFAULT_PART_SIZE = 716_800  # 700 KiB, what posters commonly use


@dataclass(frozen=True)
class Article:
    """One yEnc part: `body` is the article body (CRLF lines, not dot-stuffed, no terminator)."""

    message_id: str  # without angle brackets
    number: int  # 1-based part number
    begin: int  # 0-based offset of the decoded data in the file
    size: int  # decoded bytes
    body: bytes
    subject: str

    @property
    def nzb_bytes(self) -> int:
        """What an NZB's `bytes=` says: the encoded article size (posters differ; any is fine)."""
        return len(self.body)


def encode_part(
    data: bytes, *, name: str, part: int, total: int, begin: int, file_size: int
) -> bytes:
    """The yEnc body of one part; `begin` is 0-based (yEnc's =ypart begin is 1-based)."""
    encoded, crc = sabctools.yenc_encode(data)
    if total == 1:
        head = f"=ybegin line=128 size={file_size} name={name}\r\n"
        tail = f"\r\n=yend size={len(data)} crc32={crc:08x}"
    else:
        head = (
            f"=ybegin part={part} total={total} line=128 size={file_size} name={name}\r\n"
            f"=ypart begin={begin + 1} end={begin + len(data)}\r\n"
        )
        tail = f"\r\n=yend size={len(data)} part={part} pcrc32={crc:08x}"
    return head.encode() + encoded + tail.encode()


def subject_for(name: str, part: int, total: int, *, index: int = 1, count: int = 1) -> str:
    return f'[{index}/{count}] - "{name}" yEnc ({part}/{total})'


def iter_articles(
    path: Path,
    *,
    name: str | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    id_domain: str = "matinee.test",
    index: int = 1,
    count: int = 1,
) -> Iterator[Article]:
    """Articles for a file on disk, read part by part."""
    name = name if name is not None else path.name
    file_size = path.stat().st_size
    total = max(1, -(-file_size // part_size))
    # Message-ids unique per content and name, so two tests posting to one server never clash.
    salt = hashlib.sha1(f"{name}:{file_size}:{path}".encode()).hexdigest()[:12]
    with path.open("rb") as f:
        for part in range(1, total + 1):
            begin = (part - 1) * part_size
            data = f.read(part_size)
            yield Article(
                message_id=f"part{part}of{total}.{salt}.{zlib.crc32(data):08x}@{id_domain}",
                number=part,
                begin=begin,
                size=len(data),
                body=encode_part(
                    data, name=name, part=part, total=total, begin=begin, file_size=file_size
                ),
                subject=subject_for(name, part, total, index=index, count=count),
            )


def articles_for_bytes(
    data: bytes, name: str, *, part_size: int = DEFAULT_PART_SIZE, id_domain: str = "matinee.test"
) -> list[Article]:
    """Articles for data held in memory (small test files)."""
    total = max(1, -(-len(data) // part_size))
    salt = hashlib.sha1(name.encode() + data[:4096] + len(data).to_bytes(8, "big")).hexdigest()[:12]
    out = []
    for part in range(1, total + 1):
        begin = (part - 1) * part_size
        chunk = data[begin : begin + part_size]
        out.append(
            Article(
                message_id=f"part{part}of{total}.{salt}@{id_domain}",
                number=part,
                begin=begin,
                size=len(chunk),
                body=encode_part(
                    chunk, name=name, part=part, total=total, begin=begin, file_size=len(data)
                ),
                subject=subject_for(name, part, total),
            )
        )
    return out


@dataclass(frozen=True)
class NzbEntry:
    """One <file> of an NZB: its subject and the (number, bytes, message_id) of each segment."""

    subject: str
    segments: tuple[tuple[int, int, str], ...]

    @classmethod
    def from_articles(cls, articles: Iterable[Article], subject: str | None = None) -> NzbEntry:
        arts = list(articles)
        subj = (
            subject
            if subject is not None
            else f"{arts[0].subject.rsplit(' (', 1)[0]} (1/{len(arts)})"
        )
        return cls(subj, tuple((a.number, a.nzb_bytes, a.message_id) for a in arts))


def build_nzb(
    entries: Iterable[NzbEntry],
    *,
    group: str = "alt.binaries.test",
    poster: str = "matinee <poster@matinee.test>",
    meta: dict[str, str] | None = None,
    date: int = 1_700_000_000,
) -> bytes:
    """An NZB 1.1 document with the usual DOCTYPE."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.1//EN" '
        '"http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd">',
        '<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">',
    ]
    if meta:
        lines.append("  <head>")
        lines += [f"    <meta type={quoteattr(k)}>{escape(v)}</meta>" for k, v in meta.items()]
        lines.append("  </head>")
    for entry in entries:
        lines.append(
            f'  <file poster={quoteattr(poster)} date="{date}" subject={quoteattr(entry.subject)}>'
        )
        lines.append(f"    <groups><group>{escape(group)}</group></groups>")
        lines.append("    <segments>")
        lines += [
            f'      <segment bytes="{size}" number="{num}">{escape(mid)}</segment>'
            for num, size, mid in entry.segments
        ]
        lines.append("    </segments>")
        lines.append("  </file>")
    lines.append("</nzb>")
    return ("\n".join(lines) + "\n").encode()


def dot_stuff(body: bytes) -> bytes:
    """NNTP transparency (RFC 3977 3.1.1): a line starting with '.' gets another '.'."""
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..")
