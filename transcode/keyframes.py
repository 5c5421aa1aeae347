"""Where a film's video keyframes are, read from its index alone: MKV Cues, the MP4 sample
table (``stss`` + ``stts`` + ``ctts`` + the edit list).

An HLS playlist over the whole film needs segment boundaries on keyframes before ffmpeg has
read the film. Asking ffprobe for keyframes (``-show_packets``, ``-skip_frame nokey``)
reads every packet, so it waits for the whole download; the index is a few hundred KiB
near the start or the end of the file, the parts the engine fetches first. So this module
reads only the index, through ``ReadAt`` (Matinee's MediaView, a file, an HTTP range
reader), and parses it here (pure functions over bytes, tested against ffprobe's packets).

``read_keyframes`` returns None when the file has no usable index (AVI, MPEG-TS,
fragmented MP4, an MKV without Cues): the caller then falls back to an event playlist.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

# Reads ``length`` bytes at ``offset`` (fewer only at the end of the file).
ReadAt = Callable[[int, int], Awaitable[bytes]]

HEAD_BYTES = 256 * 1024  # the EBML header, SeekHead, Info and Tracks of an MKV fit here
MAX_INDEX_BYTES = 64 * 1024 * 1024  # a moov or Cues larger than this is not read
MAX_BOXES = 10_000  # top-level MP4 boxes walked before giving up


class IndexError_(ValueError):
    """The index is there but malformed (truncated, inconsistent)."""


@dataclass(frozen=True, slots=True)
class KeyframeIndex:
    """Presentation times (seconds, ascending) of the video keyframes; duration if known."""

    times: tuple[float, ...]
    duration: float | None
    source: str  # "cues" or "stss", for logs


async def read_keyframes(read: ReadAt, size: int, container: str) -> KeyframeIndex | None:
    """The keyframe index of a file of ``size`` bytes in ``container`` (``MediaInfo.container``);
    None when it has none or it cannot be parsed."""
    try:
        if container in ("matroska", "webm"):
            return await _mkv_keyframes(read, size)
        if container in ("mp4", "mov"):
            return await _mp4_keyframes(read, size)
    except (IndexError_, struct.error, ValueError):
        return None
    return None


def file_reader(path: str | os.PathLike[str]) -> ReadAt:
    """A ``ReadAt`` over a local file (reads in a thread: never blocks the loop)."""
    import asyncio

    target = Path(path)

    def pread(offset: int, length: int) -> bytes:
        with target.open("rb") as f:
            return os.pread(f.fileno(), length, offset)

    async def read(offset: int, length: int) -> bytes:
        return await asyncio.to_thread(pread, offset, length)

    return read


async def _read_exactly(read: ReadAt, offset: int, length: int) -> bytes:
    data = await read(offset, length)
    if len(data) < length:
        raise IndexError_(f"file ends at {offset + len(data)}, wanted {offset + length}")
    return data


# -- Matroska ------------------------------------------------------------------------------

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
SEEK_HEAD = 0x114D9B74
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
DURATION = 0x4489
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
CUES = 0x1C53BB6B
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_TRACK = 0xF7
CLUSTER = 0x1F43B675
UNKNOWN_SIZE = -1


def ebml_id(data: bytes, pos: int) -> tuple[int, int]:
    """(element id with its marker bits, position after it)."""
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 4 and not first & mask:
        mask >>= 1
        length += 1
    if length > 4:
        raise IndexError_(f"bad EBML id at {pos}")
    if pos + length > len(data):
        raise IndexError_("EBML id runs past the data")
    return int.from_bytes(data[pos : pos + length], "big"), pos + length


def ebml_size(data: bytes, pos: int) -> tuple[int, int]:
    """(element data size, or ``UNKNOWN_SIZE``; position after the size)."""
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise IndexError_(f"bad EBML size at {pos}")
    if pos + length > len(data):
        raise IndexError_("EBML size runs past the data")
    value = first & (mask - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if value == (1 << (7 * length)) - 1:
        return UNKNOWN_SIZE, pos + length
    return value, pos + length


def ebml_children(
    data: bytes, start: int = 0, end: int | None = None
) -> list[tuple[int, int, int]]:
    """(id, data start, data end) of each element in ``data[start:end]``; an element cut off
    by the end of the data is left out."""
    end = len(data) if end is None else end
    found = []
    pos = start
    while pos < end:
        try:
            element, pos_size = ebml_id(data, pos)
            size, body = ebml_size(data, pos_size)
        except (IndexError_, IndexError):
            break
        stop = end if size == UNKNOWN_SIZE else body + size
        if stop > end:
            break
        found.append((element, body, stop))
        pos = stop
    return found


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def _float(data: bytes) -> float:
    if len(data) == 4:
        return float(struct.unpack(">f", data)[0])
    if len(data) == 8:
        return float(struct.unpack(">d", data)[0])
    raise IndexError_("EBML float of odd size")


def parse_cues(data: bytes, video_track: int | None, scale_ns: int) -> tuple[float, ...]:
    """Keyframe times from the body of a Cues element (pure): the CuePoints that point
    into ``video_track`` (every one when it is None), in seconds."""
    times = set()
    for element, body, stop in ebml_children(data):
        if element != CUE_POINT:
            continue
        time: int | None = None
        tracks: list[int] = []
        for child, cbody, cstop in ebml_children(data, body, stop):
            if child == CUE_TIME:
                time = _uint(data[cbody:cstop])
            elif child == CUE_TRACK_POSITIONS:
                for grand, gbody, gstop in ebml_children(data, cbody, cstop):
                    if grand == CUE_TRACK:
                        tracks.append(_uint(data[gbody:gstop]))
        if time is not None and (video_track is None or video_track in tracks):
            times.add(time * scale_ns / 1e9)
    return tuple(sorted(times))


async def _mkv_keyframes(read: ReadAt, size: int) -> KeyframeIndex | None:
    head = await read(0, min(HEAD_BYTES, size))
    top = ebml_children(head)
    if not top or top[0][0] != EBML_HEADER:
        return None
    segment = next(((b, s) for e, b, s in ebml_children_lenient(head) if e == SEGMENT), None)
    if segment is None:
        return None
    segment_start = segment[0]
    positions: dict[int, int] = {}
    elements: dict[int, tuple[int, int]] = {}
    for element, body, stop in ebml_children(head, segment_start):
        elements.setdefault(element, (body, stop))
        if element == CLUSTER:
            break
    if SEEK_HEAD in elements:
        body, stop = elements[SEEK_HEAD]
        for element, sbody, sstop in ebml_children(head, body, stop):
            if element != SEEK:
                continue
            seek_id = seek_pos = None
            for child, cbody, cstop in ebml_children(head, sbody, sstop):
                if child == SEEK_ID:
                    seek_id = _uint(head[cbody:cstop])
                elif child == SEEK_POSITION:
                    seek_pos = _uint(head[cbody:cstop])
            if seek_id is not None and seek_pos is not None:
                positions.setdefault(seek_id, segment_start + seek_pos)

    async def element_body(element: int) -> bytes | None:
        if element in elements:
            body, stop = elements[element]
            return head[body:stop]
        offset = positions.get(element)
        if offset is None or offset >= size:
            return None
        header = await read(offset, min(12, size - offset))
        found, pos = ebml_id(header, 0)
        if found != element:
            raise IndexError_(f"SeekHead points at {found:#x}, not {element:#x}")
        length, pos = ebml_size(header, pos)
        if length == UNKNOWN_SIZE or length > MAX_INDEX_BYTES:
            raise IndexError_("index element too large")
        return await _read_exactly(read, offset + pos, length)

    info = await element_body(INFO)
    scale_ns = 1_000_000
    duration = None
    if info is not None:
        for element, body, stop in ebml_children(info):
            if element == TIMECODE_SCALE:
                scale_ns = _uint(info[body:stop]) or scale_ns
            elif element == DURATION:
                duration = _float(info[body:stop])
    video_track = None
    tracks = await element_body(TRACKS)
    if tracks is not None:
        for element, body, stop in ebml_children(tracks):
            if element != TRACK_ENTRY:
                continue
            fields = {c: _uint(tracks[b:s]) for c, b, s in ebml_children(tracks, body, stop)}
            if fields.get(TRACK_TYPE) == 1 and video_track is None:
                video_track = fields.get(TRACK_NUMBER)
    cues = await element_body(CUES)
    if cues is None:
        return None
    times = parse_cues(cues, video_track, scale_ns)
    if not times:
        return None
    return KeyframeIndex(
        times=times,
        duration=duration * scale_ns / 1e9 if duration is not None else None,
        source="cues",
    )


def ebml_children_lenient(data: bytes) -> list[tuple[int, int, int]]:
    """Top-level elements where the last one (the Segment) may run past ``data``: its body
    start is what matters."""
    found = []
    pos = 0
    while pos < len(data):
        try:
            element, pos_size = ebml_id(data, pos)
            size, body = ebml_size(data, pos_size)
        except (IndexError_, IndexError):
            break
        stop = body + size if size != UNKNOWN_SIZE else len(data)
        found.append((element, body, stop))
        pos = stop
    return found


# -- MP4 -----------------------------------------------------------------------------------


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, body start, body end) of each box in ``data[start:end]`` (pure)."""
    end = len(data) if end is None else end
    found = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        found.append((kind.decode("latin-1"), pos + header, pos + size))
        pos += size
    return found


def _box(data: bytes, start: int, end: int, *path: str) -> tuple[int, int] | None:
    for name in path:
        found = next(((b, e) for k, b, e in mp4_boxes(data, start, end) if k == name), None)
        if found is None:
            return None
        start, end = found
    return start, end


def parse_moov(moov: bytes) -> KeyframeIndex | None:
    """Keyframe presentation times of the first video track of a ``moov`` body (pure)."""
    for kind, body, stop in mp4_boxes(moov):
        if kind != "trak":
            continue
        hdlr = _box(moov, body, stop, "mdia", "hdlr")
        if hdlr is None or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        mdhd = _box(moov, body, stop, "mdia", "mdhd")
        stbl = _box(moov, body, stop, "mdia", "minf", "stbl")
        if mdhd is None or stbl is None:
            return None
        version = moov[mdhd[0]]
        if version == 1:
            timescale, duration = struct.unpack(">IQ", moov[mdhd[0] + 20 : mdhd[0] + 32])
        else:
            timescale, duration = struct.unpack(">II", moov[mdhd[0] + 12 : mdhd[0] + 20])
        if not timescale:
            raise IndexError_("video track without a timescale")
        tables = {k: (b, e) for k, b, e in mp4_boxes(moov, *stbl)}
        if "stss" not in tables or "stts" not in tables:
            return None  # no sync table: every sample is a keyframe, or fragmented MP4
        shift = _edit_shift(moov, body, stop)
        sync = _u32_table(moov, *tables["stss"], width=1)
        deltas = _u32_table(moov, *tables["stts"], width=2)
        offsets = _u32_table(moov, *tables["ctts"], width=2) if "ctts" in tables else []
        ctts_signed = "ctts" in tables and moov[tables["ctts"][0]] == 1
        times = _sample_times([s[0] for s in sync], deltas, offsets, ctts_signed)
        return KeyframeIndex(
            times=tuple(sorted((t - shift) / timescale for t in times)),
            duration=(duration / timescale) if duration else None,
            source="stss",
        )
    return None


def _u32_table(data: bytes, body: int, stop: int, *, width: int) -> list[tuple[int, ...]]:
    count = struct.unpack(">I", data[body + 4 : body + 8])[0]
    start = body + 8
    if start + count * 4 * width > stop:
        raise IndexError_("sample table runs past its box")
    values = struct.unpack(f">{count * width}I", data[start : start + count * 4 * width])
    return [values[i : i + width] for i in range(0, len(values), width)]


def _edit_shift(data: bytes, body: int, stop: int) -> int:
    """The media time where presentation starts (first non-empty edit), in track units."""
    elst = _box(data, body, stop, "edts", "elst")
    if elst is None:
        return 0
    version = data[elst[0]]
    count = struct.unpack(">I", data[elst[0] + 4 : elst[0] + 8])[0]
    pos = elst[0] + 8
    for _ in range(count):
        if version == 1:
            _, media_time = struct.unpack(">Qq", data[pos : pos + 16])
            pos += 20
        else:
            _, media_time = struct.unpack(">Ii", data[pos : pos + 8])
            pos += 12
        if media_time >= 0:
            return int(media_time)
    return 0


def _sample_times(
    sync: list[int],
    deltas: list[tuple[int, ...]],
    offsets: list[tuple[int, ...]],
    signed: bool,
) -> list[int]:
    """Presentation times (track units) of the 1-based samples in ``sync``."""
    wanted = sorted(set(sync))
    times: dict[int, int] = {}
    sample, dts, w = 1, 0, 0
    for count, delta in deltas:
        while w < len(wanted) and wanted[w] < sample + count:
            times[wanted[w]] = dts + (wanted[w] - sample) * delta
            w += 1
        sample += count
        dts += count * delta
    sample = 1
    w = 0
    for count, raw in offsets:
        offset = raw - (1 << 32) if signed and raw >= 1 << 31 else raw
        while w < len(wanted) and wanted[w] < sample + count:
            if wanted[w] in times:
                times[wanted[w]] += offset
            w += 1
        sample += count
    return [times[s] for s in wanted if s in times]


async def _mp4_keyframes(read: ReadAt, size: int) -> KeyframeIndex | None:
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > size:
            return None
        header = await _read_exactly(read, pos, min(16, size - pos))
        box_size, kind = struct.unpack(">I4s", header[:8])
        header_len = 8
        if box_size == 1:
            box_size = struct.unpack(">Q", header[8:16])[0]
            header_len = 16
        elif box_size == 0:
            box_size = size - pos
        if box_size < header_len:
            raise IndexError_(f"bad box size at {pos}")
        if kind == b"moov":
            if box_size > MAX_INDEX_BYTES:
                return None
            moov = await _read_exactly(read, pos + header_len, box_size - header_len)
            return parse_moov(moov)
        pos += box_size
    return None
