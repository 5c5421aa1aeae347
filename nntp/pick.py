"""Which files of a post are the movie: by their names, and by content when names lie.

``classify`` reads only the NZB: plain video files by extension, RAR volume sets in their
three namings (``.partNN.rar``; ``.rar`` + ``.r00``...; ``.001``...), PAR2 files, samples
(named so, or much smaller than the movie) and files whose names say nothing (obfuscated
posts). The movie is the largest video file, or the RAR set with the largest total,
whichever is bigger; samples never are.

``resolve_layout`` looks at the content when names are obfuscated: the PAR2 index names
the files (matched by the MD5 of their first 16 KiB), else the first bytes of each file
tell its container (``sniff``). It then ranks the download's files so that the movie (or
the RAR volumes, in order) comes first.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nntp.download import Download
from nntp.errors import SegmentsMissing
from nntp.media import (
    gather_all,
    read_bytes,
    sniff,
    wait_bytes,
    wait_size,
)
from nntp.names import VIDEO_EXTENSIONS, extension, rar_volume_name, safe_filename
from nntp.nzb import Nzb
from nntp.par2 import FIRST_16K, match_by_md5_16k, parse_par2
from nntp.rar import NeedMoreData, RarError, volume_order

__all__ = [
    "SAMPLE_RATIO",
    "VIDEO_KINDS",
    "LayoutKind",
    "PostLayout",
    "classify",
    "rank_files",
    "rar_volume_name",
    "resolve_layout",
    "sniff",
]

# What ``sniff`` reports for video containers.
VIDEO_KINDS = frozenset({"mkv", "webm", "mp4", "mov", "ts", "avi", "wmv"})
# A video (or set) smaller than this share of the movie is a sample or an extra.
SAMPLE_RATIO = 0.1
# Ranks on the download: the movie's files 0.., the PAR2 index next, the rest after.
_REST_RANK = 1_000_000
# A PAR2 file larger than this is a recovery volume, not an index worth reading for names.
_PAR2_INDEX_MAX = 16 * 1024 * 1024

_SAMPLE = re.compile(r"(?<![a-z])samples?(?![a-z])", re.IGNORECASE)
# Stems that are hashes or random tokens rather than names.
_OBFUSCATED = re.compile(
    r"^(?:[0-9a-f]{16,}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{24,})$",
    re.IGNORECASE,
)
# Files that are known not to be the movie, nor a part of it.
_OTHER_EXTENSIONS = frozenset(
    {
        "nfo", "srt", "sub", "idx", "ass", "ssa", "vtt", "sup", "sfv", "md5", "sha1",
        "sha256", "txt", "jpg", "jpeg", "png", "gif", "webp", "nzb", "url", "db", "log",
        "htm", "html", "xml", "json", "diz", "pdf", "par", "exe", "lnk", "ini",
    }
)  # fmt: skip

LayoutKind = Literal["video", "rar", "unknown", "none"]
Source = Literal["names", "par2", "magic"]


@dataclass(frozen=True)
class PostLayout:
    """What a post holds, as indexes into ``Nzb.files`` (and so ``Download.files``).

    ``kind``: "video" (``main`` is one plain file), "rar" (``main`` are the volumes of the
    set, in volume order when ``ordered``; otherwise ``open_rar_view`` orders them by
    their headers), "unknown" (names say nothing: ``candidates`` must be looked at) or
    "none" (nothing that could be a movie). ``bytes`` is the NZB size of ``main``.
    ``name`` is the movie's file name, or the set's name for RAR (None when unknown).
    ``samples``: videos or sets that are not the movie (named sample or much smaller).
    ``par2``: PAR2 files, smallest (the index) first. ``candidates``: files whose role
    names cannot tell, largest first. ``real_names``: names PAR2 gave obfuscated files.
    ``source``: what decided the movie.
    """

    kind: LayoutKind
    main: tuple[int, ...] = ()
    bytes: int = 0
    name: str | None = None
    ordered: bool = True
    samples: tuple[int, ...] = ()
    par2: tuple[int, ...] = ()
    candidates: tuple[int, ...] = ()
    candidate_bytes: int = 0  # of the largest candidate
    real_names: Mapping[int, str] = field(default_factory=dict, hash=False)
    source: Source = "names"

    @property
    def needs_content_check(self) -> bool:
        """True when files with meaningless names could be (or be bigger than) the movie."""
        if not self.candidates:
            return False
        return self.kind not in ("video", "rar") or self.candidate_bytes > self.bytes


def _looks_obfuscated(stem: str) -> bool:
    return _OBFUSCATED.match(stem) is not None


def _is_sample(name: str) -> bool:
    return _SAMPLE.search(name) is not None


@dataclass
class _Option:
    kind: Literal["video", "rar"]
    indexes: list[int]
    bytes: int
    name: str | None
    ordered: bool
    sample: bool


def _options(
    files: Sequence[tuple[int, str, int]],
) -> tuple[list[_Option], list[int], list[tuple[int, int]]]:
    """Movie options by names, PAR2 files, and (index, bytes) of files names say nothing of."""
    options: list[_Option] = []
    sets: dict[str, list[tuple[int, int, int, str]]] = {}  # key -> (number, index, bytes, stem)
    par2: list[int] = []
    unknown: list[tuple[int, int]] = []
    for index, name, size in files:
        if name.lower().endswith(".par2"):
            par2.append(index)
            continue
        volume = rar_volume_name(name)
        if volume is not None:
            stem, number = volume
            sets.setdefault(stem.lower(), []).append((number, index, size, stem))
            continue
        ext = extension(name)
        if ext in VIDEO_EXTENSIONS:
            options.append(_Option("video", [index], size, name, True, _is_sample(name)))
        elif ext not in _OTHER_EXTENSIONS:
            # No extension, or one no release uses (obfuscated posts give random ones).
            unknown.append((index, size))
    # Obfuscated posts may name every volume by its own hash: such sets are one set whose
    # order only the headers can tell.
    hashed = [key for key, vols in sets.items() if _looks_obfuscated(vols[0][3])]
    if len(hashed) > 1:
        merged = [v for key in hashed for v in sets.pop(key)]
        merged.sort(key=lambda v: v[1])
        options.append(
            _Option("rar", [v[1] for v in merged], sum(v[2] for v in merged), None, False, False)
        )
    for volumes in sets.values():
        volumes.sort(key=lambda v: (v[0], v[1]))
        numbers = [v[0] for v in volumes]
        stem = volumes[0][3]
        options.append(
            _Option(
                "rar",
                [v[1] for v in volumes],
                sum(v[2] for v in volumes),
                stem,
                len(set(numbers)) == len(numbers),
                _is_sample(stem),
            )
        )
    return options, par2, unknown


def _layout(
    options: Sequence[_Option],
    par2: Sequence[int],
    unknown: Sequence[tuple[int, int]],
    sizes: Mapping[int, int],
    *,
    real_names: Mapping[int, str] | None = None,
    source: Source = "names",
) -> PostLayout:
    # max() keeps the first of equals: options come videos first, then sets.
    eligible = [o for o in options if not o.sample]
    main = max(eligible, key=lambda o: o.bytes) if eligible else None
    samples: list[int] = []
    for option in options:
        if option is main:
            continue
        if option.sample or main is None or option.bytes < SAMPLE_RATIO * main.bytes:
            samples += option.indexes
    candidates = sorted(unknown, key=lambda u: (-u[1], u[0]))
    kind: LayoutKind = main.kind if main is not None else "unknown" if candidates else "none"
    return PostLayout(
        kind=kind,
        main=tuple(main.indexes) if main else (),
        bytes=main.bytes if main else 0,
        name=main.name if main else None,
        ordered=main.ordered if main else True,
        samples=tuple(samples),
        par2=tuple(sorted(par2, key=lambda i: (sizes[i], i))),
        candidates=tuple(i for i, _ in candidates),
        candidate_bytes=candidates[0][1] if candidates else 0,
        real_names=dict(real_names or {}),
        source=source,
    )


def _classify_files(
    files: Sequence[tuple[int, str, int]],
    *,
    real_names: Mapping[int, str] | None = None,
    source: Source = "names",
) -> PostLayout:
    options, par2, unknown = _options(files)
    sizes = {index: size for index, _, size in files}
    return _layout(options, par2, unknown, sizes, real_names=real_names, source=source)


def classify(nzb: Nzb) -> PostLayout:
    """The layout of a post from its file names and NZB sizes alone."""
    return _classify_files([(i, f.name, f.bytes) for i, f in enumerate(nzb.files)])


async def _head(download: Download, index: int) -> bytes | None:
    """The first 16 KiB of a file (all of it when shorter), or None when they are missing."""
    try:
        size = await wait_size(download, index)
        length = min(size, FIRST_16K)
        await wait_bytes(download, index, 0, length)
    except SegmentsMissing:
        return None
    return await asyncio.to_thread(read_bytes, str(download.files[index].path), 0, length)


async def _par2_names(
    download: Download, par2_files: Sequence[int], heads: Mapping[int, bytes]
) -> dict[int, str]:
    """Real names of files, from the smallest PAR2 file (the index), matched by 16 KiB MD5."""
    nzb_bytes = {i: download.files[i].nzb_file.bytes for i in par2_files}
    usable = [i for i in par2_files if nzb_bytes[i] <= _PAR2_INDEX_MAX]
    if not usable or not heads:
        return {}
    index = min(usable, key=lambda i: (nzb_bytes[i], i))
    try:
        size = await wait_size(download, index)
        await wait_bytes(download, index, 0, size)
    except SegmentsMissing:
        return {}
    data = await asyncio.to_thread(read_bytes, str(download.files[index].path), 0, size)
    described = parse_par2(data)
    digests = {
        str(i): hashlib.md5(head, usedforsecurity=False).digest() for i, head in heads.items()
    }
    names: dict[int, str] = {}
    for key, par2_file in match_by_md5_16k(described, digests).items():
        name = safe_filename(par2_file.name)
        if name is not None:
            names[int(key)] = name
    return names


def _magic_rar_order(indexes: Sequence[int], heads: Mapping[int, bytes]) -> list[int] | None:
    """The volumes in order when their heads tell it (RAR5 does; RAR4 heads usually not)."""
    try:
        order = volume_order({str(i): heads[i] for i in indexes})
    except (RarError, NeedMoreData):
        return None
    return [int(name) for name in order]


async def resolve_layout(download: Download, layout: PostLayout) -> PostLayout:
    """The layout with the movie decided by content where names are obfuscated, and the
    download's files ranked so the movie comes first (``rank_files``).

    Looks at the first 16 KiB of every candidate (prioritised, exactly those bytes). When
    the post has a PAR2 index (by name or by its magic), it is fetched and names the
    candidates; the layout is then decided as by ``classify`` with the real names. What
    PAR2 cannot name is judged by its magic bytes: the largest video, or all RAR volumes
    as one set. Files whose first bytes are missing everywhere are left out.
    """
    if layout.needs_content_check:
        layout = await _by_content(download, layout)
    rank_files(download, layout)
    return layout


async def _by_content(download: Download, layout: PostLayout) -> PostLayout:
    files = download.files
    candidates = list(layout.candidates)
    got = await gather_all([_head(download, i) for i in candidates])
    heads = {i: head for i, head in zip(candidates, got, strict=True) if head is not None}
    kinds = {i: sniff(head) for i, head in heads.items()}
    par2_files = list(layout.par2) + [i for i in candidates if kinds.get(i) == "par2"]
    real_names = await _par2_names(
        download, par2_files, {i: h for i, h in heads.items() if kinds[i] != "par2"}
    )
    base = layout
    if real_names:
        base = _classify_files(
            [(i, real_names.get(i, f.name), f.nzb_file.bytes) for i, f in enumerate(files)],
            real_names=real_names,
            source="par2",
        )
    # Whatever is still nameless is judged by its magic bytes.
    options: list[_Option] = []
    if base.kind == "video" or base.kind == "rar":
        options.append(
            _Option(base.kind, list(base.main), base.bytes, base.name, base.ordered, False)
        )
    for i in base.candidates:
        kind = kinds.get(i)
        if kind in VIDEO_KINDS:
            name = f"{files[i].name}.{kind}"
            options.append(_Option("video", [i], files[i].nzb_file.bytes, name, True, False))
    rars = [i for i in base.candidates if kinds.get(i) == "rar"]
    if rars:
        order = _magic_rar_order(rars, heads)
        total = sum(files[i].nzb_file.bytes for i in rars)
        options.append(_Option("rar", order or rars, total, None, order is not None, False))
    if not options:
        return base
    main = max(options, key=lambda o: o.bytes)
    decided_by_magic = base.kind not in ("video", "rar") or main is not options[0]
    samples = list(base.samples)
    for option in options:
        if option is not main and option.bytes < SAMPLE_RATIO * main.bytes:
            samples += option.indexes
    looked_at = set(heads)
    return PostLayout(
        kind=main.kind,
        main=tuple(main.indexes),
        bytes=main.bytes,
        name=main.name,
        ordered=main.ordered,
        samples=tuple(dict.fromkeys(samples)),
        par2=tuple(sorted(set(par2_files), key=lambda i: (files[i].nzb_file.bytes, i))),
        candidates=tuple(i for i in base.candidates if i not in looked_at),
        candidate_bytes=max(
            (files[i].nzb_file.bytes for i in base.candidates if i not in looked_at), default=0
        ),
        real_names=dict(real_names),
        source="magic" if decided_by_magic else base.source,
    )


def rank_files(download: Download, layout: PostLayout) -> None:
    """Rank the download's files: the movie's (in volume order) first, then the PAR2 index,
    then everything else in NZB order."""
    ranks = {index: rank for rank, index in enumerate(layout.main)}
    if layout.par2:
        ranks.setdefault(layout.par2[0], len(ranks))
    for index in range(len(download.files)):
        download.set_file_rank(index, ranks.get(index, _REST_RANK))
