"""PAR2: the packet parser, obfuscated-name matching, volume choice, and par2cmdline runs.

Recovery sets are made by the real ``par2`` program in a temporary directory, so the
parser reads what posters really upload and the wrapper reads par2's real report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import secrets
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from nntp.par2 import (
    FIRST_16K,
    NotEnoughRecoveryBlocks,
    Par2Error,
    Par2File,
    Par2Set,
    choose_volumes,
    estimate_recovery_blocks,
    match_by_md5_16k,
    md5_16k,
    par2_kind,
    par2_kind_in_name,
    par2_repair,
    par2_verify,
    parse_par2,
    read_par2_kind,
    recovery_blocks_in_name,
)
from tests.support.programs import needs, require

requires_par2 = needs("par2")

EMPTY = Par2Set(set_id=None, slice_size=None, files=(), recovery_blocks=0, creator=None)
SLICE = 16384
SMALL = "small.bin"  # shorter than 16 KiB: its "16k" MD5 covers all of it
BIG = "big.bin"  # 25 slices
# A name with quotes and " - " in it, as par2's report puts names between quotes.
ODD = 'mid "odd" - name.bin'  # 8 slices
# par2 -c7 -n3 spreads 7 recovery blocks over volumes of 1, 2 and 4.
VOLUMES = {"set.vol0+1.par2": 1, "set.vol1+2.par2": 2, "set.vol3+4.par2": 4}


@dataclass
class RecoverySet:
    dir: Path
    index: Path
    held: Path  # the volumes, in a subdirectory where par2 does not look for them itself
    contents: dict[str, bytes]

    def volume(self, name: str) -> Path:
        return self.held / name


@pytest.fixture
def recovery_set(tmp_path: Path) -> RecoverySet:
    require("par2")
    rng = random.Random(2024)
    contents = {
        SMALL: rng.randbytes(5000),
        BIG: rng.randbytes(400_000),
        ODD: rng.randbytes(123_457),
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run(
        ["par2", "create", "-q", "-q", f"-s{SLICE}", "-c7", "-n3", "--", "set.par2", *contents],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    held = tmp_path / "held"
    held.mkdir()
    for name in VOLUMES:
        (tmp_path / name).rename(held / name)
    return RecoverySet(tmp_path, tmp_path / "set.par2", held, contents)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def packet(set_id: bytes, kind: bytes, body: bytes) -> bytes:
    """A PAR2 packet built by hand, with a correct MD5."""
    rest = set_id + kind + body
    return b"PAR2\0PKT" + struct.pack("<Q", 32 + len(rest)) + md5(rest) + rest


def file_desc(set_id: bytes, file_id: bytes, name: bytes, data: bytes) -> bytes:
    fixed = file_id + md5(data) + md5(data[:FIRST_16K]) + struct.pack("<Q", len(data))
    padded = name + b"\0" * (-len(name) % 4)
    return packet(set_id, b"PAR 2.0\0FileDesc", fixed + padded)


def packet_offsets(data: bytes) -> list[int]:
    offsets, pos = [], data.find(b"PAR2\0PKT")
    while pos != -1:
        offsets.append(pos)
        pos = data.find(b"PAR2\0PKT", pos + struct.unpack_from("<Q", data, pos + 8)[0])
    return offsets


def described(par2: Par2Set) -> dict[str, tuple[int, bytes, bytes]]:
    return {f.name: (f.size, f.md5, f.md5_16k) for f in par2.files}


def expected(contents: dict[str, bytes]) -> dict[str, tuple[int, bytes, bytes]]:
    return {name: (len(data), md5(data), md5(data[:FIRST_16K])) for name, data in contents.items()}


# --- the parser ---------------------------------------------------------------------------


def test_index_describes_every_file(recovery_set: RecoverySet) -> None:
    par2 = parse_par2(recovery_set.index.read_bytes())

    assert par2.set_id is not None and len(par2.set_id) == 16
    assert par2.slice_size == SLICE
    assert described(par2) == expected(recovery_set.contents)
    assert par2.recovery_blocks == 0
    assert par2.creator is not None and par2.creator.startswith("Created by par2cmdline")


def test_volumes_hold_the_blocks_their_names_promise(recovery_set: RecoverySet) -> None:
    index = parse_par2(recovery_set.index.read_bytes())
    for name, blocks in VOLUMES.items():
        volume = parse_par2(recovery_set.volume(name).read_bytes())

        assert volume.recovery_blocks == blocks == recovery_blocks_in_name(name)
        assert volume.set_id == index.set_id
        assert volume.slice_size == SLICE
        assert described(volume) == expected(recovery_set.contents)


def test_index_and_volumes_concatenated_count_each_block_once(recovery_set: RecoverySet) -> None:
    data = recovery_set.index.read_bytes() + b"".join(
        recovery_set.volume(name).read_bytes() for name in VOLUMES
    )
    twice = data + recovery_set.volume("set.vol3+4.par2").read_bytes()

    assert parse_par2(twice).recovery_blocks == 7
    assert described(parse_par2(twice)) == expected(recovery_set.contents)


def test_a_corrupt_packet_is_skipped_and_the_rest_still_parses(recovery_set: RecoverySet) -> None:
    data = bytearray(recovery_set.index.read_bytes())
    data[data.index(BIG.encode())] ^= 0xFF

    par2 = parse_par2(bytes(data))

    assert sorted(f.name for f in par2.files) == sorted([SMALL, ODD])
    assert par2.slice_size == SLICE


def test_a_main_packet_with_a_wild_length_is_skipped(recovery_set: RecoverySet) -> None:
    data = bytearray(recovery_set.index.read_bytes())
    main = data.index(b"PAR 2.0\0Main") - 48
    struct.pack_into("<Q", data, main + 8, 2**62)

    par2 = parse_par2(bytes(data))

    assert par2.slice_size is None
    assert described(par2) == expected(recovery_set.contents)


def test_garbage_between_packets_is_stepped_over(recovery_set: RecoverySet) -> None:
    data = recovery_set.index.read_bytes()
    offsets = [*packet_offsets(data), len(data)]
    assert len(offsets) > 4
    rng = random.Random(7)
    noisy = b"".join(
        rng.randbytes(rng.randrange(1, 300)) + b"PAR2\0PKT" + rng.randbytes(40) + data[a:b]
        for a, b in itertools.pairwise(offsets)
    )

    assert parse_par2(noisy) == parse_par2(data)


def test_any_cut_of_an_index_gives_a_part_of_it_and_never_raises(
    recovery_set: RecoverySet,
) -> None:
    data = recovery_set.index.read_bytes()
    whole = set(parse_par2(data).files)
    seen: set[int] = set()
    for cut in range(len(data) + 1):
        for piece in (data[:cut], data[cut:]):
            files = set(parse_par2(piece).files)
            assert files <= whole
            seen.add(len(files))

    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PAR2\0PKT",
        b"PAR2\0PKT" + struct.pack("<Q", 2**64 - 1) + bytes(48),
        b"PAR2\0PKT" + struct.pack("<Q", 8) + bytes(200),
        random.Random(1).randbytes(100_000),
        b"\0" * 4096,
    ],
    ids=["empty", "magic only", "huge length", "short length", "random", "zeros"],
)
def test_garbage_gives_an_empty_set(data: bytes) -> None:
    assert parse_par2(data) == EMPTY


def test_names_are_given_raw_and_never_fail_to_decode() -> None:
    set_id = bytes(range(16))
    data = b"".join(
        [
            file_desc(set_id, b"a" * 16, b"caf\xe9.mkv", b"one"),
            file_desc(set_id, b"b" * 16, b"../../etc/passwd", b"two"),
            file_desc(set_id, b"c" * 16, "Film – 2024.mkv".encode(), b"three"),
            file_desc(set_id, b"d" * 16, b"abcd.mkv", b"four"),  # fills its space, no NUL
        ]
    )

    names = [f.name for f in parse_par2(data).files]

    assert names == ["café.mkv", "../../etc/passwd", "Film – 2024.mkv", "abcd.mkv"]
    assert names[0].encode("latin-1") == b"caf\xe9.mkv"


def test_packets_of_another_recovery_set_are_ignored() -> None:
    ours, theirs = b"o" * 16, b"t" * 16
    data = file_desc(ours, b"a" * 16, b"ours.mkv", b"x") + file_desc(
        theirs, b"b" * 16, b"theirs.mkv", b"y"
    )

    par2 = parse_par2(data)

    assert par2.set_id == ours
    assert [f.name for f in par2.files] == ["ours.mkv"]


def test_files_follow_the_order_of_the_main_packet() -> None:
    set_id = b"s" * 16
    main = packet(
        set_id, b"PAR 2.0\0Main\0\0\0\0", struct.pack("<QI", 4096, 2) + b"b" * 16 + b"a" * 16
    )
    data = (
        file_desc(set_id, b"a" * 16, b"a.mkv", b"a")
        + main
        + file_desc(set_id, b"b" * 16, b"b.mkv", b"b")
    )

    par2 = parse_par2(data)

    assert par2.slice_size == 4096
    assert [f.name for f in par2.files] == ["b.mkv", "a.mkv"]


@pytest.mark.parametrize(
    ("name", "blocks"),
    [
        ("x.vol07+08.par2", 8),
        ("Movie.2024.1080p.vol000+128.PAR2", 128),
        ("x.vol0+1.par2", 1),
        ("x.par2", 0),
        ("X.PAR2", 0),
        ("x.vol07+08.par2.1", None),
        ("x.vol07+08.rar", None),
        ("x.part01.rar", None),
        ("x.vol0+99999999.par2", None),
        ("", None),
    ],
)
def test_recovery_blocks_in_name(name: str, blocks: int | None) -> None:
    assert recovery_blocks_in_name(name) == blocks


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("x.vol07+08.par2", "volume"),
        ("x.vol07-08.PAR2", "volume"),
        ("x.par2", "index"),
        ("x.vol07+08.par2.1", None),
        ("b2d3075d94af88c6742b1fdfc34b225e", None),
    ],
)
def test_par2_kind_in_name(name: str, kind: str | None) -> None:
    assert par2_kind_in_name(name) == kind


# --- index or volume, by content ----------------------------------------------------------


def test_the_first_packets_tell_an_index_from_a_volume(recovery_set: RecoverySet) -> None:
    index = recovery_set.index.read_bytes()
    assert par2_kind(index) == "index"
    for name in VOLUMES:
        volume = recovery_set.volume(name).read_bytes()
        # par2cmdline starts every volume with a recovery slice: its header is enough.
        assert par2_kind(volume[:64]) == "volume"
        assert read_par2_kind(recovery_set.volume(name), 64) == "volume"
    assert read_par2_kind(recovery_set.index, 1 << 20) == "index"
    assert read_par2_kind(recovery_set.dir / BIG, 1 << 20) is None


def test_a_volume_whose_first_packets_are_critical_is_found_further_on() -> None:
    set_id = bytes(range(16))
    main = packet(set_id, b"PAR 2.0\0Main\0\0\0\0", struct.pack("<QI", 4, 0))
    recovery = packet(set_id, b"PAR 2.0\0RecvSlic", struct.pack("<I", 3) + b"abcd")
    assert par2_kind(main + recovery) == "volume"
    assert par2_kind(main + recovery[:64]) == "volume"  # the header alone tells
    assert par2_kind(main + recovery[:63]) == "index"  # nothing seen says otherwise


@pytest.mark.parametrize(
    "head",
    [b"", b"PAR2", b"RIFF....AVI ", b"\x1a\x45\xdf\xa3" + bytes(100), b"PAR2\0PKT"],
)
def test_what_is_not_a_par2_head(head: bytes) -> None:
    assert par2_kind(head) == ("index" if head == b"PAR2\0PKT" else None)


def test_a_wild_packet_length_stops_the_walk_without_error() -> None:
    head = b"PAR2\0PKT" + struct.pack("<Q", 2**63) + bytes(48) + b"PAR2\0PKT" + bytes(56)
    assert par2_kind(head) == "index"
    assert par2_kind(b"PAR2\0PKT" + struct.pack("<Q", 66) + bytes(100)) == "index"


# --- real names for obfuscated posts ------------------------------------------------------


def test_md5_16k_covers_the_first_16_kib_or_the_whole_short_file(
    recovery_set: RecoverySet,
) -> None:
    assert md5_16k(recovery_set.dir / SMALL) == md5(recovery_set.contents[SMALL])
    assert md5_16k(recovery_set.dir / BIG) == md5(recovery_set.contents[BIG][:FIRST_16K])
    assert md5_16k(recovery_set.dir / BIG) != md5(recovery_set.contents[BIG])


def test_obfuscated_files_get_their_real_names_back(recovery_set: RecoverySet) -> None:
    hidden = {secrets.token_hex(16): ODD, secrets.token_hex(16): SMALL}
    for obfuscated, real in hidden.items():
        (recovery_set.dir / real).rename(recovery_set.dir / obfuscated)
    (recovery_set.dir / "unrelated.nfo").write_bytes(b"not part of the set")
    on_disk = {str(path): md5_16k(path) for path in recovery_set.dir.iterdir() if path.is_file()}

    matches = match_by_md5_16k(parse_par2(recovery_set.index.read_bytes()), on_disk)

    assert {Path(path).name: f.name for path, f in matches.items()} == {**hidden, BIG: BIG}


def test_files_sharing_their_first_16_kib_are_not_guessed() -> None:
    head = b"h" * FIRST_16K
    one, two = head + b"1", head + b"2"
    par2 = Par2Set(
        b"s" * 16,
        SLICE,
        (
            Par2File(b"1" * 16, md5(one), md5(head), len(one), "one.mkv"),
            Par2File(b"2" * 16, md5(two), md5(head), len(two), "two.mkv"),
            Par2File(b"3" * 16, md5(b"x"), md5(b"x"), 1, "three.nfo"),
        ),
        0,
        None,
    )

    matches = match_by_md5_16k(par2, {"a1": md5(head), "b2": md5(b"x"), "c3": md5(b"?")})

    assert {path: f.name for path, f in matches.items()} == {"b2": "three.nfo"}


# --- choosing volumes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vols", "needed", "chosen"),
    [
        (VOLUMES, 3, ["set.vol1+2.par2", "set.vol0+1.par2"]),
        (VOLUMES, 4, ["set.vol3+4.par2"]),
        (VOLUMES, 5, ["set.vol3+4.par2", "set.vol0+1.par2"]),
        (VOLUMES, 7, ["set.vol3+4.par2", "set.vol1+2.par2", "set.vol0+1.par2"]),
        ({"a": 1, "b": 1, "c": 2}, 2, ["c"]),
        ({"a": 10, "b": 3, "c": 3, "d": 3}, 9, ["b", "c", "d"]),
        ({"x.par2": 0, "x.vol0+5.par2": 5}, 1, ["x.vol0+5.par2"]),
        (VOLUMES, 0, []),
        ({}, 0, []),
    ],
)
def test_choose_volumes(vols: dict[str, int], needed: int, chosen: list[str]) -> None:
    assert choose_volumes(vols, needed) == chosen


def test_choose_volumes_finds_the_smallest_total_that_suffices() -> None:
    rng = random.Random(11)
    for _ in range(300):
        vols = {
            f"v{i}": rng.choice([1, 2, 3, 4, 5, 8, 13, 16, 32]) for i in range(rng.randrange(1, 8))
        }
        needed = rng.randrange(1, sum(vols.values()) + 1)
        best = min(
            sum(vols[name] for name in subset)
            for size in range(1, len(vols) + 1)
            for subset in itertools.combinations(vols, size)
            if sum(vols[name] for name in subset) >= needed
        )

        chosen = choose_volumes(vols, needed)

        assert len(set(chosen)) == len(chosen)
        assert sum(vols[name] for name in chosen) == best


def test_choose_volumes_says_when_the_volumes_are_too_few() -> None:
    with pytest.raises(NotEnoughRecoveryBlocks) as caught:
        choose_volumes(VOLUMES, 8)

    assert (caught.value.needed, caught.value.available) == (8, 7)
    assert "8 recovery blocks are needed" in str(caught.value)


def test_choose_volumes_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match=r"x\.vol0"):
        choose_volumes({"x.vol0+70000.par2": 70_000}, 1)


# --- par2cmdline --------------------------------------------------------------------------


def damage(path: Path, *offsets: int) -> None:
    with open(path, "r+b") as file:
        for offset in offsets:
            file.seek(offset)
            file.write(b"\xde\xad\xbe\xef" * 8)


def assert_intact(recovery_set: RecoverySet) -> None:
    for name, data in recovery_set.contents.items():
        assert (recovery_set.dir / name).read_bytes() == data, name


@requires_par2
async def test_verify_an_intact_set(recovery_set: RecoverySet) -> None:
    result = await par2_verify(recovery_set.index, [recovery_set.volume(name) for name in VOLUMES])

    assert result.complete and result.repairable
    assert (result.blocks_needed, result.blocks_available) == (0, 7)
    assert (result.damaged, result.missing, result.renamed) == ((), (), ())


@requires_par2
async def test_fetch_only_the_volumes_a_repair_needs_then_repair(
    recovery_set: RecoverySet,
) -> None:
    damage(recovery_set.dir / BIG, 50_000, 200_000)  # two slices
    (recovery_set.dir / SMALL).unlink()  # one slice

    before = await par2_verify(recovery_set.index)

    assert not before.complete and not before.repairable
    assert (before.blocks_needed, before.blocks_available) == (3, 0)
    assert (before.damaged, before.missing) == ((BIG,), (SMALL,))
    assert "You need 3 more recovery blocks" in before.output_tail

    wanted = choose_volumes({n: recovery_blocks_in_name(n) or 0 for n in VOLUMES}, 3)
    assert sorted(wanted) == ["set.vol0+1.par2", "set.vol1+2.par2"]
    fetched = [recovery_set.volume(name) for name in wanted]

    ready = await par2_verify(recovery_set.index, fetched)

    assert ready.repairable and not ready.complete
    assert (ready.blocks_needed, ready.blocks_available) == (0, 3)

    repair = await par2_repair(recovery_set.index, fetched)

    assert repair.ok
    assert sorted(repair.repaired) == sorted([BIG, SMALL])
    assert_intact(recovery_set)
    assert (await par2_verify(recovery_set.index)).complete


@requires_par2
async def test_a_file_with_a_quoted_name_is_reported_by_that_name(
    recovery_set: RecoverySet,
) -> None:
    damage(recovery_set.dir / ODD, 70_000)

    result = await par2_verify(recovery_set.index, [recovery_set.volume("set.vol0+1.par2")])

    assert result.damaged == (ODD,)
    assert result.repairable


def obfuscate(recovery_set: RecoverySet, name: str) -> str:
    """Give a file of the set a random name, as an obfuscated post does; returns it."""
    obfuscated = secrets.token_hex(16)
    (recovery_set.dir / name).rename(recovery_set.dir / obfuscated)
    return obfuscated


@requires_par2
async def test_an_obfuscated_file_is_recognised_and_renamed_by_repair(
    recovery_set: RecoverySet,
) -> None:
    obfuscated = obfuscate(recovery_set, ODD)

    result = await par2_verify(recovery_set.index, [recovery_set.dir / obfuscated])

    assert result.renamed == ((obfuscated, ODD),)
    assert result.missing == (ODD,)
    assert result.repairable and result.blocks_needed == 0

    repair = await par2_repair(recovery_set.index, [recovery_set.dir / obfuscated])

    assert repair.renamed == ((obfuscated, ODD),)
    assert not (recovery_set.dir / obfuscated).exists()
    assert_intact(recovery_set)


@requires_par2
async def test_a_damaged_obfuscated_copy_is_reported_as_partial(
    recovery_set: RecoverySet,
) -> None:
    obfuscated = obfuscate(recovery_set, ODD)
    damage(recovery_set.dir / obfuscated, 70_000)
    volume = [recovery_set.volume("set.vol0+1.par2")]

    result = await par2_verify(recovery_set.index, [recovery_set.dir / obfuscated, *volume])

    assert result.partial == ((obfuscated, ODD),)
    assert result.renamed == () and result.missing == (ODD,)
    assert result.repairable

    repair = await par2_repair(recovery_set.index, [recovery_set.dir / obfuscated, *volume])

    # par2 writes the target anew and leaves the damaged copy to the caller.
    assert repair.repaired == (ODD,) and repair.partial == ((obfuscated, ODD),)
    assert (recovery_set.dir / obfuscated).exists()
    assert_intact(recovery_set)


@requires_par2
async def test_purge_leaves_only_the_repaired_files(recovery_set: RecoverySet) -> None:
    damage(recovery_set.dir / BIG, 100_000)
    for name in VOLUMES:  # beside the index, where par2 finds them itself
        recovery_set.volume(name).rename(recovery_set.dir / name)
    recovery_set.held.rmdir()

    repair = await par2_repair(recovery_set.index, purge=True)

    assert repair.repaired == (BIG,)
    assert sorted(path.name for path in recovery_set.dir.iterdir()) == sorted(recovery_set.contents)
    assert_intact(recovery_set)


@requires_par2
async def test_a_set_too_damaged_to_repair(recovery_set: RecoverySet) -> None:
    (recovery_set.dir / BIG).unlink()  # 25 slices, 7 recovery blocks
    volumes = [recovery_set.volume(name) for name in VOLUMES]

    result = await par2_verify(recovery_set.index, volumes)

    assert not result.repairable and not result.complete
    assert (result.blocks_needed, result.blocks_available) == (18, 7)
    assert result.missing == (BIG,)

    with pytest.raises(Par2Error) as caught:
        await par2_repair(recovery_set.index, volumes)

    error = caught.value
    assert error.returncode == 2
    assert error.verify is not None and error.verify.blocks_needed == 18
    assert "Repair is not possible" in error.output_tail
    assert "repair is not possible" in str(error)
    assert "r" in error.argv and str(recovery_set.index) in error.argv
    assert (recovery_set.dir / SMALL).read_bytes() == recovery_set.contents[SMALL]


@requires_par2
async def test_a_par2_file_that_is_not_one(tmp_path: Path) -> None:
    junk = tmp_path / "junk.par2"
    junk.write_bytes(random.Random(3).randbytes(3000))

    with pytest.raises(Par2Error) as caught:
        await par2_verify(junk)

    assert caught.value.returncode == 4
    assert "main packet" in str(caught.value)


@requires_par2
async def test_a_missing_par2_file(tmp_path: Path) -> None:
    with pytest.raises(Par2Error) as caught:
        await par2_verify(tmp_path / "absent.par2")

    assert caught.value.returncode == 3


async def test_a_missing_par2_program(tmp_path: Path) -> None:
    with pytest.raises(Par2Error, match="not found") as caught:
        await par2_verify(tmp_path / "x.par2", binary="no-such-par2-program")

    assert caught.value.returncode is None


async def test_extra_files_outside_the_set_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    with pytest.raises(ValueError, match="not inside"):
        await par2_verify(tmp_path / "set" / "x.par2", [tmp_path / "elsewhere.bin"])


def child_pids() -> set[int]:
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in children.read_text().split())
    return pids


@pytest.fixture
def slow_extra(recovery_set: RecoverySet) -> Path:
    """An extra file that keeps par2 busy for seconds, in a set it has to scan it for."""
    if not any(Path("/proc/self/task").glob("*/children")):
        pytest.skip("needs /proc/<pid>/task/<tid>/children")
    (recovery_set.dir / SMALL).unlink()  # par2 scans extra files only when something is amiss
    slow = recovery_set.dir / "zeros.bin"
    with open(slow, "wb") as file:
        file.truncate(4 * 1024**3)  # sparse: no disk space used
    return slow


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@requires_par2
async def test_cancelling_kills_and_reaps_par2(recovery_set: RecoverySet, slow_extra: Path) -> None:
    before = child_pids()
    task = asyncio.create_task(par2_verify(recovery_set.index, [slow_extra]))
    started: set[int] = set()
    for _ in range(200):
        await asyncio.sleep(0.02)
        started = child_pids() - before
        if started:
            break
    assert started, "par2 did not start"
    await asyncio.sleep(0.3)
    assert not task.done()

    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert loop.time() - cancelled_at < 5, "par2 was left to finish its scan"
    assert not started & child_pids()
    assert not any(exists(pid) for pid in started)


# --- real-world files ---------------------------------------------------------------------


# Option sets as posters use them: redundancy in percent or blocks, block size or count,
# uniform or exponential volumes, volumes capped at the largest file, no volumes at all.
PAR2CMDLINE_SETS = {
    "one file, 10 %, 4 volumes": (["-r10", "-n4"], [3_000_000]),
    "three files, 5 %, uniform": (["-r5", "-n3", "-u"], [900_000, 2_000_000, 123_457]),
    "64 KiB blocks, 10 blocks in 2": (["-s65536", "-c10", "-n2"], [1_500_000]),
    "300 blocks, 20 %": (["-b300", "-r20", "-n5"], [2_345_678]),
    "volumes limited in size": (["-r30", "-l"], [400_000, 1_200_000]),
    "index only": (["-c0"], [500_000]),
}


@requires_par2
@pytest.mark.parametrize(("options", "sizes"), PAR2CMDLINE_SETS.values(), ids=PAR2CMDLINE_SETS)
def test_sets_made_by_par2cmdline(tmp_path: Path, options: list[str], sizes: list[int]) -> None:
    rng = random.Random(len(sizes) * 7 + sizes[0])
    contents = {f"file{i}.bin": rng.randbytes(size) for i, size in enumerate(sizes)}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run(
        ["par2", "create", "-q", "-q", *options, "--", "set.par2", *contents],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    index = parse_par2((tmp_path / "set.par2").read_bytes())
    assert index.set_id is not None and index.slice_size is not None
    assert described(index) == expected(contents)
    assert index.recovery_blocks == 0 and index.critical_bytes > 0
    assert par2_kind((tmp_path / "set.par2").read_bytes()) == "index"
    volumes = sorted(p for p in tmp_path.iterdir() if ".vol" in p.name)
    assert bool(volumes) == ("-c0" not in options)
    for path in volumes:
        data = path.read_bytes()
        volume = parse_par2(data)
        blocks = recovery_blocks_in_name(path.name)
        assert volume.set_id == index.set_id, path.name
        assert volume.recovery_blocks == blocks, path.name
        assert volume.critical_bytes == index.critical_bytes, path.name
        assert described(volume) == expected(contents)
        assert par2_kind(data[:64]) == "volume", path.name
        # Under a random name, its size alone gives the count back.
        estimate = estimate_recovery_blocks(len(data), index.slice_size, index.critical_bytes)
        assert estimate == blocks, path.name


@pytest.mark.parametrize(
    ("size", "slice_size", "critical", "blocks"),
    [
        (0, 4, 100, 0),
        (100, 0, 100, 0),
        (167, 100, 0, 0),  # one slice packet is 168 bytes
        (168, 100, 0, 1),
        (168 + 100, 100, 100, 1),
        (5 * 168 + 3 * 100, 100, 100, 5),  # five blocks: three copies of the critical packets
        (5 * 168 + 3 * 100 - 1, 100, 100, 4),
        (10**12, 4, 0, 65535),  # never more than a PAR2 set can number
    ],
)
def test_estimate_recovery_blocks(size: int, slice_size: int, critical: int, blocks: int) -> None:
    assert estimate_recovery_blocks(size, slice_size, critical) == blocks
