"""Choosing a release: merge duplicates, rank for streaming, and say why.

Pure: :class:`~server.discovery.newznab.NewznabItem` values in (their titles read by
``server.discovery.releases.titles``), frozen dataclasses out. The clock comes in as ``now``;
nothing here does I/O.

Ranking is for streaming to a browser while the download runs, not for archiving: a release that
starts quickly and plays without transcoding beats a bigger, "better" one. What plays how is
decided by the player's own logic (``transcode.compat.estimate`` from the title's codecs, for
the browser's measured capabilities or a User-Agent family), so what ranks as "plays in this
browser" does. The numbers are in the tables below (``_RESOLUTION_POINTS``, ``_SIZE_BANDS``,
``_SOURCE_POINTS``, the playback points and the constants beside them) so a reader can check
every reason a release gets.

The score says the order: releases are listed by score, best first. A release that may not
be fetched (excluded) loses ``_EXCLUDED_PENALTY`` and a pre-release copy ``_PRERELEASE_PENALTY``,
more than any other difference between two releases, so both rank below every other one
*because of their score*.
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
from server.discovery.releases.titles import (
    DISC_IMAGES,
    PRERELEASE,
    ParsedRelease,
    clean_title,
    parse_title,
)
from transcode.capabilities import AUDIO_KEYS, BrowserFamily, Capabilities
from transcode.compat import PlaybackPlan, estimate

#: The quality a person asks for with Watch; the ranking favours it.
Preference = Literal["720p", "1080p", "4K"]
PREFERENCES: tuple[Preference, ...] = ("720p", "1080p", "4K")

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
    cleaned, _ = clean_title(title)
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

# What the browser plays, by the player's plan for the title's codecs.
_VIDEO_PLAYS = 60  # copied: direct play or a cheap remux
_VIDEO_CONVERTED = -40  # a transcode for this browser (others of the household may play it)
_VIDEO_PLAYS_NOWHERE = -80  # XviD, VC-1, MPEG-2, 10-bit H.264: always a transcode
_SOME_BROWSER_PLAYS = frozenset({"H.264", "HEVC", "AV1", "VP9"})
_SOUND_PLAYS = 15
_SOUND_CONVERTED = -5  # to AAC: cheap, and other browsers of the household play it
_SOUND_PLAYS_NOWHERE = -10  # DTS, TrueHD, PCM: no browser plays them, always converted
_CODEC_UNKNOWN_REASON = "codec not stated"
# The title's names for what compat.estimate reads.
_TITLE_AUDIO = {"DTS:X": "dts", "DTS-HD MA": "dts-hd ma", "DTS-HD": "dts-hd", "PCM": "pcm_s16le"}
_TEN_BIT = re.compile(r"(?<![0-9])10[\s._-]?bit", re.IGNORECASE)
# Exclusions and pre-release copies: more than any other difference between two releases
# (the largest is about 1700 points), so these tiers never mix.
_EXCLUDED_PENALTY = -4000
_PRERELEASE_PENALTY = -2000
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
    browser: Capabilities | BrowserFamily = "chrome",
) -> list[RankedRelease]:
    """Merge duplicates and order releases best first for streaming to ``browser`` (its
    measured capabilities, or a User-Agent family).

    Order: higher score, then smaller size, then ``release_id``. Releases that may be fetched
    come first, then pre-release copies (only when ``allow_cam``), then excluded ones: their
    penalties put them there, so the scores are in order too.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if preference not in _RESOLUTION_POINTS:
        raise ValueError(f"preference must be 720p, 1080p or 4K, not {preference!r}")
    runtime = runtime_minutes if runtime_minutes and runtime_minutes > 0 else None
    ranked = [
        _score(candidate, runtime, preference, allow_cam, now, browser)
        for candidate in dedupe(items, indexer_priority=indexer_priority)
    ]
    ranked.sort(key=lambda r: (-r.score, r.size if r.size else math.inf, r.release_id))
    return ranked


def _score(
    candidate: Candidate,
    runtime: int | None,
    preference: Preference,
    allow_cam: bool,
    now: datetime,
    browser: Capabilities | BrowserFamily,
) -> RankedRelease:
    item = candidate.item
    parsed = parse_title(item.title)
    reasons: list[str] = []
    exclusions: list[str] = []
    score = 0

    if candidate.password == 1:
        exclusions.append("passworded (excluded)")
    if parsed.source in PRERELEASE and not allow_cam:
        exclusions.append(f"{parsed.source} excluded (a pre-release copy; allow_cam includes it)")
    if parsed.source in DISC_IMAGES:
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
    if parsed.source not in DISC_IMAGES:
        score += _SOURCE_POINTS.get(parsed.source, _SOURCE_POINTS[None])
    if parsed.source is None:
        reasons.append("source not stated")
    elif parsed.source in PRERELEASE:
        if allow_cam:
            reasons.append(f"{parsed.source} is a pre-release copy (ranked below real sources)")
    elif parsed.source == "REMUX":
        score += _REMUX_PENALTY
        reasons.append("REMUX is very large and slow to start streaming")
    elif parsed.source not in DISC_IMAGES:
        reasons.append(f"source {parsed.source}")

    # Size for the runtime.
    points, reason = _size_points(item.size, bucket, runtime)
    score += points
    reasons.append(reason)

    # What the browser can play, as the player would play it.
    points, said = _playback_points(parsed, item.title, browser)
    score += points
    reasons.extend(said)
    if parsed.hdr:
        if "DV" in parsed.hdr and len(parsed.hdr) == 1:
            score += _DV_ONLY_PENALTY
            reasons.append("Dolby Vision without an HDR10 fallback shows wrong colours in browsers")
        else:
            score += _HDR_PENALTY
            reasons.append(f"{'/'.join(parsed.hdr)} needs an HDR display or tone-mapping")
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
    if exclusions:
        score += _EXCLUDED_PENALTY
        reasons.append(f"ranked last: never fetched by itself ({_EXCLUDED_PENALTY})")
    elif parsed.source in PRERELEASE:
        score += _PRERELEASE_PENALTY
        reasons.append(f"ranked below every real source ({_PRERELEASE_PENALTY})")

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


def _playback_points(
    parsed: ParsedRelease, title: str, browser: Capabilities | BrowserFamily
) -> tuple[int, list[str]]:
    """Points and reasons for how ``browser`` plays the release, from the player's plan."""
    if parsed.codec is None:
        return 0, [_CODEC_UNKNOWN_REASON]
    audio = _TITLE_AUDIO.get(parsed.audio, parsed.audio) if parsed.audio else None
    plan = estimate(
        parsed.codec, audio, None, browser, bit_depth=10 if _TEN_BIT.search(title) else None
    )
    reasons: list[str] = []
    if plan.video_action == "copy":
        points = _VIDEO_PLAYS
        how = "directly" if plan.kind == "direct" else "(copied into HLS)"
        reasons.append(f"{parsed.codec} video plays in {plan.browser} {how}")
    else:
        ten_bit_avc = parsed.codec == "H.264" and _TEN_BIT.search(title)
        somewhere = parsed.codec in _SOME_BROWSER_PLAYS and not ten_bit_avc
        points = _VIDEO_CONVERTED if somewhere else _VIDEO_PLAYS_NOWHERE
        reasons.extend(r for r in plan.reasons if r.startswith("converting video"))
    if parsed.audio is not None:
        points_, said = _sound_points(parsed.audio, plan)
        points += points_
        reasons.append(said)
    return points, reasons


def _sound_points(name: str, plan: PlaybackPlan) -> tuple[int, str]:
    if plan.audio_action == "copy":
        return _SOUND_PLAYS, f"{name} sound plays in {plan.browser}"
    converting = next((r for r in plan.reasons if r.startswith("converting sound")), "")
    if _audio_key(name) in AUDIO_KEYS:
        return _SOUND_CONVERTED, converting or f"{name} sound is converted to AAC"
    said = converting or "sound converted to AAC"
    return _SOUND_PLAYS_NOWHERE, f"{said}: no browser plays {name}"


def _audio_key(name: str) -> str:
    return {"AC3": "ac3", "EAC3": "eac3", "AAC": "aac", "MP3": "mp3", "Opus": "opus",
            "FLAC": "flac"}.get(name, name.lower())  # fmt: skip


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
