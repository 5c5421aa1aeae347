"""The NZB model and its parser: from the bytes an indexer serves to frozen dataclasses.

An NZB comes from the internet and is trusted for nothing. The parser is defusedxml in
streaming mode (no tree is built), refuses entity declarations and external references,
never fetches a DTD, caps every count and size below (the ``MAX_*`` constants), and turns
every way of failing into an ``NzbError`` whose message a user can act on. File names come
from subjects only through ``nntp.names``, so they are always one safe path component.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import ParseError

from defusedxml import (
    DefusedXmlException,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser

from nntp.names import filename_from_subject, numbered_filename

# An NZB for a 100 GB remux is about 25 MB of XML; this leaves room and bounds memory, also
# for what a gzip-compressed NZB expands to (a gzip bomb stops here).
MAX_NZB_BYTES = 64 * 1024 * 1024
# Concatenated gzip files are valid but rare; each member costs a fresh decompressor, and
# millions of empty ones would cost seconds of CPU.
MAX_GZIP_MEMBERS = 16
MAX_FILES = 10_000
# 500 000 articles of 700 kB is 350 GB in one file: more than any real post.
MAX_SEGMENTS_PER_FILE = 500_000
MAX_TOTAL_SEGMENTS = 1_000_000
# A number past the most segments a file may have cannot be a real part number.
MAX_SEGMENT_NUMBER = MAX_SEGMENTS_PER_FILE
# Real articles are under a few MB; a larger claim is a broken or hostile NZB.
MAX_SEGMENT_BYTES = 100_000_000
# RFC 3977 3.6: a message-id is at most 250 octets; a longer one cannot be requested.
MAX_MESSAGE_ID_BYTES = 250
# An NZB is four levels deep (nzb/file/segments/segment); this leaves room for extensions.
MAX_DEPTH = 64

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 64 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_DIGITS = re.compile(r"[0-9]{1,15}")
_SIGNED_DIGITS = re.compile(r"-?[0-9]{1,15}")
# Ids and groups go on an NNTP command line as UTF-8: a space would split the line and CR/LF
# would start a new command of the NZB author's choosing, so ASCII controls, space, DEL and
# the id's own brackets are refused. Other characters cannot produce those bytes in UTF-8
# and do occur in real NZBs (SABnzbd's test post has C1 characters in its ids).
_UNSAFE_IN_WORD = re.compile(r"[\x00-\x20\x7f<>]")
_FILENAME_PASSWORD = re.compile(r"\{\{([^{}]+)\}\}")
# Elements whose text is read, besides segments (which are also counted).
_TEXT_ELEMENTS = {("nzb", "file", "groups", "group"), ("nzb", "head", "meta")}
_MESSAGE_LIMIT = 200
_WEB_PAGE = "The indexer sent a web page instead of an NZB; it may want you to log in, or be down."


class NzbError(ValueError):
    """The document is not a usable NZB; the message says why in words a user understands."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One article of a file: its part number, its size as posted and its message-id."""

    number: int
    bytes: int
    message_id: str  # without angle brackets


@dataclass(frozen=True, slots=True)
class NzbFile:
    """One posted file: its articles in part order and the safe name it is saved under."""

    subject: str
    poster: str
    date: int  # Unix time of the post, 0 when the NZB does not say
    groups: tuple[str, ...]
    segments: tuple[Segment, ...]
    name: str  # from the subject, else "file-NNN"; unique within its Nzb

    @property
    def bytes(self) -> int:
        return sum(segment.bytes for segment in self.segments)


@dataclass(frozen=True, slots=True)
class Nzb:
    """A parsed NZB: its files in document order and its ``<meta type>`` values."""

    files: tuple[NzbFile, ...]
    meta: Mapping[str, tuple[str, ...]] = field(hash=False)
    # The "{{password}}" in the NZB's own file name; a <meta type="password"> wins over it.
    filename_password: str | None = None

    @property
    def password(self) -> str | None:
        values = self.meta.get("password", ())
        return values[0] if values else self.filename_password

    @property
    def title(self) -> str | None:
        """``<meta type="title">``, else the ``name`` that some indexers write instead."""
        values = self.meta.get("title", ()) or self.meta.get("name", ())
        return values[0] if values else None

    @property
    def bytes(self) -> int:
        return sum(file.bytes for file in self.files)


def parse_nzb(data: bytes, *, filename: str | None = None) -> Nzb:
    """Parse an NZB document, plain or gzip-compressed; raise ``NzbError`` if it is not one.

    ``filename`` is the NZB's own file name, for the ``name{{password}}.nzb`` convention.
    """
    if len(data) > MAX_NZB_BYTES:
        raise NzbError(f"The NZB is larger than {_mib(MAX_NZB_BYTES)}; refusing to read it.")
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    # Some indexers send blank lines before the XML declaration, which XML forbids; without
    # a BOM expat assumes UTF-8 unless declared otherwise, so dropping the BOM changes nothing.
    data = data.removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")
    if not data.strip():
        raise NzbError("The NZB is empty.")
    builder = _Builder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        parser.close()
    except NzbError:
        raise
    except EntitiesForbidden as error:
        raise NzbError(
            "The NZB declares XML entities, which Matinee refuses because they can be used to "
            "attack the program reading it."
        ) from error
    except ExternalReferenceForbidden as error:
        raise NzbError(
            "The NZB refers to an external resource, which Matinee refuses to load."
        ) from error
    except DefusedXmlException as error:
        raise NzbError(f"The NZB uses an XML feature Matinee refuses ({error}).") from error
    except ParseError as error:
        if _looks_like_html(data):
            raise NzbError(_WEB_PAGE) from error
        raise NzbError(
            f"This is not an NZB: it is not valid XML, or it is cut short ({error})."
        ) from error
    except (LookupError, ValueError) as error:
        # pyexpat raises these for encodings it cannot decode (unknown, or multi-byte ones
        # such as Shift JIS); nothing else in the parse raises them.
        raise NzbError(
            f"This is not an NZB: it declares a text encoding Matinee cannot read ({error})."
        ) from error
    return builder.result(filename_password=_password_from_filename(filename))


class _PendingFile:
    """What one ``<file>`` has said so far, while the parser is inside it."""

    __slots__ = ("date", "groups", "has_numbers", "poster", "segment_count", "segments", "subject")

    def __init__(self, attrib: Mapping[str, str]) -> None:
        self.subject = attrib.get("subject", "").strip()
        self.poster = attrib.get("poster", "").strip()
        date = attrib.get("date", "").strip()
        self.date = int(date) if _SIGNED_DIGITS.fullmatch(date) else 0
        self.groups: list[str] = []
        # (number from the NZB or None, position in the document, bytes, message-id)
        self.segments: list[tuple[int | None, int, int, str]] = []
        self.segment_count = 0
        self.has_numbers = False


class _Builder:
    """The parser's target: follows ``start``/``data``/``end`` events and collects the model.

    Only the NZB's own structure is read (nzb/head/meta, nzb/file/groups/group,
    nzb/file/segments/segment); anything else is skipped without being stored.
    """

    def __init__(self) -> None:
        self._stack: list[str] = []
        self._text: list[str] = []
        self._capturing = False
        self._capture_depth = 0
        self._attrib: Mapping[str, str] = {}
        self._file: _PendingFile | None = None
        self._file_count = 0
        self._segment_count = 0
        self._files: list[NzbFile] = []
        self._names: _UniqueNames = _UniqueNames()
        self._meta: dict[str, list[str]] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = tag.rpartition("}")[2]
        depth = len(self._stack)
        if depth >= MAX_DEPTH:
            raise NzbError(f"The NZB nests elements more than {MAX_DEPTH} deep; it is not an NZB.")
        if depth == 0:
            _check_root(name, attrib)
        elif depth <= 3:
            path = (*self._stack, name)
            if path == ("nzb", "file"):
                self._start_file(attrib)
            elif path == ("nzb", "file", "segments", "segment"):
                self._start_segment(attrib)
            elif path in _TEXT_ELEMENTS:
                self._begin_text(attrib)
        self._stack.append(name)

    def data(self, text: str) -> None:
        # Text of a child element inside a segment, group or meta is not theirs.
        if self._capturing and len(self._stack) == self._capture_depth:
            self._text.append(text)

    def end(self, tag: str) -> None:
        closing_capture = self._capturing and len(self._stack) == self._capture_depth
        name = self._stack.pop()
        if closing_capture and name == "segment":
            self._end_segment()
        elif closing_capture and name == "group":
            self._end_group()
        elif closing_capture and name == "meta":
            self._end_meta()
        elif self._stack == ["nzb"] and name == "file":
            self._end_file()

    def close(self) -> None:
        return None

    def result(self, *, filename_password: str | None) -> Nzb:
        if not self._files:
            if self._file_count == 0:
                raise NzbError("The NZB contains no files.")
            which = (
                "its only <file> has"
                if self._file_count == 1
                else f"none of its {self._file_count} <file> entries has"
            )
            raise NzbError(
                f"The NZB contains no files that can be downloaded: {which} a segment with a "
                f"valid number, size and message-id."
            )
        meta = {key: tuple(values) for key, values in self._meta.items()}
        return Nzb(
            files=tuple(self._files),
            meta=MappingProxyType(meta),
            filename_password=filename_password,
        )

    def _begin_text(self, attrib: Mapping[str, str]) -> None:
        # Called from start() before the element is pushed: it will sit one level deeper.
        self._capturing = True
        self._capture_depth = len(self._stack) + 1
        self._attrib = attrib
        self._text = []

    def _take_text(self) -> str:
        self._capturing = False
        text = "".join(self._text).strip()
        self._text = []
        return text

    def _start_file(self, attrib: Mapping[str, str]) -> None:
        self._file_count += 1
        if self._file_count > MAX_FILES:
            raise NzbError(f"The NZB lists more than {MAX_FILES} files; refusing it as absurd.")
        self._file = _PendingFile(attrib)

    def _start_segment(self, attrib: Mapping[str, str]) -> None:
        assert self._file is not None
        self._file.segment_count += 1
        self._segment_count += 1
        if self._file.segment_count > MAX_SEGMENTS_PER_FILE:
            raise NzbError(
                f"A file in the NZB has more than {MAX_SEGMENTS_PER_FILE} segments; "
                f"refusing it as absurd."
            )
        if self._segment_count > MAX_TOTAL_SEGMENTS:
            raise NzbError(
                f"The NZB has more than {MAX_TOTAL_SEGMENTS} segments; refusing it as absurd."
            )
        self._begin_text(attrib)

    def _end_segment(self) -> None:
        assert self._file is not None
        message_id = _message_id(self._take_text())
        raw_number = self._attrib.get("number")
        size = _bounded_int(self._attrib.get("bytes"), MAX_SEGMENT_BYTES, minimum=0)
        if raw_number is not None:
            self._file.has_numbers = True
        number = _bounded_int(raw_number, MAX_SEGMENT_NUMBER, minimum=1)
        if message_id is None or size is None or (raw_number is not None and number is None):
            return
        self._file.segments.append((number, self._file.segment_count, size, message_id))

    def _end_group(self) -> None:
        assert self._file is not None
        group = self._take_text()
        if group and not _UNSAFE_IN_WORD.search(group) and group not in self._file.groups:
            self._file.groups.append(group)

    def _end_meta(self) -> None:
        kind = self._attrib.get("type", "").strip().lower()
        value = self._take_text()
        if kind and value:
            self._meta.setdefault(kind, []).append(value)

    def _end_file(self) -> None:
        pending, self._file = self._file, None
        assert pending is not None
        segments = _ordered_segments(pending)
        if not segments:
            return
        index = len(self._files) + 1
        name = filename_from_subject(pending.subject) or f"file-{index:03d}"
        self._files.append(
            NzbFile(
                subject=pending.subject,
                poster=pending.poster,
                date=pending.date,
                groups=tuple(pending.groups),
                segments=segments,
                name=self._names.claim(name),
            )
        )


def _ordered_segments(pending: _PendingFile) -> tuple[Segment, ...]:
    """The usable segments of a file by part number, the first of any duplicate number kept.

    When none of a file's segments carries a number (an NZB 1.1 violation seen in the wild)
    they are numbered in document order, which is the order posters write them; each
    article's yEnc header still gives the real offset of its bytes, so a wrong guess costs
    only scheduling order, never data. A segment without a number among numbered
    siblings cannot be placed and is dropped.
    """
    by_number: dict[int, Segment] = {}
    for number, position, size, message_id in pending.segments:
        if number is None:
            if pending.has_numbers:
                continue
            number = position
        by_number.setdefault(number, Segment(number, size, message_id))
    return tuple(by_number[number] for number in sorted(by_number))


class _UniqueNames:
    """Hands out names so that no two files of one NZB share one, ignoring case.

    Case is ignored because the files may later land on a case-insensitive file system or
    be served by name, where "A.mkv" and "a.mkv" would be the same file.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next_number: dict[str, int] = {}

    def claim(self, name: str) -> str:
        key = name.casefold()
        if key not in self._taken:
            self._taken.add(key)
            return name
        number = self._next_number.get(key, 2)
        candidate = numbered_filename(name, number)
        while candidate.casefold() in self._taken:
            number += 1
            candidate = numbered_filename(name, number)
        self._next_number[key] = number + 1
        self._taken.add(candidate.casefold())
        return candidate


def _check_root(name: str, attrib: Mapping[str, str]) -> None:
    if name == "nzb":
        return
    if name == "error":
        # Newznab answers a failed t=get with <error code="..." description="..."/>.
        description = _printable(attrib.get("description", "")) or "no description"
        code = _printable(attrib.get("code", ""))
        suffix = f" (code {code})" if code else ""
        raise NzbError(f"The indexer sent an error instead of an NZB: {description}{suffix}.")
    if name.lower() == "html":
        raise NzbError(_WEB_PAGE)
    raise NzbError(f"This is not an NZB: the document is <{_printable(name)}>, not <nzb>.")


def _gunzip(data: bytes) -> bytes:
    """Decompress the gzip members of ``data``, stopping once the output passes the cap."""
    out = bytearray()
    view = memoryview(data)
    position = 0
    members = 0
    try:
        while position < len(data):
            # Zero bytes after the last member are padding that some servers add.
            if data[position] == 0 and data.count(b"\x00", position) == len(data) - position:
                break
            members += 1
            if members > MAX_GZIP_MEMBERS:
                raise NzbError(
                    f"The compressed NZB is made of more than {MAX_GZIP_MEMBERS} gzip parts; "
                    f"refusing it."
                )
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            while not decompressor.eof:
                # Fed in chunks so that what follows a member is never copied whole.
                chunk = view[position : position + _GZIP_CHUNK]
                if not chunk:
                    raise NzbError("The compressed NZB is cut short; download it again.")
                position += len(chunk)
                out += decompressor.decompress(chunk, MAX_NZB_BYTES + 1 - len(out))
                if len(out) > MAX_NZB_BYTES:
                    raise NzbError(
                        f"The compressed NZB expands to more than {_mib(MAX_NZB_BYTES)}; "
                        f"refusing it."
                    )
            position -= len(decompressor.unused_data)
    except zlib.error as error:
        raise NzbError(f"The compressed NZB is damaged ({error}).") from error
    return bytes(out)


def _message_id(text: str) -> str | None:
    """The id without its angle brackets, or None when it cannot be sent to a server."""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text or _UNSAFE_IN_WORD.search(text):
        return None
    if len(text.encode()) > MAX_MESSAGE_ID_BYTES:
        return None
    return text


def _bounded_int(raw: str | None, maximum: int, *, minimum: int) -> int | None:
    """A plain decimal integer within bounds; None for anything else ("1e9", "-1", "0x10")."""
    if raw is None:
        return None
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def _password_from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    base = re.split(r"[/\\]", filename)[-1]
    match = _FILENAME_PASSWORD.search(base)
    if match is None:
        return None
    return match.group(1).strip() or None


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _printable(text: str) -> str:
    """Untrusted text cut to a sensible length and cleared of control characters."""
    cleaned = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).strip()
    if len(cleaned) > _MESSAGE_LIMIT:
        cleaned = cleaned[:_MESSAGE_LIMIT] + "…"
    return cleaned


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB"
