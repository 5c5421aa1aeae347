"""File names from untrusted Usenet text: turn a subject or a posted name into one safe name,
and tell what a posted name says a file is (a video, a RAR volume, a PAR2 file, or nothing).

Every name Matinee writes to disk comes through here, because NZB subjects and yEnc/PAR2
names are chosen by whoever posted them. A result is a single path component: no
directories, no drive, no control characters, never only dots (``.``, ``..``), at most
``MAX_NAME_BYTES`` bytes of UTF-8.
"""

from __future__ import annotations

import re

# Linux (ext4, xfs, btrfs) and most other file systems cap a name at 255 bytes.
MAX_NAME_BYTES = 255

# A longer "extension" is more likely part of the name than a type; truncation may cut it.
MAX_EXTENSION_BYTES = 32

# C0, DEL and C1 controls, lone surrogates (they cannot be encoded as UTF-8, so cannot be a
# name) and the bidirectional overrides and isolates that can disguise an extension
# ("evil\u202emkv.exe" shows as "evilexe.vkm").
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")

_DRIVE = re.compile(r"[A-Za-z]:")

# Tokens that posters put after the name: "yEnc", "(1/24)", "[01/46]", byte counts, dashes.
_PART_COUNT = re.compile(r"[\(\[]\d+/\d+[\)\]]")
_NOISE = re.compile(r"yenc|\d+|-+|[\(\[]\d+/\d+[\)\]]", re.IGNORECASE)

# The extension of an unquoted "name.ext": short and alphanumeric (".mkv", ".r00", ".001").
_EXTENSION = re.compile(r"[0-9A-Za-z]{1,10}")

_QUOTED = re.compile(r'"([^"]*)"')

# Extensions of the video files a post may carry as its movie.
VIDEO_EXTENSIONS = frozenset({"mkv", "mp4", "m4v", "webm", "avi", "ts", "m2ts", "mov", "wmv"})

_PART_RAR = re.compile(r"^(?P<stem>.+)\.part(?P<n>\d{1,4})\.rar$", re.IGNORECASE)
_FIRST_RAR = re.compile(r"^(?P<stem>.+)\.rar$", re.IGNORECASE)
_OLD_RAR = re.compile(r"^(?P<stem>.+)\.(?P<letter>[r-z])(?P<n>\d\d)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^(?P<stem>.+)\.(?P<n>\d{3})$")


def safe_filename(raw: str) -> str | None:
    """One safe path component made from ``raw``, or None when nothing usable remains.

    Keeps only what follows the last ``/`` or ``\\``, drops a Windows drive prefix and control
    characters, trims surrounding whitespace, refuses names made only of dots (and spaces),
    turns leading dots into underscores (a hidden name is the engine's own: its state file,
    par2's backups), and shortens names over ``MAX_NAME_BYTES`` bytes while keeping their
    extension. Never raises.
    """
    text = _UNWANTED.sub("", raw)
    text = re.split(r"[/\\]", text)[-1].strip()
    if _DRIVE.match(text):
        text = text[2:].strip()
    if not text.replace(".", "").strip():
        return None
    stripped = text.lstrip(".")
    text = "_" * (len(text) - len(stripped)) + stripped
    return _fit(text, MAX_NAME_BYTES)


def numbered_filename(name: str, number: int) -> str:
    """``name`` with `` (number)`` before its extension, within ``MAX_NAME_BYTES`` bytes.

    Used to tell apart several files that arrive under the same name: ``a.mkv`` becomes
    ``a (2).mkv``. ``name`` must already be safe (a result of ``safe_filename``).
    """
    stem, ext = _split_extension(name)
    suffix = f" ({number}){ext}"
    budget = MAX_NAME_BYTES - len(suffix.encode())
    return _truncate_utf8(stem, budget).rstrip() + suffix


def filename_from_subject(subject: str) -> str | None:
    """The file name a poster put in a Usenet subject, made safe, or None if there is none.

    Two conventions cover nearly all posts: the name in double quotes
    (``[1/5] - "Movie.2019.mkv" yEnc (1/24) 12345``), or, without quotes, the last
    ``name.ext`` token before the ``yEnc`` marker, part counter and byte count
    (``Movie.2019.mkv (1/24)``). A quoted name is taken even without an extension, since
    obfuscated posts quote bare hashes; an unquoted token needs one, or it is just a word.
    """
    # Some indexers escape the quotes twice; the XML parser then leaves "&quot;" behind.
    text = subject.replace("&quot;", '"')
    quoted = [name for m in _QUOTED.finditer(text) if (name := safe_filename(m.group(1)))]
    # A title may be quoted too ('"Some Movie" [1/5] - "some.movie.mkv"'): prefer a file name.
    for name in quoted:
        if _looks_like_file(name):
            return name
    if quoted:
        return quoted[0]
    tokens = text.split()
    while tokens and _NOISE.fullmatch(tokens[-1]):
        tokens.pop()
    if not tokens:
        return None
    # A counter glued to the name, as in "name.mkv(1/24)".
    last = tokens[-1]
    counter = _PART_COUNT.search(last)
    if counter is not None and counter.end() == len(last):
        last = last[: counter.start()]
    candidate = last.strip("\"'")
    return safe_filename(candidate) if _looks_like_file(candidate) else None


def _looks_like_file(text: str) -> bool:
    stem, _, ext = text.rpartition(".")
    return bool(stem.strip(".")) and _EXTENSION.fullmatch(ext) is not None


def _split_extension(name: str) -> tuple[str, str]:
    """``("name", ".ext")``; a leading dot (".hidden") and over-long tails are not extensions."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext.encode()) > MAX_EXTENSION_BYTES:
        return name, ""
    return name[:dot], ext


def _fit(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, ext = _split_extension(name)
    return _truncate_utf8(stem, limit - len(ext.encode())).rstrip() + ext


def _truncate_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that fits in ``limit`` bytes, cut between characters."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: max(limit, 0)].decode(errors="ignore")


def extension(name: str) -> str:
    """The lower-case extension of a name, without the dot ("" when there is none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def rar_volume_name(name: str) -> tuple[str, int] | None:
    """(set name, volume number from 0) for a conventional RAR volume name, else None.

    ``x.part01.rar`` is volume 0 of "x"; ``x.rar``, ``x.r00``, ``x.r01``... are 0, 1, 2...;
    ``x.s00`` follows ``x.r99``; ``x.001``, ``x.002``... are 0, 1... (split numbering).
    """
    if m := _PART_RAR.match(name):
        return m["stem"], int(m["n"]) - 1
    if m := _FIRST_RAR.match(name):
        return m["stem"], 0
    if m := _OLD_RAR.match(name):
        return m["stem"], (ord(m["letter"].lower()) - ord("r")) * 100 + int(m["n"]) + 1
    if m := _NUMBERED.match(name):
        return m["stem"], int(m["n"]) - 1
    return None


def names_a_media_part(name: str) -> bool:
    """True when a posted name says the file is a video, a RAR volume or a PAR2 file.

    Obfuscated posts give every file a random name, without an extension or with a random
    one: such files can only be told apart by their content.
    """
    ext = extension(name)
    return ext in VIDEO_EXTENSIONS or ext == "par2" or rar_volume_name(name) is not None
