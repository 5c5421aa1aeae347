"""PAR2 recovery sets: read their packets, and verify and repair a download with par2cmdline.

The parser is pure (bytes in, dataclasses out) and serves three purposes: the File
Description packets give the real names of obfuscated posts (matched through the MD5 of
each file's first 16 KiB), the counts of recovery blocks let the engine download only
as many volumes as a repair needs, and the packet headers at the start of a file tell a
PAR2 index from a recovery volume when the names are random. Verification and repair run
the ``par2`` program (par2cmdline) and read its report. Names found in PAR2 data or in
par2's output are exposed as they are: they are untrusted, and the caller sanitises them
before touching the disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import re
import shutil
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "FIRST_16K",
    "PAR2_VOLUME",
    "NotEnoughRecoveryBlocks",
    "Par2Error",
    "Par2File",
    "Par2Kind",
    "Par2Set",
    "RepairResult",
    "VerifyResult",
    "choose_volumes",
    "estimate_recovery_blocks",
    "match_by_md5_16k",
    "md5_16k",
    "par2_kind",
    "par2_kind_in_name",
    "par2_repair",
    "par2_verify",
    "parse_par2",
    "read_par2_kind",
    "recovery_blocks_in_name",
]

# The span of the "16k" MD5 in a File Description packet (PAR2 2.0 spec).
FIRST_16K = 16 * 1024

# Recovery blocks are numbered by a 16-bit exponent, so no set can hold more than this.
_MAX_RECOVERY_BLOCKS = 65535

_MAGIC = b"PAR2\0PKT"
# magic, packet length, MD5 of the rest from the set id on, recovery set id, packet type
_HEADER = struct.Struct("<8sQ16s16s16s")
_MD5_FROM = 32
_TYPE_MAIN = b"PAR 2.0\0Main\0\0\0\0"
_TYPE_FILE_DESC = b"PAR 2.0\0FileDesc"
_TYPE_RECOVERY = b"PAR 2.0\0RecvSlic"
_TYPE_CREATOR = b"PAR 2.0\0Creator\0"
_MAIN_FIXED = struct.Struct("<QI")  # slice size, number of files in the recovery set
_FILE_DESC_FIXED = struct.Struct("<16s16s16sQ")  # file id, MD5, MD5 of the first 16 KiB, length
_EXPONENT = struct.Struct("<I")
_FILE_ID_SIZE = 16
# A recovery slice packet is its header, its exponent and one slice of data.
_RECOVERY_OVERHEAD = _HEADER.size + _EXPONENT.size

# What a PAR2 file is for: the index describes the files, a volume holds recovery blocks.
Par2Kind = Literal["index", "volume"]

# A recovery volume by its conventional name ("x.vol07+08.par2"; some posters use "-").
PAR2_VOLUME = re.compile(r"\.vol\d+[+-]\d+\.par2$", re.IGNORECASE)


@dataclass(frozen=True)
class Par2File:
    """One file of a recovery set as a File Description packet describes it.

    ``name`` is the poster's name, undecided as a path: it may hold directories, ``..`` or
    control characters. It is UTF-8 when the bytes are valid UTF-8, otherwise Latin-1, so
    ``name.encode("latin-1")`` gives the raw bytes back in that case.
    """

    file_id: bytes
    md5: bytes
    md5_16k: bytes
    size: int
    name: str


@dataclass(frozen=True)
class Par2Set:
    """What the intact packets of one PAR2 file (or of several concatenated) tell.

    Everything is optional because a damaged file still yields what is intact: ``set_id``
    and ``slice_size`` are None when no packet (or no Main packet) survived, and ``files``
    lists only the described files whose packet was intact, in the order of the Main
    packet when there is one. ``recovery_blocks`` counts distinct recovery exponents.
    ``critical_bytes`` is the size of one copy of the distinct packets that are neither
    recovery slices nor the creator's note (Main, File Description, checksums): what a
    volume repeats besides its recovery blocks.
    """

    set_id: bytes | None
    slice_size: int | None
    files: tuple[Par2File, ...]
    recovery_blocks: int
    creator: str | None
    critical_bytes: int = 0


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 never fails and keeps the bytes recoverable; par2cmdline prints the raw
        # bytes, so decoding its output the same way yields the same name.
        return raw.decode("latin-1")


def _packets(data: bytes) -> Iterator[tuple[bytes, bytes, memoryview, bytes]]:
    """(recovery set id, type, body, packet MD5) of every intact packet, skipping whatever
    is not one."""
    view = memoryview(data)
    pos = data.find(_MAGIC)
    while pos != -1:
        if pos + _HEADER.size <= len(data):
            _, length, digest, set_id, kind = _HEADER.unpack_from(data, pos)
            end = pos + length
            if (
                length >= _HEADER.size
                and length % 4 == 0
                and end <= len(data)
                and hashlib.md5(view[pos + _MD5_FROM : end], usedforsecurity=False).digest()
                == digest
            ):
                yield set_id, kind, view[pos + _HEADER.size : end], digest
                pos = data.find(_MAGIC, end)
                continue
        # A corrupt length would send us anywhere, so resynchronise on the next magic.
        pos = data.find(_MAGIC, pos + 1)


def parse_par2(data: bytes) -> Par2Set:
    """Read the packets of a PAR2 file; never raises, whatever the bytes.

    Packets whose MD5 does not match, that are cut short or malformed are skipped, and so
    is anything between packets. The first intact packet decides the recovery set; packets
    of any other set are ignored. Of repeated packets (volumes repeat the critical ones) the
    first wins.
    """
    set_id: bytes | None = None
    slice_size: int | None = None
    order: list[bytes] = []
    files: dict[bytes, Par2File] = {}
    exponents: set[int] = set()
    creator: str | None = None
    critical: dict[bytes, int] = {}  # packet MD5 -> packet length
    for packet_set, kind, body, digest in _packets(data):
        if set_id is None:
            set_id = packet_set
        elif packet_set != set_id:
            continue
        if kind not in (_TYPE_RECOVERY, _TYPE_CREATOR):
            critical[digest] = _HEADER.size + len(body)
        if kind == _TYPE_MAIN and slice_size is None and len(body) >= _MAIN_FIXED.size:
            size, count = _MAIN_FIXED.unpack_from(body)
            ids = body[_MAIN_FIXED.size :]
            if size > 0 and len(ids) % _FILE_ID_SIZE == 0 and count * _FILE_ID_SIZE <= len(ids):
                slice_size = size
                order = [
                    bytes(ids[i : i + _FILE_ID_SIZE]) for i in range(0, len(ids), _FILE_ID_SIZE)
                ]
        elif kind == _TYPE_FILE_DESC and len(body) >= _FILE_DESC_FIXED.size:
            file_id, md5, md5_16k, length = _FILE_DESC_FIXED.unpack_from(body)
            if file_id not in files:
                raw_name = bytes(body[_FILE_DESC_FIXED.size :]).split(b"\0", 1)[0]
                files[file_id] = Par2File(file_id, md5, md5_16k, length, _decode_name(raw_name))
        elif kind == _TYPE_RECOVERY and len(body) >= _EXPONENT.size:
            exponents.add(_EXPONENT.unpack_from(body)[0])
        elif kind == _TYPE_CREATOR and creator is None:
            creator = bytes(body).rstrip(b"\0").decode("utf-8", "replace")
    listed = dict.fromkeys(order)
    ordered = [files[file_id] for file_id in listed if file_id in files]
    ordered += [file for file_id, file in files.items() if file_id not in listed]
    return Par2Set(
        set_id, slice_size, tuple(ordered), len(exponents), creator, sum(critical.values())
    )


def par2_kind(head: bytes | bytearray | memoryview) -> Par2Kind | None:
    """Whether the first bytes of a file are those of a PAR2 index or recovery volume.

    None unless the bytes start with a PAR2 packet. Walks the packet headers as far as
    ``head`` reaches (the packets themselves may be cut off, so their MD5 is not checked):
    a recovery slice makes it a volume; none seen (par2cmdline puts one first in every
    volume) makes it an index.
    """
    data = bytes(head)
    pos = 0
    while pos + _HEADER.size <= len(data):
        magic, length, _, _, kind = _HEADER.unpack_from(data, pos)
        if magic != _MAGIC or length < _HEADER.size or length % 4:
            break
        if kind == _TYPE_RECOVERY:
            return "volume"
        pos += length
    return "index" if data.startswith(_MAGIC) else None


def read_par2_kind(path: str | os.PathLike[str], limit: int) -> Par2Kind | None:
    """``par2_kind`` of the first ``limit`` bytes of a file (blocking: call it in a thread)."""
    with open(path, "rb") as file:
        if file.read(len(_MAGIC)) != _MAGIC:
            return None
        return par2_kind(_MAGIC + file.read(max(0, limit - len(_MAGIC))))


def par2_kind_in_name(name: str) -> Par2Kind | None:
    """What a conventional name says: ``x.vol07+08.par2`` a volume, ``x.par2`` an index."""
    if PAR2_VOLUME.search(name):
        return "volume"
    return "index" if name.lower().endswith(".par2") else None


def estimate_recovery_blocks(size: int, slice_size: int, critical_bytes: int) -> int:
    """Recovery blocks in a volume of ``size`` bytes whose name does not say.

    par2cmdline writes a volume of n blocks as n recovery slice packets plus
    ``n.bit_length()`` copies of the critical packets (``Par2Set.critical_bytes`` of the
    index) and a creator packet; this is the largest n that fits. Exact for its volumes,
    an estimate for other layouts: callers verify again after fetching.
    """
    if size <= 0 or slice_size <= 0:
        return 0
    per_block = slice_size + _RECOVERY_OVERHEAD
    # The size grows with n, so bisect for the largest n whose volume fits in ``size``.
    low, high = 0, min(size // per_block, _MAX_RECOVERY_BLOCKS)
    while low < high:
        n = (low + high + 1) // 2
        if n * per_block + n.bit_length() * critical_bytes <= size:
            low = n
        else:
            high = n - 1
    return low


# "name.vol07+08.par2": the first exponent and the number of blocks in the volume.
_VOLUME_NAME = re.compile(r"\.vol\d+\+(\d+)\.par2\Z", re.IGNORECASE)


def recovery_blocks_in_name(name: str) -> int | None:
    """Recovery blocks in a PAR2 file, from its conventional name.

    ``x.vol07+08.par2`` holds 8, an index ``x.par2`` holds 0; anything else (or a count no
    PAR2 set can have) is None. The name is only a promise: the file decides.
    """
    match = _VOLUME_NAME.search(name)
    if match:
        blocks = int(match.group(1))
        return blocks if blocks <= _MAX_RECOVERY_BLOCKS else None
    return 0 if name.lower().endswith(".par2") else None


def md5_16k(path: str | os.PathLike[str]) -> bytes:
    """MD5 of the first 16 KiB of a file (of all of it when shorter), as PAR2 records it.

    Blocking: call it from a thread when on the event loop.
    """
    with open(path, "rb") as file:
        return hashlib.md5(file.read(FIRST_16K), usedforsecurity=False).digest()


def match_by_md5_16k(
    par2: Par2Set, first16k_md5_by_path: Mapping[str, bytes]
) -> dict[str, Par2File]:
    """The described file each on-disk path holds, judged by the MD5 of its first 16 KiB.

    Paths matching no described file are left out, and so are paths whose hash more than one
    described file shares (files with the same first 16 KiB): guessing there could give a
    file another's name. Two paths holding the same file both map to it.
    """
    by_hash: dict[bytes, list[Par2File]] = collections.defaultdict(list)
    for described in par2.files:
        by_hash[described.md5_16k].append(described)
    matches: dict[str, Par2File] = {}
    for path, digest in first16k_md5_by_path.items():
        candidates = by_hash.get(digest, [])
        if len(candidates) == 1:
            matches[path] = candidates[0]
    return matches


class NotEnoughRecoveryBlocks(Exception):
    """The volumes on offer hold fewer recovery blocks than a repair needs."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"{needed} recovery blocks are needed but the volumes hold only {available}"
        )
        self.needed = needed
        self.available = available


def choose_volumes(vols: Mapping[str, int], needed: int) -> list[str]:
    """The volumes to download so that at least ``needed`` recovery blocks are at hand.

    ``vols`` maps volume names to their block counts (see ``recovery_blocks_in_name``).
    The choice is exact, not a heuristic: a subset-sum over the counts (as bitsets) finds
    the smallest total that reaches ``needed``, and among the subsets with that total it
    prefers bigger volumes, hence fewer files. Returns ``[]`` when nothing is needed and
    raises ``NotEnoughRecoveryBlocks`` when all the volumes together are too few.
    """
    if needed <= 0:
        return []
    for name, blocks in vols.items():
        if not 0 <= blocks <= _MAX_RECOVERY_BLOCKS:
            raise ValueError(f"{name!r}: {blocks} is not a possible count of recovery blocks")
    usable = sorted(((n, b) for n, b in vols.items() if b > 0), key=lambda nb: (-nb[1], nb[0]))
    available = sum(blocks for _, blocks in usable)
    if available < needed or needed > _MAX_RECOVERY_BLOCKS:
        raise NotEnoughRecoveryBlocks(needed, available)
    # A minimal subset reaching `needed` overshoots by less than its biggest volume, so sums
    # beyond that width never matter; the cap keeps every bitset small.
    width_mask = (1 << (needed + usable[0][1])) - 1
    # reachable[i] has bit s set when some of the first i volumes add up to exactly s.
    reachable = [1]
    for _, blocks in usable:
        reachable.append((reachable[-1] | (reachable[-1] << blocks)) & width_mask)
    at_least_needed = reachable[-1] >> needed
    total = needed + (at_least_needed & -at_least_needed).bit_length() - 1
    chosen: list[str] = []
    for index in range(len(usable), 0, -1):
        # Walking back from the smallest volume: leave it out whenever the rest can still
        # make the total, so the bigger volumes are the ones kept.
        if not (reachable[index - 1] >> total) & 1:
            name, blocks = usable[index - 1]
            chosen.append(name)
            total -= blocks
    chosen.reverse()
    return chosen


# par2cmdline's exit codes (the Result enum of libpar2).
_EXIT_OK = 0
_EXIT_REPAIR_POSSIBLE = 1
_EXIT_REPAIR_NOT_POSSIBLE = 2
_EXIT_MEANINGS = {
    _EXIT_REPAIR_NOT_POSSIBLE: "repair is not possible",
    3: "invalid arguments or unreadable PAR2 file",
    4: "insufficient critical data: no intact main packet",
    5: "repair failed",
    6: "file I/O error",
    7: "internal error",
    8: "out of memory",
}

# Tail kept for errors and logs, in lines and in characters per line.
_TAIL_LINES = 40
_TAIL_LINE_CHARS = 500
_READ_CHUNK = 64 * 1024
# par2's lines are short; a runaway one is cut rather than buffered without limit.
_MAX_LINE_BYTES = 64 * 1024
# A repair is a background chore; playback and downloads come first.
_NICENESS = "10"


@dataclass(frozen=True)
class VerifyResult:
    """What par2 found, in the state the files are in now.

    ``complete``: every file is there with the right name and content. ``repairable``: a
    repair would succeed with the blocks at hand (true as well when complete).
    ``blocks_needed``: how many more recovery blocks a repair needs, 0 when repairable.
    ``blocks_available``: recovery blocks par2 loaded from the PAR2 files it saw.
    ``damaged``: targets present under their name with wrong content; ``missing``: targets
    absent under their name; ``renamed``: (file on disk, target name) pairs for files that
    hold a target's exact content under another name, which a repair renames; ``partial``:
    (file, target) pairs for files that hold only some of a target's blocks under another
    name (a damaged copy: what downloading an obfuscated post leaves). Names are as par2
    prints them: target names from the PAR2 set, files relative to its directory.
    """

    complete: bool
    repairable: bool
    blocks_needed: int
    blocks_available: int
    damaged: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    output_tail: str = field(default="", repr=False)
    partial: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RepairResult:
    """A successful ``par2 r``: ``ok`` is true (failures raise), ``repaired`` names the targets
    that were damaged or missing before (empty when nothing was to do), ``renamed`` the
    (file, target) pairs par2 renamed and ``partial`` the (file, target) pairs of damaged
    copies par2 took blocks from (left as they were: the target is written anew)."""

    ok: bool
    repaired: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...] = ()
    output_tail: str = field(default="", repr=False)
    partial: tuple[tuple[str, str], ...] = ()


class Par2Error(Exception):
    """par2 could not run, failed, or said something this module cannot read.

    ``returncode`` is None when the program did not start; ``verify`` holds what par2
    reported about the files when it got that far (for a repair that is not possible, how
    many more blocks are needed).
    """

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str],
        returncode: int | None,
        output_tail: str,
        verify: VerifyResult | None = None,
    ) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output_tail = output_tail
        self.verify = verify


_PROGRESS = re.compile(r"[A-Za-z ]+: \d+(\.\d+)?%")
_TARGET_IS_OTHER = re.compile(r'Target: "(?P<name>.*)" - is a match for "(?P<other>.*)"\.')
# Besides "found" and "missing", par2 words a damaged target in several ways
# ("damaged. Found 23 of 25 data blocks", "no data found"); none has a quote in it.
_TARGET = re.compile(r'Target: "(?P<name>.*)" - (?P<state>[^"]*)\.')
_EXTRA_MATCH = re.compile(r'File: "(?P<file>.*)" - is a match for "(?P<target>.*)"\.')
_EXTRA_PARTIAL = re.compile(
    r'File: "(?P<file>.*)" - found \d+ of \d+ data blocks from "(?P<target>.*)"\.'
)
_LOADED = re.compile(r"Loaded \d+ new packets including (\d+) recovery blocks")
_HAVE = re.compile(r"You have (\d+) recovery blocks available\.")
_NEED = re.compile(r"You need (\d+) more recovery blocks to be able to repair\.")
_REPAIR_PHASE = "Verifying repaired files:"


class _Report:
    """par2cmdline's report, read line by line as the program writes it (LANG=C wording)."""

    def __init__(self) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.damaged: dict[str, None] = {}
        self.missing: dict[str, None] = {}
        self.renamed: dict[tuple[str, str], None] = {}
        self.partial: dict[tuple[str, str], None] = {}
        self.still_bad: dict[str, None] = {}
        self.loaded_blocks = 0
        self.have_blocks: int | None = None
        self.need_blocks: int | None = None
        self.after_repair = False

    def feed(self, raw: bytes) -> None:
        line = _decode_name(raw).rstrip()
        if not line or _PROGRESS.fullmatch(line):
            return
        self.tail.append(line[:_TAIL_LINE_CHARS])
        if line == _REPAIR_PHASE:
            self.after_repair = True
        elif target := (_TARGET_IS_OTHER.fullmatch(line) or _TARGET.fullmatch(line)):
            groups = target.groupdict()
            name, state = groups["name"], groups.get("state")
            if self.after_repair:
                if state != "found":
                    self.still_bad[name] = None
            elif state == "missing":
                self.missing[name] = None
            elif state != "found":
                self.damaged[name] = None
                if "other" in groups:
                    # Its content is another target's, which a repair renames into place.
                    self.renamed[(name, groups["other"])] = None
        elif extra := _EXTRA_MATCH.fullmatch(line):
            self.renamed[(extra["file"], extra["target"])] = None
        elif part := _EXTRA_PARTIAL.fullmatch(line):
            self.partial[(part["file"], part["target"])] = None
        elif loaded := _LOADED.fullmatch(line):
            self.loaded_blocks += int(loaded[1])
        elif have := _HAVE.fullmatch(line):
            self.have_blocks = int(have[1])
        elif need := _NEED.fullmatch(line):
            self.need_blocks = int(need[1])

    def output_tail(self) -> str:
        return "\n".join(self.tail)

    def verify_result(self, returncode: int) -> VerifyResult | None:
        """The verdict for exit codes 0-2, or None when the report does not give one."""
        available = self.have_blocks if self.have_blocks is not None else self.loaded_blocks
        if returncode in (_EXIT_OK, _EXIT_REPAIR_POSSIBLE):
            needed = 0
        elif returncode == _EXIT_REPAIR_NOT_POSSIBLE and self.need_blocks is not None:
            needed = self.need_blocks
        else:
            return None
        return VerifyResult(
            complete=returncode == _EXIT_OK and not (self.damaged or self.missing),
            repairable=returncode != _EXIT_REPAIR_NOT_POSSIBLE,
            blocks_needed=needed,
            blocks_available=available,
            damaged=tuple(self.damaged),
            missing=tuple(self.missing),
            renamed=tuple(self.renamed),
            output_tail=self.output_tail(),
            partial=tuple(self.partial),
        )


def _absolute(path: Path) -> Path:
    # Lexical, like par2's own base-path check; resolving symlinks could disagree with it.
    return Path(os.path.normpath(path.absolute()))


def _argv(
    command: str, par2_path: Path, extra: Sequence[Path], flags: Sequence[str], binary: str
) -> list[str]:
    base = par2_path.parent
    files: list[str] = []
    for path in map(_absolute, extra):
        # par2 silently ignores files outside the PAR2 file's directory tree.
        if not path.is_relative_to(base):
            raise ValueError(f"{path} is not inside {base}, so par2 would ignore it")
        files.append(str(path))
    program = shutil.which(binary)
    if program is None:
        raise Par2Error(
            f"par2 program {binary!r} not found", argv=[binary], returncode=None, output_tail=""
        )
    nice = shutil.which("nice")
    prefix = [nice, "-n", _NICENESS] if nice else []
    # No -q: the quiet report leaves out the counts of recovery blocks read here.
    # "--" keeps a name starting with "-" from being taken for an option.
    return [*prefix, program, command, *flags, "--", str(par2_path), *files]


async def _run(argv: Sequence[str], cwd: Path) -> tuple[int, _Report]:
    """Run par2 to the end, reading its report; on cancellation kill and reap it."""
    report = _Report()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            # One pipe for both keeps errors in order with the report and drains both.
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as error:
        raise Par2Error(
            f"cannot run par2: {error}", argv=argv, returncode=None, output_tail=""
        ) from error
    stdout = process.stdout
    assert stdout is not None
    try:
        pending = b""
        while chunk := await stdout.read(_READ_CHUNK):
            # Progress is redrawn with bare carriage returns, so they end lines too.
            *lines, pending = re.split(rb"\r\n?|\n", pending + chunk)
            for line in lines:
                report.feed(line)
            pending = pending[:_MAX_LINE_BYTES]
        report.feed(pending)
        returncode = await process.wait()
    except BaseException:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        # Reading to the end lets the pipe close, so the transport is finished, not leaked.
        with contextlib.suppress(Exception):
            await asyncio.shield(stdout.read())
        await asyncio.shield(process.wait())
        raise
    return returncode, report


def _failure(
    verb: str, argv: Sequence[str], returncode: int, report: _Report, detail: str | None = None
) -> Par2Error:
    meaning = detail or _EXIT_MEANINGS.get(returncode, "unexpected exit status")
    last = report.tail[-1] if report.tail else "no output"
    return Par2Error(
        f"par2 {verb} failed (exit {returncode}): {meaning}; last output: {last}",
        argv=argv,
        returncode=returncode,
        output_tail=report.output_tail(),
        verify=report.verify_result(returncode),
    )


async def par2_verify(
    par2_path: Path, extra: Sequence[Path] = (), *, binary: str = "par2"
) -> VerifyResult:
    """Verify the files of a recovery set with ``par2 v``.

    par2 reads ``par2_path`` and every volume of the same base name beside it, and checks
    the targets named in it; ``extra`` are more files to scan (obfuscated or renamed data
    files, volumes under other names). They must lie in ``par2_path``'s directory tree.
    Raises ``Par2Error`` when par2 cannot run, cannot read the set, or reports something
    unreadable, and ``ValueError`` for an extra file outside the tree.
    """
    par2_path = _absolute(par2_path)
    argv = _argv("v", par2_path, extra, (), binary)
    returncode, report = await _run(argv, par2_path.parent)
    result = report.verify_result(returncode)
    if result is None:
        raise _failure("verify", argv, returncode, report)
    return result


async def par2_repair(
    par2_path: Path, extra: Sequence[Path] = (), *, purge: bool = False, binary: str = "par2"
) -> RepairResult:
    """Repair the files of a recovery set with ``par2 r``, in place.

    Files and arguments as for ``par2_verify``. par2 keeps each damaged file it rewrites
    as ``name.1`` (``.2``, ...) and renames matching extra files to their target names;
    with ``purge`` it deletes those backups and the PAR2 files once the files are correct.
    Raises ``Par2Error`` unless every file is correct afterwards; when there are too few
    recovery blocks its ``verify`` says how many more are needed.
    """
    par2_path = _absolute(par2_path)
    argv = _argv("r", par2_path, extra, ("-p",) if purge else (), binary)
    returncode, report = await _run(argv, par2_path.parent)
    if returncode != _EXIT_OK:
        raise _failure("repair", argv, returncode, report)
    if report.still_bad:
        bad = ", ".join(report.still_bad)
        raise _failure("repair", argv, returncode, report, f"still not correct: {bad}")
    return RepairResult(
        ok=True,
        repaired=tuple({**report.damaged, **report.missing}),
        renamed=tuple(report.renamed),
        output_tail=report.output_tail(),
        partial=tuple(report.partial),
    )
