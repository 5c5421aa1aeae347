"""Reading quality from release titles: resolution, source, codecs, audio, group and flags.

Title reading follows the scene and P2P naming conventions that Radarr and Sonarr read
(``Title.Year.Edition.Resolution.Source.Audio.Codec-GROUP``), written from scratch. The title
is split at separators into a *head* (the movie title, up to the year) and a *tail* where the
quality markers live; short markers such as ``TS``, ``DV`` or ``DD`` are only believed in the
tail, so a film called "The Cam" is not mistaken for a cinema recording. Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

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
PRERELEASE = ("CAM", "TS", "TC", "SCR", "R5", "WORKPRINT")
DISC_IMAGES = ("BR-DISK", "DVD-R")
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
    cleaned, leading_group = clean_title(title)
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


def clean_title(title: str) -> tuple[str, str | None]:
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
