"""How one browser gets one film (pure): the plan from its measured capabilities, the audio track
from an explicit choice or the household's languages, an image subtitle burned in on request,
and the lists of tracks the player offers.

The HTTP layers above turn a ``Choice`` into URLs; nothing here knows about tokens or paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import InvalidInput
from server.playback.outputs import output_for, output_name
from server.playback.subtitles import ExternalSubtitle
from transcode.capabilities import (
    Capabilities,
    CapabilitiesError,
    for_family,
    parse_capabilities,
)
from transcode.compat import PlanKind, PlaybackPlan, browser_family, language_key, plan
from transcode.probe import MediaInfo, Stream


@dataclass(frozen=True, slots=True)
class Choice:
    """The plan for one request and what the player is told about the film's tracks."""

    plan: PlaybackPlan
    kind: PlanKind  # the plan's, or "transcode" when a subtitle is burned in
    reasons: tuple[str, ...]
    output: str | None  # the HLS output's name (``server.playback.outputs``); None: direct
    audio: tuple[dict[str, Any], ...]
    subtitles: tuple[dict[str, Any], ...]  # without URLs: "id" names each track


def capabilities_of(query: Mapping[str, str], user_agent: str) -> Capabilities:
    """The player's measured capabilities (``?capabilities=<json>``), else what the
    User-Agent's family is assumed to play. A report that is not JSON is the caller's error."""
    raw = query.get("capabilities")
    if raw:
        try:
            return parse_capabilities(raw)
        except CapabilitiesError as exc:
            raise InvalidInput(f"capabilities: {exc}") from None
    return for_family(browser_family(user_agent))


def choose(
    info: MediaInfo,
    caps: Capabilities,
    *,
    languages: Sequence[str] = (),
    audio: int | None = None,
    burn: int | None = None,
    external: Sequence[ExternalSubtitle] = (),
) -> Choice:
    """The plan for ``info`` in a browser with ``caps``. ``audio`` (a stream index) wins over
    ``languages`` (preference order); ``burn`` names an image subtitle to draw into a
    transcode. Unknown indexes are the caller's error (``InvalidInput``)."""
    streams = {s.index: s for s in info.streams}
    if audio is not None:
        chosen = streams.get(audio)
        if chosen is None or chosen.kind != "audio":
            raise InvalidInput(f"the film has no audio stream {audio}")
        info = _with_default_audio(info, audio)
        language = None
    else:
        language = _first_spoken(info.audio_streams, languages)
    decided = plan(info, caps, language=language)
    reasons = decided.reasons
    kind: PlanKind = decided.kind
    output: str | None = None
    if burn is not None:
        sub = streams.get(burn)
        if sub is None or burn not in {t.index for t in decided.image_subtitles}:
            raise InvalidInput(f"the film has no image subtitle stream {burn} to burn in")
        if decided.kind == "direct":
            # Made again as if the file could not be given as it is: sound decisions for
            # fMP4 segments, not for a whole file.
            no_files = dataclasses.replace(caps, containers=frozenset())
            decided = plan(info, no_files, language=language)
        kind = "transcode"
        reasons = (*decided.reasons, f"burning in subtitles: {_subtitle_label(sub)}")
        output = output_name(output_for(decided, burn=burn))
    elif decided.hls:
        output = output_name(output_for(decided))
    return Choice(
        plan=decided,
        kind=kind,
        reasons=reasons,
        output=output,
        audio=tuple(_audio_track(s, decided) for s in info.audio_streams),
        subtitles=_subtitle_tracks(decided, external),
    )


def _with_default_audio(info: MediaInfo, index: int) -> MediaInfo:
    streams = tuple(
        dataclasses.replace(s, default=s.index == index) if s.kind == "audio" else s
        for s in info.streams
    )
    return dataclasses.replace(info, streams=streams)


def _first_spoken(streams: Sequence[Stream], languages: Sequence[str]) -> str | None:
    """The first of ``languages`` that a track is in (None: let the film's default play)."""
    spoken = {language_key(s.language) for s in streams} - {None}
    for wanted in languages:
        if language_key(wanted) in spoken:
            return wanted
    return None


def _audio_track(stream: Stream, decided: PlaybackPlan) -> dict[str, Any]:
    return {
        "index": stream.index,
        "language": stream.language,
        "title": stream.title,
        "codec": stream.codec,
        "channels": stream.channels,
        "selected": stream.index == decided.audio_stream,
    }


def _subtitle_label(stream: Stream) -> str:
    return stream.title or stream.language or f"track {stream.index}"


def _subtitle_tracks(
    decided: PlaybackPlan, external: Sequence[ExternalSubtitle]
) -> tuple[dict[str, Any], ...]:
    tracks: list[dict[str, Any]] = [
        {
            "id": f"s{t.index}",
            "kind": "text" if t.convertible else "image",
            "index": t.index,
            "codec": t.codec,
            "language": t.language,
            "title": t.title,
            "default": t.index == decided.default_subtitle,
            "forced": t.forced,
        }
        for t in decided.subtitles
    ]
    for sub in external:
        tracks.append(
            {
                "id": sub.id,
                "kind": "text",
                "index": None,
                "codec": "subrip",
                "language": sub.language,
                "title": sub.title,
                "default": False,
                "forced": False,
            }
        )
    return tuple(tracks)


def preference_json(preferences: Mapping[str, str]) -> dict[str, str | None]:
    """The household's playback preferences as the API shows them."""
    return {key: preferences.get(key) for key in PREFERENCE_KEYS}


PREFERENCE_KEYS = ("audio_language", "subtitle_language")


def parse_preferences(body: Mapping[str, object]) -> dict[str, str | None]:
    """The keys of a PUT body that change: a language code, "off" (subtitles), or null."""
    changes: dict[str, str | None] = {}
    for key, value in body.items():
        if key not in PREFERENCE_KEYS:
            raise InvalidInput(f"unknown preference {key!r}; known: {', '.join(PREFERENCE_KEYS)}")
        if value is None:
            changes[key] = None
        elif isinstance(value, str) and _is_language(value, allow_off=key == "subtitle_language"):
            changes[key] = value
        else:
            raise InvalidInput(f'{key} must be a language code such as "en" or "ger", or null')
    return changes


def _is_language(value: str, *, allow_off: bool) -> bool:
    if allow_off and value == "off":
        return True
    return 2 <= len(value) <= 16 and all(c.isalnum() or c == "-" for c in value)
