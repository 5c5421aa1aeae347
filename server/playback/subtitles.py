"""Subtitle files that come beside the film in a release (``Movie.2019.eng.srt``): found among
the download's files while it runs and in the job's folder once it is ready, their language
read from the name, their text turned into WebVTT by ``transcode.subtitles``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nntp.names import safe_filename
from server.jobs.media import SUBTITLES_DIR
from transcode.compat import KNOWN_LANGUAGES

EXTENSIONS = (".srt",)
MAX_FILES = 32

# Words releases put before ".srt" for a language, beside ISO codes ("eng", "en", "pt-BR").
_NAMED = {
    "english": "en", "german": "de", "deutsch": "de", "french": "fr", "francais": "fr",
    "spanish": "es", "espanol": "es", "italian": "it", "dutch": "nl", "nederlands": "nl",
    "portuguese": "pt", "swedish": "sv", "danish": "da", "norwegian": "no", "finnish": "fi",
    "polish": "pl", "russian": "ru", "japanese": "ja", "chinese": "zh", "korean": "ko",
}  # fmt: skip
_MARKERS = {"forced", "sdh", "hi", "cc"}


@dataclass(frozen=True, slots=True)
class ExternalSubtitle:
    id: str  # "x0", "x1"... in name order; the URL's track id
    name: str
    path: Path
    language: str | None
    title: str | None


def language_of(name: str) -> tuple[str | None, str | None]:
    """(language, title) from a subtitle file's name: the last dotted word that is a
    language ("Movie.2019.eng.forced.srt" → ("eng", "forced"))."""
    stem = name.rsplit(".", 1)[0]
    words = re.split(r"[._ \-]+", stem)
    markers = [w for w in words[-3:] if w.lower() in _MARKERS]
    for word in reversed(words[-3:]):
        lower = word.lower()
        if lower in _NAMED:
            return _NAMED[lower], " ".join(markers) or None
        if lower in KNOWN_LANGUAGES:
            return lower, " ".join(markers) or None
    return None, " ".join(markers) or None


def external_subtitles(files: list[tuple[str, Path]]) -> list[ExternalSubtitle]:
    """The subtitle files among ``(name, path)`` pairs, in name order, with safe names."""
    found = []
    for name, path in sorted(files):
        safe = safe_filename(name)
        if safe and safe.lower().endswith(EXTENSIONS):
            language, title = language_of(safe)
            found.append((safe, path, language, title))
    return [
        ExternalSubtitle(f"x{n}", name, path, language, title)
        for n, (name, path, language, title) in enumerate(found[:MAX_FILES])
    ]


def kept_subtitles(job_dir: Path) -> list[tuple[str, Path]]:
    """The subtitle files a ready job kept in its folder."""
    folder = job_dir / SUBTITLES_DIR
    if not folder.is_dir():
        return []
    return [(p.name, p) for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
