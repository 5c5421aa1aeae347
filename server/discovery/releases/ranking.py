"""Choosing a release: read quality from release titles, merge duplicates, rank for streaming.

Pure: titles and :class:`~server.discovery.newznab.NewznabItem` values in, frozen
dataclasses out. The clock comes in as ``now``; nothing here does I/O.

Title reading follows the scene and P2P naming conventions that Radarr and Sonarr read
(``Title.Year.Edition.Resolution.Source.Audio.Codec-GROUP``), written from scratch. The title
is split at separators into a *head* (the movie title, up to the year) and a *tail* where the
quality markers live; short markers such as ``TS``, ``DV`` or ``DD`` are only believed in the
tail, so a film called "The Cam" is not mistaken for a cinema recording.

Ranking is for streaming to a browser while the download runs, not for archiving: a release that
starts quickly and plays without transcoding beats a bigger, "better" one. The numbers are in
the tables below (``_RESOLUTION_POINTS``, ``_SIZE_BANDS``, ``_SOURCE_POINTS``, ``_CODEC_POINTS``
and the constants beside them) so a reader can check every reason a release gets.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from server.discovery.newznab import NewznabItem

Preference = Literal["720p", "1080p", "4K"]

# --- title parsing -----------------------------------------------------------------------------

# Separators become spaces one character for one, so positions in the normalised text are the
# same as in the cleaned title (the group is cut from the cleaned title by position).
_SEPARATORS = re.compile(r"[._\s\[\](){}]")
_B = r"(?<![a-z0-9])"  # start of a token
_E = r"(?![a-z0-9])"  # end of a token
_EL = r"(?![a-z])"  # end of a token that may run into digits ("DD5.1", "BluRay1080p")


def _rx(body: str, end: str = _E) -> re.Pattern[str]:
    return re.compile(f"{_B}(?:{body}){end}", re.IGNORECASE)


_EXTENSION = re.compile(r"\.(?:mkv|mp4|m4v|avi|wmv|mov|nzb|iso|par2|rar)$", re.IGNORECASE)
# Site tags appended by re-posters and trackers, e.g. "[rarbg]", "[TGx]", "[a1b2c3d4]".
_TRAILING_BRACKET = re.compile(r"\s*\[[^\[\]\s]{1,24}\]\s*$")
# Re-poster and obfuscation suffixes that sit where the group belongs: "-GROUP-Obfuscated".
_REPOST_SUFFIX = re.compile(
    r"-(?:obfuscated|obfuscation|scrambled|postbot|xpost|asrequested|rakuv\d*|whiterev|"
    r"buymore|repost|sample)\s*$",
    re.IGNORECASE,
)
_LEADING_GROUP = re.compile(r"^\s*\[([^\[\]]{1,40})\]\s*")
_WEBSITE_PREFIX = re.compile(r"^\s*\[?\s*www\.[a-z0-9-]+\.[a-z]{2,4}\s*\]?\s*-?\s*", re.IGNORECASE)

_YEAR = _rx(r"19\d\d|20\d\d")

# Markers unlikely to be words of a film title; they end the head when no year is found.
_STRONG = _rx(
    r"(?:2160|1080|720|576|480)[pi]|blu[\s-]?ray|web[\s-]?dl|web[\s-]?rip|hdtv|remux|"
    r"dvd[\s-]?rip|bd[\s-]?rip|br[\s-]?rip|[xh][\s-]?26[45]|hevc|xvid|divx",
    _EL,
)

_RESOLUTIONS = ("2160p", "1080p", "720p", "576p", "480p")
_EXPLICIT_RESOLUTION = re.compile(
    r"(?<![0-9])(?:(2160|1080|720|576|480)[pi]|(?:3840|4096)x(2160)|1920x(1080)|1280x(720))"
    r"(?![a-z])",
    re.IGNORECASE,
)
# "4K"/"UHD" mean 2160p, except in "4K Remastered" (a 1080p release of a 4K restoration).
_FOUR_K = _rx(r"4k|uhd", rf"{_E}(?![\s-]*(?:remaster|restor))")

_REMUX = re.compile(r"(?<![a-z0-9])(?:bd|uhd|bluray)?[\s-]?remux(?![a-z0-9])", re.IGNORECASE)
_PRERELEASE = ("CAM", "TS", "TC", "SCR", "R5", "WORKPRINT")
_DISC_IMAGES = ("BR-DISK", "DVD-R")
# First match in this order wins: a title saying "REMUX" and "BluRay" is a remux, and a
# pre-release marker outranks whatever else a re-encoder wrote beside it.
_SOURCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("REMUX", _REMUX),
    (
        "BR-DISK",
        _rx(
            r"complete[\s-]+(?:uhd[\s-]+)?blu[\s-]?ray|bd[\s-]?(?:25|50|66|100)|bdmv|bd[\s-]?iso|"
            r"br[\s-]?disk"
        ),
    ),
    ("CAM", _rx(r"(?:hd|hq|new)?[\s-]?cam(?:[\s-]?rip)?")),
    ("TS", _rx(r"(?:hd[\s-]?)?ts(?:[\s-]?rip)?|telesync|pdvd|pre[\s-]?dvd(?:[\s-]?rip)?")),
    ("TC", _rx(r"(?:hd[\s-]?)?tc|telecine")),
    ("SCR", _rx(r"(?:dvd|bd|web)?[\s-]?scr(?:eener)?|screener")),
    ("R5", _rx(r"r5(?:[\s-]?line)?")),
    ("WORKPRINT", _rx(r"workprint")),
    # HDRip is a re-encode, almost always of a web source: ranked with WEBRip.
    ("WEBRip", _rx(r"web[\s-]?rip|web[\s-]?cap|web[\s-]?dl[\s-]?rip|hd[\s-]?rip", _EL)),
    ("WEB-DL", _rx(r"web[\s-]?dl|web(?![\s-]?(?:rip|cap|scr)(?![a-z]))", _EL)),
    ("BluRay", _rx(r"blu[\s-]?ray|bd[\s-]?rip|br[\s-]?rip|bd|uhd[\s-]?bd|hd[\s-]?dvd|bdmux", _EL)),
    ("HDTV", _rx(r"hdtv(?:[\s-]?rip)?|pdtv|sdtv|tv[\s-]?rip|dsr(?:ip)?|sat[\s-]?rip", _EL)),
    ("DVD-R", _rx(r"dvd[\s-]?r|dvd[\s-]?[59]|dvd[\s-]?iso|video[\s-]?ts")),
    ("DVD", _rx(r"dvd(?:[\s-]?rip)?", _EL)),
    # A streaming service's tag alone still means a web download.
    ("WEB-DL", _rx(r"amzn|nf|dsnp|dsny|hmax|atvp|pcok|hulu|itunes|netflix|amazon")),
)
_RIP_SD = _rx(
    r"bd[\s-]?rip|br[\s-]?rip|dvd(?:[\s-]?rip)?|dvd[\s-]?r|sdtv|pdtv|tv[\s-]?rip|xvid|divx"
)
# A Blu-ray release naming the disc's own codec and no encoder is the untouched disc.
_DISC_CODEC = _rx(r"avc|vc[\s-]?1|mpeg[\s-]?2")
_ENCODER = _rx(r"[xh][\s-]?26[45]")
_RIP_TAG = _rx(r"bd[\s-]?rip|br[\s-]?rip|hd[\s-]?rip")

_CODECS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("H.264", _rx(r"[xh][\s-]?264|avc")),
    ("HEVC", _rx(r"[xh][\s-]?265|hevc")),
    ("AV1", _rx(r"av1")),
    ("VP9", _rx(r"vp9")),
    ("XviD", _rx(r"xvid")),
    ("DivX", _rx(r"divx")),
    ("VC-1", _rx(r"vc[\s-]?1")),
    ("MPEG-2", _rx(r"mpeg[\s-]?2")),
)

_HDR: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("DV", _rx(r"dv|dovi|dolby[\s-]?vision")),
    ("HDR10+", _rx(r"hdr10(?:\+|plus|p)", r"(?![a-z0-9])")),
    ("HDR10", _rx(r"hdr10", r"(?![a-z0-9+])")),
    ("HDR", _rx(r"hdr", r"(?![a-z0-9+])")),
    ("HLG", _rx(r"hlg")),
)

# Highest first: the label of the best track named in the title.
_AUDIO: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("TrueHD", _rx(r"true[\s-]?hd", _EL)),
    ("DTS-HD MA", _rx(r"dts[\s-]?hd[\s-]?ma|dts[\s-]?ma", _EL)),
    ("DTS:X", _rx(r"dts[\s-]?x")),
    ("DTS-HD", _rx(r"dts[\s-]?hd(?:[\s-]?hra?)?", _EL)),
    ("DTS", _rx(r"dts(?:[\s-]?es)?", _EL)),
    ("EAC3", _rx(r"e[\s-]?ac[\s-]?3|ddp|dd\+|dd[\s-]?plus|dolby[\s-]?digital[\s-]?plus", _EL)),
    ("AC3", _rx(r"ac[\s-]?3|dd|dolby[\s-]?digital", r"(?![a-z+])")),
    ("FLAC", _rx(r"flac", _EL)),
    ("PCM", _rx(r"l?pcm", _EL)),
    ("AAC", _rx(r"(?:he[\s-]?)?aac", _EL)),
    ("Opus", _rx(r"opus", _EL)),
    ("MP3", _rx(r"mp3", _EL)),
)
_ATMOS = _rx(r"atmos")
_CHANNELS = re.compile(r"(?<![0-9])([124567])\s([01])(?![0-9])")
_CHANNELS_CH = _rx(r"([268])ch")
_CH_COUNT = MappingProxyType({"2": "2.0", "6": "5.1", "8": "7.1"})

_PROPER = _rx(r"(proper|repack|rerip)(\d?)")
_REAL = _rx(r"real", r"(?=[\s-]+(?:proper|repack))")

_EDITIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Extended", _rx(r"extended(?:[\s-]+(?:cut|edition|version))?")),
    ("Director's Cut", _rx(r"director'?s?[\s-]*cut")),
    ("Theatrical", _rx(r"theatrical(?:[\s-]+(?:cut|edition|version))?")),
    ("Unrated", _rx(r"unrated")),
    ("Uncut", _rx(r"uncut")),
    ("Remastered", _rx(r"(?:4k[\s-]*)?(?:remaster(?:ed)?|restored|restoration)")),
    ("IMAX", _rx(r"imax(?:[\s-]?enhanced)?")),
    ("Criterion", _rx(r"criterion(?:[\s-]+collection)?")),
    ("Ultimate", _rx(r"ultimate[\s-]+(?:cut|edition)")),
    ("Special Edition", _rx(r"special[\s-]+edition")),
    ("Final Cut", _rx(r"final[\s-]+cut")),
    ("Collector's Edition", _rx(r"collector'?s?[\s-]+edition")),
    ("Anniversary", _rx(r"(?:\d{2,3}th[\s-]+)?anniversary(?:[\s-]+edition)?")),
    ("Open Matte", _rx(r"open[\s-]+matte")),
)
_THREE_D = _rx(r"3d|h[\s-]?sbs|half[\s-]?sbs|sbs|h[\s-]?ou|half[\s-]?ou|mvc")
_HARDCODED = _rx(r"hc|hc[\s-]?subs?|hardsub(?:bed|s)?|hard[\s-]?coded(?:[\s-]?subs?)?|korsub")

_LANGUAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Multi", _rx(r"multi(?:[\s-]?(?:lang|language|audio))?")),
    ("English", _rx(r"english|eng")),
    ("German", _rx(r"german|deutsch|ger")),
    ("French", _rx(r"french|truefrench|vff|vfq|vf2|vfi")),
    ("Italian", _rx(r"italian|ita")),
    ("Spanish", _rx(r"spanish|castellano|latino|esp")),
    ("Dutch", _rx(r"dutch|flemish")),
    ("Nordic", _rx(r"nordic")),
    ("Danish", _rx(r"danish")),
    ("Swedish", _rx(r"swedish|swe")),
    ("Norwegian", _rx(r"norwegian")),
    ("Finnish", _rx(r"finnish")),
    ("Polish", _rx(r"polish|plsub(?:bed)?|pldub")),
    ("Russian", _rx(r"russian|rus")),
    ("Portuguese", _rx(r"portuguese|pt[\s-]?br")),
    ("Hindi", _rx(r"hindi")),
    ("Japanese", _rx(r"japanese|jpn")),
    ("Korean", _rx(r"korean|kor")),
    ("Chinese", _rx(r"chinese|mandarin|cantonese")),
    ("Turkish", _rx(r"turkish")),
    ("Hungarian", _rx(r"hungarian|hun")),
    ("Czech", _rx(r"czech|cze")),
)

# Groups whose own name contains a hyphen, so "the token after the last '-'" would cut them.
_HYPHENATED_GROUPS = ("D-Z0N3", "DX-TV", "VH-PROD", "E-Sub")
# Letters and digits only: an underscore in the last token is a word separator far more often
# than part of a group's name ("..._Deep-House_Tunes").
_GROUP_TOKEN = re.compile(r"[A-Za-z0-9]{1,30}")
# Tokens that follow a hyphen inside a quality marker ("WEB-DL", "DTS-HD", "Blu-Ray", "DTS-X").
_NOT_GROUPS = frozenset(
    {
        "dl", "hd", "rip", "ray", "ma", "x", "es", "hra", "dts", "sub", "subs", "dub", "audio",
        "cd", "web", "sbs", "ou", "ac3", "aac", "dd", "ddp", "eac3", "flac", "mp3", "dv", "hdr",
        "hdr10", "hevc", "avc", "remux", "bluray", "webrip", "webdl", "hdtv", "dvd", "dvdrip",
        "bdrip", "brrip", "proper", "repack", "internal", "limited", "cut", "edition", "multi",
        "eng", "en", "dual", "tv", "uhd", "4k", "sdr", "atmos", "truehd", "xvid", "divx",
        "cam", "ts", "tc", "scr", "r",
    }
)  # fmt: skip
_NOT_GROUP_PATTERN = re.compile(r"\d+[pi]?|[xh]26[45]|s\d+e\d+|\d+ch", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParsedRelease:
    """What a release title says. Fields the title does not mention are None, False or empty."""

    movie_title: str
    year: int | None
    #: "480p", "576p", "720p", "1080p" or "2160p".
    resolution: str | None
    #: True when the title names no resolution and SD was assumed from an SD-only marker
    #: (DVDRip, BRRip without a resolution, XviD, SDTV ...).
    resolution_inferred: bool
    #: REMUX, BR-DISK, BluRay, WEB-DL, WEBRip, HDTV, DVD-R, DVD, or a pre-release source
    #: (CAM, TS, TC, SCR, R5, WORKPRINT). BDRip/BRRip count as BluRay, HDRip as WEBRip.
    source: str | None
    #: H.264, HEVC, AV1, VP9, XviD, DivX, VC-1 or MPEG-2.
    codec: str | None
    #: Subset of ("DV", "HDR10+", "HDR10", "HDR", "HLG") in that order.
    hdr: tuple[str, ...]
    #: The best audio format named: TrueHD, DTS-HD MA, DTS:X, DTS-HD, DTS, EAC3, AC3, FLAC, PCM,
    #: AAC, Opus or MP3.
    audio: str | None
    audio_channels: str | None
    atmos: bool
    #: How many times the release was re-done: PROPER, REPACK, RERIP (REPACK2 counts 2).
    proper: int
    editions: tuple[str, ...]
    is_3d: bool
    hardcoded_subs: bool
    group: str | None
    #: Language hints from the title (Multi, German, French ...); empty means "not stated".
    languages: tuple[str, ...]


def parse_title(title: str) -> ParsedRelease:
    """Read a release title. Never raises: what cannot be read is left empty."""
    cleaned, leading_group = _clean(title)
    norm = _SEPARATORS.sub(" ", cleaned)

    strong = _STRONG.search(norm)
    first_strong = strong.start() if strong else None
    year_match: re.Match[str] | None = None
    for candidate in _YEAR.finditer(norm):
        # A year opening the title is part of the name ("2001 A Space Odyssey", "1917").
        if candidate.start() == 0 or not norm[: candidate.start()].strip():
            continue
        if first_strong is not None and candidate.start() >= first_strong:
            break
        year_match = candidate  # the last year before the quality markers is the film's
    if year_match is not None:
        tail_from = year_match.end()
    elif first_strong is not None:
        tail_from = first_strong
    else:
        head = re.match(r"\s*\S+", norm)
        tail_from = head.end() if head else len(norm)

    group, group_at = _group(cleaned, tail_from)
    if group is None:
        group = leading_group
    end = group_at

    def find(pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(norm, tail_from, end)

    starts: list[int] = []

    def note(match: re.Match[str] | None) -> re.Match[str] | None:
        if match is not None:
            starts.append(match.start())
        return match

    resolution = None
    explicit = note(find(_EXPLICIT_RESOLUTION))
    if explicit is not None:
        digits = next(g for g in explicit.groups() if g)
        resolution = f"{digits}p"
    elif note(find(_FOUR_K)) is not None:
        resolution = "2160p"

    source = None
    for label, pattern in _SOURCES:
        if note(find(pattern)) is not None:
            source = label
            break
    if source == "BluRay" and find(_DISC_CODEC) and not find(_ENCODER) and not find(_RIP_TAG):
        source = "BR-DISK"

    codec = None
    codec_at = len(norm) + 1
    for label, pattern in _CODECS:
        match = note(find(pattern))
        if match is not None and match.start() < codec_at:
            codec, codec_at = label, match.start()

    hdr_found = [label for label, pattern in _HDR if note(find(pattern)) is not None]
    if "HDR" in hdr_found and ("HDR10" in hdr_found or "HDR10+" in hdr_found):
        hdr_found.remove("HDR")  # "HDR.HDR10" says the same thing twice

    audio = next((label for label, pattern in _AUDIO if note(find(pattern)) is not None), None)
    channels = None
    channel_match = _CHANNELS.search(norm, tail_from, end)
    if channel_match is not None:
        channels = f"{channel_match.group(1)}.{channel_match.group(2)}"
    else:
        ch_match = _CHANNELS_CH.search(norm, tail_from, end)
        if ch_match is not None:
            channels = _CH_COUNT[ch_match.group(1)]

    proper = 0
    for match in _PROPER.finditer(norm, tail_from, end):
        starts.append(match.start())
        proper += int(match.group(2)) if match.group(2) else 1
    proper += len(_REAL.findall(norm, tail_from, end))

    editions = tuple(label for label, pattern in _EDITIONS if note(find(pattern)) is not None)
    languages = tuple(label for label, pattern in _LANGUAGES if note(find(pattern)) is not None)
    is_3d = note(find(_THREE_D)) is not None
    hardcoded = note(find(_HARDCODED)) is not None
    atmos = note(find(_ATMOS)) is not None

    inferred = False
    if resolution is None and find(_RIP_SD) is not None:
        resolution, inferred = "480p", True

    if year_match is not None:
        head_end = year_match.start()
    else:
        head_end = min([*starts, end] + ([first_strong] if first_strong is not None else []))
    return ParsedRelease(
        movie_title=_tidy_title(norm[:head_end]),
        year=int(year_match.group(0)) if year_match else None,
        resolution=resolution,
        resolution_inferred=inferred,
        source=source,
        codec=codec,
        hdr=tuple(hdr_found),
        audio=audio,
        audio_channels=channels,
        atmos=atmos,
        proper=proper,
        editions=editions,
        is_3d=is_3d,
        hardcoded_subs=hardcoded,
        group=group,
        languages=languages,
    )


def _clean(title: str) -> tuple[str, str | None]:
    """Strip what is not part of the release name; return it and a leading ``[Group]``."""
    text = title.strip()
    text = _WEBSITE_PREFIX.sub("", text, count=1)
    leading_group = None
    leading = _LEADING_GROUP.match(text)
    if leading is not None:
        candidate = leading.group(1).strip()
        if _is_group(candidate):
            leading_group = candidate
        text = text[leading.end() :]
    text = _strip_suffixes(text)
    # One site tag at most: "[1080p] [BluRay] [YTS.MX]" keeps its quality brackets.
    text = _strip_suffixes(_TRAILING_BRACKET.sub("", text, count=1))
    return text, leading_group


def _strip_suffixes(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _REPOST_SUFFIX.sub("", _EXTENSION.sub("", text)).rstrip()
    return text


def _group(cleaned: str, tail_from: int) -> tuple[str | None, int]:
    """The release group after the last hyphen of the tail, and where its hyphen is."""
    for name in _HYPHENATED_GROUPS:
        at = len(cleaned) - len(name) - 1
        if at >= tail_from and cleaned.lower().endswith("-" + name.lower()):
            return cleaned[at + 1 :], at
    at = cleaned.rfind("-")
    if at < tail_from:
        return None, len(cleaned)
    candidate = cleaned[at + 1 :].strip()
    if not _is_group(candidate):
        return None, len(cleaned)
    return candidate, at


def _is_group(candidate: str) -> bool:
    return (
        _GROUP_TOKEN.fullmatch(candidate) is not None
        and candidate.lower() not in _NOT_GROUPS
        and _NOT_GROUP_PATTERN.fullmatch(candidate) is None
    )


def _tidy_title(head: str) -> str:
    return " ".join(head.split()).strip(" -")


# --- duplicates --------------------------------------------------------------------------------

#: Two copies are the same release when their normalised titles match and their sizes differ
#: by at most this fraction of the larger one (indexers round or count headers differently).
DUPLICATE_SIZE_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class Candidate:
    """A release as seen on one or more indexers; ``item`` is the copy that will be fetched."""

    item: NewznabItem
    #: The kept copy's indexer first, then the others in name order.
    indexers: tuple[str, ...]
    #: Grabs summed over the copies (None when no copy reported any).
    grabs: int | None
    #: The most cautious password flag any copy carried (an indexer that saw a password wins).
    password: int | None


def release_id(indexer: str, guid: str) -> str:
    """The stable id of an indexer's item, used by the API's ``release_id``."""
    digest = hashlib.sha256(f"{indexer}\n{guid}".encode()).hexdigest()
    return f"rel_{digest[:20]}"


def normalised_title(title: str) -> str:
    """Lower-case words of the release name, so separators and site tags do not matter."""
    cleaned, _ = _clean(title)
    return " ".join(re.findall(r"[a-z0-9]+", cleaned.lower()))


def dedupe(
    items: Iterable[NewznabItem], *, indexer_priority: Mapping[str, int] | None = None
) -> list[Candidate]:
    """Merge the same release found on several indexers into one :class:`Candidate`.

    The copy kept is the best-sourced: the indexer with the lowest ``indexer_priority`` number
    (the configuration's ``priority``; unknown indexers last), then a copy known not to be
    passworded, then the most grabbed, then by indexer name and guid so the choice is stable.
    """
    priority = indexer_priority or {}
    seen: set[str] = set()
    by_title: dict[str, list[NewznabItem]] = {}
    for item in items:
        rid = release_id(item.indexer, item.guid)
        if rid in seen:
            continue  # the same item twice (overlapping pages)
        seen.add(rid)
        by_title.setdefault(normalised_title(item.title), []).append(item)

    def preference(item: NewznabItem) -> tuple[int, int, int, str, str]:
        password_rank = {0: 0, None: 1, 2: 2}.get(item.password, 3)
        return (
            priority.get(item.indexer, 1_000_000),
            password_rank,
            -(item.grabs or 0),
            item.indexer,
            item.guid,
        )

    merged: list[Candidate] = []
    for key in sorted(by_title):
        clusters: list[list[NewznabItem]] = []
        for item in sorted(by_title[key], key=preference):
            home = next((c for c in clusters if _same_size(c[0].size, item.size)), None)
            if home is None:
                clusters.append([item])
            else:
                home.append(item)
        for cluster in clusters:
            kept = cluster[0]
            others = sorted({i.indexer for i in cluster[1:]} - {kept.indexer})
            grabs = [i.grabs for i in cluster if i.grabs is not None]
            passwords = [i.password for i in cluster if i.password is not None]
            merged.append(
                Candidate(
                    item=kept,
                    indexers=(kept.indexer, *others),
                    grabs=sum(grabs) if grabs else None,
                    password=max(passwords, key=_password_severity) if passwords else None,
                )
            )
    return merged


def _same_size(a: int | None, b: int | None) -> bool:
    if not a or not b:
        return False  # an unknown size never proves two posts are the same
    return abs(a - b) <= DUPLICATE_SIZE_TOLERANCE * max(a, b)


def _password_severity(flag: int) -> int:
    return {0: 0, 2: 1, 1: 2}.get(flag, 2)


# --- ranking -----------------------------------------------------------------------------------

# Points for the resolution, by the household's preference. The preferred one leads by 150
# points, more than any codec or size adjustment, so it wins unless something is wrong with it;
# one step down beats one step up because smaller files start sooner.
_RESOLUTION_POINTS: Mapping[Preference, Mapping[str, int]] = MappingProxyType(
    {
        "720p": MappingProxyType({"2160p": 60, "1080p": 250, "720p": 400, "SD": 120}),
        "1080p": MappingProxyType({"2160p": 200, "1080p": 400, "720p": 250, "SD": 80}),
        "4K": MappingProxyType({"2160p": 400, "1080p": 250, "720p": 120, "SD": 30}),
    }
)
_UNKNOWN_RESOLUTION_POINTS = 40

_SOURCE_POINTS: Mapping[str | None, int] = MappingProxyType(
    {
        "BluRay": 150,
        "WEB-DL": 140,
        "REMUX": 120,
        "WEBRip": 110,
        "HDTV": 70,
        "DVD": 60,
        None: 40,
        # Only scored when allow_cam; they are ranked below every real source regardless.
        "R5": 40,
        "SCR": 30,
        "TC": 20,
        "TS": 10,
        "CAM": 0,
        "WORKPRINT": 0,
    }
)
_REMUX_PENALTY = -100


@dataclass(frozen=True, slots=True)
class _SizeBand:
    """Megabytes (10**6 bytes) per minute of film."""

    floor: float  # below: probably fake, a sample, or very poor quality
    low: float  # floor..low: lean but watchable
    high: float  # low..high: what good encodes of this resolution weigh
    ceiling: float  # high..ceiling: slow to start; above: too big to stream comfortably


# A 120-minute film: SD 0.7-2.4 GB good, 720p 2.2-8.4 GB, 1080p 4.2-15.6 GB, 2160p 12-36 GB.
_SIZE_BANDS: Mapping[str, _SizeBand] = MappingProxyType(
    {
        "SD": _SizeBand(floor=4, low=6, high=20, ceiling=40),
        "720p": _SizeBand(floor=10, low=18, high=70, ceiling=120),
        "1080p": _SizeBand(floor=20, low=35, high=130, ceiling=250),
        "2160p": _SizeBand(floor=60, low=100, high=300, ceiling=650),
        "unknown": _SizeBand(floor=4, low=6, high=130, ceiling=650),
    }
)
_SIZE_FITS = 60
_SIZE_LEAN = 0
_SIZE_LARGE = -40
_SIZE_TOO_SMALL = -250
_SIZE_TOO_BIG = -150
_SIZE_UNKNOWN = -50
_ASSUMED_RUNTIME = 120

# What a browser plays without Matinee transcoding the video.
_CODEC_POINTS: Mapping[str | None, tuple[int, str]] = MappingProxyType(
    {
        "H.264": (60, "H.264 plays directly in every browser"),
        "AV1": (40, "AV1 plays directly in modern browsers"),
        "VP9": (40, "VP9 plays directly in modern browsers"),
        "HEVC": (-40, "HEVC may need transcoding in some browsers"),
        "XviD": (-80, "XviD needs transcoding (no browser plays it)"),
        "DivX": (-80, "DivX needs transcoding (no browser plays it)"),
        "VC-1": (-100, "VC-1 needs transcoding (no browser plays it)"),
        "MPEG-2": (-100, "MPEG-2 needs transcoding (no browser plays it)"),
        None: (0, "codec not stated"),
    }
)
_BROWSER_AUDIO = frozenset({"AAC", "Opus", "MP3"})
_TRANSCODED_AUDIO = frozenset({"TrueHD", "DTS-HD MA", "DTS:X", "DTS-HD", "DTS", "PCM"})
_AUDIO_DIRECT = 15
_AUDIO_TRANSCODE = -10
_HDR_PENALTY = -20
_DV_ONLY_PENALTY = -80
_THREE_D_PENALTY = -200
_HARDCODED_PENALTY = -60
_PROPER_POINTS = 15
_PROPER_MAX = 30
_MAYBE_PASSWORDED_PENALTY = -150
_GRABS_MAX = 40  # 10 points per factor of ten grabs
_AGE_MAX_PENALTY = 40  # one point per 90 days: old posts lose articles to takedowns and retention
_AGE_DAYS_PER_POINT = 90
_DATE_UNKNOWN_PENALTY = -10
_MOVIE_CATEGORIES = range(2000, 3000)
_CUSTOM_CATEGORY_START = 100_000  # indexer-specific ids say nothing about the standard tree


@dataclass(frozen=True, slots=True)
class RankedRelease:
    """A release with its score; the first ten fields are the API's Release."""

    release_id: str
    title: str
    size: int | None
    #: The resolution ("1080p"), including an assumed "480p"; None when unknown.
    quality: str | None
    source: str | None
    codec: str | None
    group: str | None
    indexer: str
    pub_date: datetime | None
    score: int
    reasons: tuple[str, ...]
    #: Excluded releases are ranked last and must not be fetched automatically; the first
    #: reason says why.
    excluded: bool
    indexers: tuple[str, ...]
    #: The NZB URL; it may carry the indexer's API key, so it is never part of the API shape.
    link: str
    guid: str
    parsed: ParsedRelease

    def as_api(self) -> dict[str, object]:
        """The API's Release object, plus ``reasons`` so a person sees why."""
        return {
            "release_id": self.release_id,
            "title": self.title,
            "size": self.size,
            "quality": self.quality,
            "source": self.source,
            "codec": self.codec,
            "group": self.group,
            "indexer": self.indexer,
            "pub_date": self.pub_date.isoformat() if self.pub_date else None,
            "score": self.score,
            "reasons": list(self.reasons),
        }


def rank(
    items: Iterable[NewznabItem],
    *,
    runtime_minutes: int | None,
    preference: Preference = "1080p",
    allow_cam: bool = False,
    now: datetime,
    indexer_priority: Mapping[str, int] | None = None,
) -> list[RankedRelease]:
    """Merge duplicates and order releases best first for streaming.

    Order: releases that may be fetched, then pre-release copies (only when ``allow_cam``),
    then excluded ones; within each, higher score, then smaller size, then ``release_id``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if preference not in _RESOLUTION_POINTS:
        raise ValueError(f"preference must be 720p, 1080p or 4K, not {preference!r}")
    runtime = runtime_minutes if runtime_minutes and runtime_minutes > 0 else None
    ranked = [
        _score(candidate, runtime, preference, allow_cam, now)
        for candidate in dedupe(items, indexer_priority=indexer_priority)
    ]
    ranked.sort(
        key=lambda r: (
            r.excluded,
            r.parsed.source in _PRERELEASE,
            -r.score,
            r.size if r.size else math.inf,
            r.release_id,
        )
    )
    return ranked


def _score(
    candidate: Candidate,
    runtime: int | None,
    preference: Preference,
    allow_cam: bool,
    now: datetime,
) -> RankedRelease:
    item = candidate.item
    parsed = parse_title(item.title)
    reasons: list[str] = []
    exclusions: list[str] = []
    score = 0

    if candidate.password == 1:
        exclusions.append("passworded (excluded)")
    if parsed.source in _PRERELEASE and not allow_cam:
        exclusions.append(f"{parsed.source} excluded (a pre-release copy; allow_cam includes it)")
    if parsed.source in _DISC_IMAGES:
        exclusions.append(f"{parsed.source} excluded (a disc image cannot be streamed)")
    standard = [c for c in item.categories if c < _CUSTOM_CATEGORY_START]
    if standard and not any(c in _MOVIE_CATEGORIES for c in standard):
        listed = ", ".join(str(c) for c in standard)
        exclusions.append(f"not in a movie category ({listed}; excluded)")

    # Resolution.
    bucket = _bucket(parsed.resolution)
    if bucket is None:
        score += _UNKNOWN_RESOLUTION_POINTS
        reasons.append("resolution not stated")
    else:
        score += _RESOLUTION_POINTS[preference][bucket]
        reasons.append(_resolution_reason(parsed, bucket, preference))

    # Source.
    if parsed.source not in _DISC_IMAGES:
        score += _SOURCE_POINTS.get(parsed.source, _SOURCE_POINTS[None])
    if parsed.source is None:
        reasons.append("source not stated")
    elif parsed.source in _PRERELEASE:
        if allow_cam:
            reasons.append(f"{parsed.source} is a pre-release copy (ranked below real sources)")
    elif parsed.source == "REMUX":
        score += _REMUX_PENALTY
        reasons.append("REMUX is very large and slow to start streaming")
    elif parsed.source not in _DISC_IMAGES:
        reasons.append(f"source {parsed.source}")

    # Size for the runtime.
    points, reason = _size_points(item.size, bucket, runtime)
    score += points
    reasons.append(reason)

    # What the browser can play.
    points, reason = _CODEC_POINTS.get(parsed.codec, _CODEC_POINTS[None])
    score += points
    reasons.append(reason)
    if parsed.hdr:
        if "DV" in parsed.hdr and len(parsed.hdr) == 1:
            score += _DV_ONLY_PENALTY
            reasons.append("Dolby Vision without an HDR10 fallback shows wrong colours in browsers")
        else:
            score += _HDR_PENALTY
            reasons.append(f"{'/'.join(parsed.hdr)} needs an HDR display or tone-mapping")
    if parsed.audio in _BROWSER_AUDIO:
        score += _AUDIO_DIRECT
        reasons.append(f"{parsed.audio} audio plays directly")
    elif parsed.audio in _TRANSCODED_AUDIO:
        score += _AUDIO_TRANSCODE
        reasons.append(f"{parsed.audio} audio is converted to AAC for browsers")
    if parsed.is_3d:
        score += _THREE_D_PENALTY
        reasons.append("3D release (side-by-side or over-under picture)")
    if parsed.hardcoded_subs:
        score += _HARDCODED_PENALTY
        reasons.append("hardcoded subtitles")
    if candidate.password == 2:
        score += _MAYBE_PASSWORDED_PENALTY
        reasons.append("the indexer says it may contain a passworded archive")
    if parsed.proper:
        score += min(_PROPER_MAX, _PROPER_POINTS * parsed.proper)
        reasons.append("PROPER/REPACK fixes an earlier release")
    foreign = [lang for lang in parsed.languages if lang != "English"]
    if foreign:
        reasons.append(f"language hint: {', '.join(foreign)}")

    # Popularity and age.
    if candidate.grabs:
        score += min(_GRABS_MAX, round(10 * math.log10(1 + candidate.grabs)))
        reasons.append(f"grabbed {candidate.grabs} times")
    posted = item.usenetdate or item.pub_date
    if posted is None:
        score += _DATE_UNKNOWN_PENALTY
        reasons.append("post date unknown")
    else:
        days = max(0, (now - posted).days)
        score -= min(_AGE_MAX_PENALTY, days // _AGE_DAYS_PER_POINT)
        reasons.append(f"posted {days} days ago")
    if len(candidate.indexers) > 1:
        reasons.append(f"also on {', '.join(candidate.indexers[1:])}")

    return RankedRelease(
        release_id=release_id(item.indexer, item.guid),
        title=item.title,
        size=item.size,
        quality=parsed.resolution,
        source=parsed.source,
        codec=parsed.codec,
        group=parsed.group,
        indexer=item.indexer,
        pub_date=item.pub_date,
        score=score,
        reasons=(*exclusions, *reasons),
        excluded=bool(exclusions),
        indexers=candidate.indexers,
        link=item.link,
        guid=item.guid,
        parsed=parsed,
    )


def _bucket(resolution: str | None) -> str | None:
    if resolution in ("480p", "576p"):
        return "SD"
    return resolution


def _resolution_reason(parsed: ParsedRelease, bucket: str, preference: Preference) -> str:
    wanted = "2160p" if preference == "4K" else preference
    label = f"SD ({parsed.resolution})" if bucket == "SD" else bucket
    if parsed.resolution_inferred:
        label += ", assumed: the title names no resolution"
    if bucket == wanted:
        return f"{label} matches your {preference} preference"
    order = ("SD", "720p", "1080p", "2160p")
    direction = "above" if order.index(bucket) > order.index(wanted) else "below"
    return f"{label} is {direction} your {preference} preference"


def _size_points(size: int | None, bucket: str | None, runtime: int | None) -> tuple[int, str]:
    if not size:
        return _SIZE_UNKNOWN, "size unknown"
    band = _SIZE_BANDS[bucket or "unknown"]
    minutes = runtime or _ASSUMED_RUNTIME
    per_minute = size / 1_000_000 / minutes
    film = (
        f"a {runtime} min film" if runtime else f"a film (runtime unknown, {minutes} min assumed)"
    )
    what = f"size {format_size(size)}"
    if per_minute < band.floor:
        return _SIZE_TOO_SMALL, f"{what} is small for {film}: probably fake or poor quality"
    if per_minute < band.low:
        return _SIZE_LEAN, f"{what} is lean for {film}"
    if per_minute <= band.high:
        return _SIZE_FITS, f"{what} suits {film}"
    if per_minute <= band.ceiling:
        return _SIZE_LARGE, f"{what} is large for {film}: slower to start"
    return _SIZE_TOO_BIG, f"{what} is too big to stream {film} comfortably"


def format_size(size: int) -> str:
    """Decimal units, as indexers and file managers show them: "1.2 GB", "700 MB"."""
    if size >= 1_000_000_000:
        return f"{size / 1_000_000_000:.1f} GB"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.0f} MB"
    return f"{size / 1000:.0f} kB"
