"""nntp.rar: RAR4/RAR5 headers mapped to byte pieces, checked against real archives.

The archives are read in place from ../shared/fixtures/rar. What the parser says is
cross-checked with unar (the bytes it extracts) and lsar (the part offsets it lists), and
hostile input is built here with correct CRCs so that the checks behind the CRC are hit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from nntp.rar import (
    RAR4_SIGNATURE,
    RAR5_SIGNATURE,
    NeedMoreData,
    RarEntry,
    RarError,
    RarPiece,
    RarVolumeInfo,
    VolumeScanner,
    assemble,
    detect,
    parse_volume,
    volume_order,
)
from tests.support.programs import needs
from tests.support.rar import (
    extra_record,
    movie_set,
    r4_block,
    r4_end,
    r4_file,
    r4_main,
    r5_end,
    r5_file,
    r5_header,
    r5_main,
    vint,
)

STORE_SETS = {
    "rar3-vols": ["rar3-vols.part1.rar", "rar3-vols.part2.rar", "rar3-vols.part3.rar"],
    "rar3-old": ["rar3-old.rar", "rar3-old.r00", "rar3-old.r01"],
    "rar5-vols": ["rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"],
}
BIGFILE_CRC = 0x509AD74C  # from the rarfile .exp dumps
SMALLFILE_CRC = 0xD08A1F86
SUBDIR_FILES = {
    "sub/dir2/file2.txt": 0xC904A4C7,
    "sub/with space/long fn.txt": 0x71B7247D,
    "sub/üȵĩöḋè/file.txt": 0x2FEC89C1,
    "sub/dir1/file1.txt": 0xE229F704,
}
SUBDIR_DIRS = ["sub/dir2", "sub/with space", "sub/empty", "sub/üȵĩöḋè", "sub/dir1", "sub"]
SABNZBD_ORDER = ["df604a04", "b0a3af52", "8a5c1f24", "032f4c17", "dee6a48c", "bdfeb75c"]

needs_unar = needs("unar")
needs_lsar = needs("lsar")


@pytest.fixture(scope="module")
def rardir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "rar" / "rarfile"


def volume(path: Path) -> RarVolumeInfo:
    data = path.read_bytes()
    return parse_volume(data, volume_size=len(data))


def set_paths(rardir: Path, name: str) -> list[Path]:
    return [rardir / part for part in STORE_SETS[name]]


def read_pieces(paths: list[Path], pieces: tuple[RarPiece, ...]) -> bytes:
    out = bytearray()
    for piece in pieces:
        with paths[piece.volume].open("rb") as handle:
            handle.seek(piece.offset)
            chunk = handle.read(piece.length)
        assert len(chunk) == piece.length
        out += chunk
    return bytes(out)


def read_pieces_from_bytes(volumes: list[bytes], pieces: tuple[RarPiece, ...]) -> bytes:
    return b"".join(volumes[p.volume][p.offset : p.offset + p.length] for p in pieces)


def unar_extract(first: Path, dest: Path) -> Path:
    subprocess.run(
        ["unar", "-q", "-f", "-D", "-o", str(dest), str(first)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dest


def isolated(paths: list[Path], folder: Path) -> Path:
    """The first of ``paths``, linked alone into ``folder``.

    lsar takes sibling fixtures with similar names (rar3-solid.rar beside rar5-solid.rar)
    for volumes of one set; links in a folder of their own keep it to the files meant.
    """
    folder.mkdir(exist_ok=True)
    for path in paths:
        (folder / path.name).symlink_to(path)
    return folder / paths[0].name


def lsar_parts(first: Path) -> dict[str, list[tuple[int, int, int]]]:
    """lsar's (offset in the concatenated volumes, length, CRC) of each file's parts."""
    listing = subprocess.run(
        ["lsar", "-j", str(first)], check=True, capture_output=True, timeout=60
    ).stdout
    found: dict[str, list[tuple[int, int, int]]] = {}
    for item in json.loads(listing)["lsarContents"]:
        if "RAR5InputParts" in item:
            parts = item["RAR5InputParts"]
        else:
            parts = [p for solid in item["XADSolidObject"] for p in solid["Parts"]]
        found[item["XADFileName"]] = [
            (p["Offset"], p["InputLength"], p.get("CRC32", 0)) for p in parts
        ]
    return found


# -- detection -------------------------------------------------------------------------


def test_detect_tells_the_format_from_the_signature(rardir: Path) -> None:
    assert detect((rardir / "rar3-vols.part1.rar").read_bytes()) == 4
    assert detect((rardir / "rar5-vols.part1.rar").read_bytes()[:8]) == 5
    assert detect(RAR4_SIGNATURE) == 4
    assert detect(b"RE~^\0\0\0\0") is None  # RAR 1.4: not supported
    assert detect(b"Rar!\x1a\x07\x02\x00") is None  # an unknown future version
    assert detect(b"PK\x03\x04") is None
    assert detect(b"") is None
    assert detect(RAR5_SIGNATURE[:6]) is None


# -- store-mode sets against unar and lsar ----------------------------------------------


@needs_unar
@pytest.mark.parametrize("set_name", sorted(STORE_SETS))
def test_store_sets_read_in_place_equal_unar(rardir: Path, tmp_path: Path, set_name: str) -> None:
    paths = set_paths(rardir, set_name)
    infos = [volume(p) for p in paths]
    entries = assemble(infos)
    assert [(e.name, e.size, e.stored) for e in entries] == [
        ("vols/bigfile.txt", 205000, True),
        ("vols/smallfile.txt", 2050, True),
    ]
    assert [e.crc32 for e in entries] == [BIGFILE_CRC, SMALLFILE_CRC]
    big, small = entries
    assert [p.volume for p in big.pieces] == [0, 1, 2]
    assert [p.volume for p in small.pieces] == [2]
    out = unar_extract(paths[0], tmp_path)
    for entry in entries:
        content = read_pieces(paths, entry.pieces)
        assert content == (out / entry.name).read_bytes()
        assert zlib.crc32(content) == entry.crc32


@needs_lsar
@pytest.mark.parametrize(
    "files",
    [
        *STORE_SETS.values(),
        *(
            [single]
            for single in ("rar3-subdirs.rar", "rar5-subdirs.rar", "seektest.rar", "rar5-crc.rar")
        ),
        # (not rar3-solid: lsar lists a RAR4 solid stream as one object, not per file)
        *([single] for single in ("rar5-solid.rar", "rar5-psw.rar")),
    ],
)
def test_pieces_and_part_crcs_match_lsar(rardir: Path, tmp_path: Path, files: list[str]) -> None:
    paths = [rardir / f for f in files]
    infos = [volume(p) for p in paths]
    base = [sum(p.stat().st_size for p in paths[:i]) for i in range(len(paths))]
    part_crcs: dict[str, list[int | None]] = {}
    for info in infos:
        for part in info.entries:
            if part.data_size:
                part_crcs.setdefault(part.name, []).append(part.crc32)
    listed = lsar_parts(isolated(paths, tmp_path / "links"))
    for entry in assemble(infos):
        if entry.is_dir:
            continue
        ours = [(base[p.volume] + p.offset, p.length) for p in entry.pieces]
        assert ours == [(offset, length) for offset, length, _ in listed[entry.name]]
        assert part_crcs[entry.name] == [crc for _, _, crc in listed[entry.name]]


def test_split_parts_carry_the_crc_of_their_own_bytes(rardir: Path) -> None:
    for set_name in STORE_SETS:
        paths = set_paths(rardir, set_name)
        for index, info in enumerate(volume(p) for p in paths):
            for part in info.entries:
                data = read_pieces(paths, (RarPiece(index, part.data_offset, part.data_size),))
                if part.split_after:
                    assert zlib.crc32(data) == part.crc32, (set_name, index)
                elif not part.split_before:
                    assert zlib.crc32(data) == part.crc32


@needs_unar
@pytest.mark.parametrize("set_name", ["rar3-vols", "rar5-vols"])
def test_locate_maps_any_range_across_volumes(rardir: Path, tmp_path: Path, set_name: str) -> None:
    paths = set_paths(rardir, set_name)
    big = assemble([volume(p) for p in paths])[0]
    expected = (unar_extract(paths[0], tmp_path) / big.name).read_bytes()
    first_len = big.pieces[0].length
    spans = [(0, big.size), (0, 0), (big.size, 0), (first_len - 10, 20), (first_len, 1)]
    rng = random.Random(7)
    spans += [
        (start, rng.randrange(big.size - start + 1)) for start in rng.sample(range(big.size), 50)
    ]
    for start, length in spans:
        pieces = big.locate(start, length)
        assert read_pieces(paths, pieces) == expected[start : start + length]
        assert all(p.length > 0 for p in pieces)
    assert len(big.locate(first_len - 10, 20)) == 2
    with pytest.raises(ValueError):
        big.locate(big.size - 1, 2)
    with pytest.raises(ValueError):
        big.locate(-1, 1)


# -- the other fixture archives ---------------------------------------------------------


@needs_unar
@pytest.mark.parametrize("archive", ["rar3-subdirs.rar", "rar5-subdirs.rar"])
def test_subdirs_names_dirs_and_bytes(rardir: Path, tmp_path: Path, archive: str) -> None:
    path = rardir / archive
    info = volume(path)
    assert not info.is_multivolume and info.is_first and not info.has_next
    entries = assemble([info])
    files = [e for e in entries if not e.is_dir]
    dirs = [e for e in entries if e.is_dir]
    assert {e.name: e.crc32 for e in files} == SUBDIR_FILES
    assert [e.name for e in dirs] == SUBDIR_DIRS
    assert all(e.stored for e in files) and not any(e.stored for e in dirs)
    assert all(e.size == 0 and e.pieces == () for e in dirs)
    out = unar_extract(isolated([path], tmp_path / "links"), tmp_path / "out")
    for entry in files:
        assert read_pieces([path], entry.pieces) == (out / entry.name).read_bytes()


@needs_unar
@pytest.mark.parametrize("archive", ["seektest.rar", "rar5-crc.rar"])
def test_mixed_archive_only_stest2_is_stored(rardir: Path, tmp_path: Path, archive: str) -> None:
    path = rardir / archive
    stest1, stest2 = assemble([volume(path)])
    assert (stest1.name, stest1.stored, stest1.size) == ("stest1.txt", False, 2048)
    assert stest1.method in (3, 5) and stest1.pieces[0].length < 2048
    assert (stest2.name, stest2.stored, stest2.method) == ("stest2.txt", True, 0)
    content = read_pieces([path], stest2.pieces)
    out = unar_extract(isolated([path], tmp_path / "links"), tmp_path / "out")
    assert content == (out / "stest2.txt").read_bytes()
    assert zlib.crc32(content) == stest2.crc32 == 0xC5B7E6A2
    with pytest.raises(RarError, match="not stored"):
        stest1.locate(0, 1)


@pytest.mark.parametrize("archive", ["rar3-solid.rar", "rar5-solid.rar"])
def test_solid_compressed_archives_are_not_stored(rardir: Path, archive: str) -> None:
    info = volume(rardir / archive)
    assert info.solid
    entries = assemble([info])
    assert [(e.name, e.method, e.solid, e.stored) for e in entries] == [
        ("stest1.txt", 3, True, False),
        ("stest2.txt", 3, True, False),
    ]


def test_unicode_names_in_a_rar4_archive(rardir: Path) -> None:
    names = [e.name for e in assemble([volume(rardir / "unicode.rar")])]
    assert names == ["уииоотивл.txt", "𝐀𝐁𝐁𝐂.txt"]


@pytest.mark.parametrize(
    ("archive", "version"), [("rar5-hpsw.rar", 5), ("rar3-comment-hpsw.rar", 4)]
)
def test_encrypted_headers_hide_the_entries(rardir: Path, archive: str, version: int) -> None:
    info = volume(rardir / archive)
    assert (info.version, info.headers_encrypted, info.entries, info.complete) == (
        version,
        True,
        (),
        True,
    )
    with pytest.raises(RarError, match="encrypted headers"):
        assemble([info])


def test_encrypted_file_data_is_listed_but_not_stored(rardir: Path) -> None:
    info = volume(rardir / "rar5-psw.rar")
    assert not info.headers_encrypted
    stest1, stest2 = assemble([info])
    assert stest1.encrypted and stest2.encrypted
    assert stest2.method == 0 and not stest2.stored
    assert stest2.pieces[0].length == 2048  # the ciphertext, not the content
    with pytest.raises(RarError):
        stest2.locate(0, 10)


def test_sabnzbd_encrypted_obfuscated_set_cannot_be_ordered(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "rar" / "sabnzbd_fully_encrypted_and_obfuscated_rars"
    heads = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(heads) == 6
    infos = {name: parse_volume(data, volume_size=len(data)) for name, data in heads.items()}
    for info in infos.values():
        assert (info.version, info.headers_encrypted, info.volume_number) == (5, True, None)
    # Documented: with encrypted headers and random names neither source gives an order.
    with pytest.raises(RarError, match=r"cannot tell the volume order.*headers encrypted"):
        volume_order(heads)
    true_order = [next(n for n in heads if n.startswith(p)) for p in SABNZBD_ORDER]
    with pytest.raises(RarError, match="encrypted headers"):
        assemble([infos[name] for name in true_order])


def test_nzbget_rar4_encrypted_set_keeps_its_main_headers(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "rar" / "nzbget_rarrenamer"
    names = [f"testfile3encnam.part0{i}.rar" for i in (1, 2, 3)]
    heads = {name: (folder / name).read_bytes() for name in names}
    infos = [parse_volume(heads[n]) for n in names]
    assert all(i.headers_encrypted and i.is_multivolume and i.new_numbering for i in infos)
    assert [i.is_first for i in infos] == [True, False, False]
    assert volume_order(dict(reversed(heads.items()))) == names
    hex_names = {f"{i:032x}": heads[name] for i, name in enumerate(reversed(names))}
    with pytest.raises(RarError, match="cannot tell"):
        volume_order(hex_names)


# -- volume order -----------------------------------------------------------------------


@pytest.mark.parametrize("set_name", sorted(STORE_SETS))
def test_volume_order_reads_numbers_from_whole_volumes(rardir: Path, set_name: str) -> None:
    paths = set_paths(rardir, set_name)
    rng = random.Random(set_name)
    shuffled = paths[:]
    rng.shuffle(shuffled)
    by_name = {p.name: p.read_bytes() for p in shuffled}
    assert volume_order(by_name) == [p.name for p in paths]
    # Hex names that sort against the true order, so that only the headers can tell it.
    hex_of = {p: f"{0xC0FFEE - paths.index(p):016x}" for p in shuffled}
    hexed = {hex_of[p]: p.read_bytes() for p in shuffled}
    assert volume_order(hexed) == [hex_of[p] for p in paths] == sorted(hexed, reverse=True)
    infos = {hex_of[p]: volume(p) for p in shuffled}
    assert volume_order(infos) == [hex_of[p] for p in paths]


def test_volume_order_rar5_needs_only_the_heads(rardir: Path) -> None:
    paths = set_paths(rardir, "rar5-vols")
    hexed = {f"{0xFEED - i:x}": p.read_bytes()[:200] for i, p in enumerate(paths)}
    assert volume_order(hexed) == [f"{0xFEED - i:x}" for i in range(3)]


def test_volume_order_rar4_heads_fall_back_to_names(rardir: Path) -> None:
    for set_name in ("rar3-vols", "rar3-old"):
        paths = set_paths(rardir, set_name)
        heads = {p.name: p.read_bytes()[:200] for p in reversed(paths)}
        assert volume_order(heads) == [p.name for p in paths]
        # Without end blocks only the first volume is marked: hex names cannot be ordered.
        hexed = {f"{i:08x}": p.read_bytes()[:200] for i, p in enumerate(reversed(paths))}
        with pytest.raises(RarError, match="cannot tell"):
            volume_order(hexed)


def test_volume_order_refuses_names_that_contradict_headers(rardir: Path) -> None:
    first, second, _ = set_paths(rardir, "rar3-vols")
    swapped = {"x.part2.rar": first.read_bytes()[:200], "x.part1.rar": second.read_bytes()[:200]}
    with pytest.raises(RarError, match="by its headers"):
        volume_order(swapped)


def test_volume_order_refuses_duplicates_mixes_and_junk(rardir: Path) -> None:
    first = (rardir / "rar5-vols.part1.rar").read_bytes()
    with pytest.raises(RarError, match="both volume 0"):
        volume_order({"a": first, "b": first})
    with pytest.raises(RarError, match="mix"):
        volume_order({"a": first, "b": (rardir / "rar3-vols.part2.rar").read_bytes()})
    with pytest.raises(RarError, match="not a RAR"):
        volume_order({"a": first, "b": b"PK\x03\x04" + bytes(100)})
    with pytest.raises(NeedMoreData):
        volume_order({"a": first[:12]})
    assert volume_order({}) == []
    assert volume_order({"only": first}) == ["only"]


def test_volume_order_by_conventional_names() -> None:
    head = RAR4_SIGNATURE + r4_main(0x0001)  # a RAR4 volume header that gives no number
    names = ["m.rar", *(f"m.r{i:02d}" for i in range(100)), "m.s00", "m.s01"]
    assert volume_order({n: head for n in reversed(names)}) == names
    parts = [f"m.part{i:03d}.rar" for i in range(1, 120)]
    assert volume_order({n: head for n in reversed(parts)}) == parts
    numbered = [f"m.{i:03d}" for i in range(1, 12)]
    assert volume_order({n: head for n in reversed(numbered)}) == numbered


# -- assemble: continuity ---------------------------------------------------------------


def test_assemble_refuses_gaps_and_disorder(rardir: Path) -> None:
    one, two, three = (volume(p) for p in set_paths(rardir, "rar5-vols"))
    assert len(assemble([one, two, three])) == 2
    bad_sets: list[tuple[list[RarVolumeInfo], str]] = [
        ([one, three], "missing or out of order"),
        ([one, three, two], "missing or out of order"),
        ([one], "ends inside"),
        ([one, two], "ends inside"),
        ([two, three], "starts at volume number 1"),
        ([one, two, three, three], "last of its set"),
        ([one, one, two, three], "number 0 after 0"),
        ([one, dataclasses.replace(two, entries=()), three], "volume 1 does not continue"),
    ]
    # Without volume numbers (as old RAR4 volumes), continuity alone must still catch gaps.
    plain = [dataclasses.replace(v, volume_number=None) for v in (one, two, three)]
    bad_sets += [
        ([plain[0], plain[2]], "packed bytes"),
        ([plain[1], plain[2]], "from a volume not given"),
        ([plain[0], plain[0], plain[1]], "does not continue"),
    ]
    for volumes, message in bad_sets:
        with pytest.raises(RarError, match=message):
            assemble(volumes)


def test_assemble_refuses_mismatched_volumes(rardir: Path) -> None:
    vols3 = [volume(p) for p in set_paths(rardir, "rar3-vols")]
    vols5 = [volume(p) for p in set_paths(rardir, "rar5-vols")]
    with pytest.raises(RarError, match="RAR4"):
        assemble([vols5[0], vols3[1], vols3[2]])
    single = volume(rardir / "seektest.rar")
    with pytest.raises(RarError, match="not part of a multi-volume set"):
        assemble([single, single])
    renamed = dataclasses.replace(
        vols5[1], entries=(dataclasses.replace(vols5[1].entries[0], name="other.txt"),)
    )
    with pytest.raises(RarError, match="does not continue"):
        assemble([vols5[0], renamed, vols5[2]])
    big, small = vols5[0].entries[0], vols5[2].entries[1]
    crowded = dataclasses.replace(vols5[0], entries=(big, small))
    with pytest.raises(RarError, match="is not its last file"):
        assemble([crowded, vols5[1], vols5[2]])
    moved = dataclasses.replace(vols5[2], entries=vols5[2].entries[::-1])
    with pytest.raises(RarError, match="does not continue"):
        assemble([vols5[0], vols5[1], moved])
    assert assemble([]) == ()


def test_assemble_needs_complete_scans(rardir: Path) -> None:
    data = (rardir / "rar5-vols.part1.rar").read_bytes()
    scanner = VolumeScanner(volume_size=len(data))
    scanner.feed(0, data[:200])
    partial = scanner.info()
    assert not partial.complete and len(partial.entries) == 1
    with pytest.raises(RarError, match="not scanned to its end"):
        assemble([partial])


def test_end_blocks_decide_has_next_and_numbers() -> None:
    # A set whose first volume ends exactly where a file does: only the end block tells
    # that another volume follows.
    first = (
        RAR4_SIGNATURE
        + r4_main(0x0001 | 0x0010 | 0x0100)
        + r4_file(b"a.bin", b"aaaa")
        + r4_end(0x0001, number=0)
    )
    second = RAR4_SIGNATURE + r4_main(0x0001 | 0x0010) + r4_file(b"b.bin", b"bb") + r4_end(number=1)
    infos = [parse_volume(first), parse_volume(second)]
    assert [(i.has_next, i.volume_number, i.is_first) for i in infos] == [
        (True, 0, True),
        (False, 1, False),
    ]
    entries = assemble(infos)
    assert [(e.name, e.pieces[0].volume) for e in entries] == [("a.bin", 0), ("b.bin", 1)]
    assert volume_order({"zz": second, "aa": first}) == ["aa", "zz"]
    rar5_first = RAR5_SIGNATURE + r5_main(0x0001) + r5_file(b"a", b"aa") + r5_end(more=True)
    assert parse_volume(rar5_first).has_next
    # With the end block saying "last" the set ends there, whatever follows.
    with pytest.raises(RarError, match="last of its set"):
        assemble([dataclasses.replace(infos[0], has_next=False), infos[1]])


def test_crafted_rar5_set_with_links_dirs_and_unknown_size() -> None:
    content = bytes(range(256)) * 40
    volumes = movie_set(content, [1000, 1000, 7000])  # the second part is empty
    infos = [parse_volume(v) for v in volumes]
    (movie,) = assemble(infos)
    assert movie.stored and movie.size == len(content) and movie.crc32 == zlib.crc32(content)
    assert [p.volume for p in movie.pieces] == [0, 2, 3]  # empty pieces are left out
    assert read_pieces_from_bytes(volumes, movie.pieces) == content
    link_extra = extra_record(5, vint(1) + vint(0) + vint(0))  # redirection: a hard link
    crypt_extra = extra_record(1, bytes(12))  # file encryption
    archive = (
        RAR5_SIGNATURE
        + r5_main()
        + r5_file(b"dir", b"", file_flags=0x0001)
        + r5_file(b"link", b"", extra=link_extra, size=10)
        + r5_file(b"secret", b"x" * 32, extra=crypt_extra, size=20)
        + r5_file(b"unknown", b"abc", file_flags=0x0008 | 0x0004, size=0)
        + r5_file(b"solid", b"zz", method=3)
        + r5_end()
    )
    entries = {e.name: e for e in assemble([parse_volume(archive)])}
    assert entries["dir"].is_dir and not entries["dir"].stored
    assert entries["link"].is_link and not entries["link"].stored
    assert entries["secret"].encrypted and not entries["secret"].stored
    assert entries["unknown"].stored and entries["unknown"].size == 3
    assert entries["solid"].method == 3
    with pytest.raises(RarError, match="packed bytes"):
        assemble(
            [parse_volume(RAR5_SIGNATURE + r5_main() + r5_file(b"a", b"abc", size=9) + r5_end())]
        )


# -- incremental parsing ----------------------------------------------------------------


def all_fixture_volumes(shared_fixtures: Path) -> list[Path]:
    rar = shared_fixtures / "rar"
    return sorted(p for p in rar.rglob("*") if p.is_file() and not p.name.endswith(".exp"))


def cut_points(size: int) -> list[int]:
    if size <= 16384:
        return list(range(size))
    return sorted({*range(1024), *range(size - 4096, size), *range(0, size, 97)})


def test_truncated_heads_ask_for_more_and_never_answer_wrong(shared_fixtures: Path) -> None:
    for path in all_fixture_volumes(shared_fixtures):
        data = path.read_bytes()
        view = memoryview(data)  # heads without copying
        full = parse_volume(data, volume_size=len(data))
        assert full.complete
        assert parse_volume(data) == full  # every fixture volume has its end block
        for size in (None, len(data)):
            for cut in cut_points(full.end_offset):
                try:
                    parse_volume(view[:cut], volume_size=size)
                except NeedMoreData as more:
                    assert cut < more.bytes_needed <= full.end_offset, (path.name, cut)
                else:
                    pytest.fail(f"{path.name}: a {cut}-byte head gave a result")


def test_following_need_more_data_converges_on_the_full_result(shared_fixtures: Path) -> None:
    for path in all_fixture_volumes(shared_fixtures):
        data = path.read_bytes()
        head_len, asks = 0, 0
        while True:
            try:
                info = parse_volume(data[:head_len], volume_size=len(data))
                break
            except NeedMoreData as more:
                assert more.bytes_needed > head_len
                head_len, asks = more.bytes_needed, asks + 1
        assert info == parse_volume(data, volume_size=len(data))
        assert asks <= 4 * (len(info.entries) + 4)


def test_scanner_reads_only_header_bytes_of_a_sparse_volume(rardir: Path) -> None:
    for path in [*set_paths(rardir, "rar5-vols"), *set_paths(rardir, "rar3-vols")]:
        data = path.read_bytes()
        scanner = VolumeScanner(volume_size=len(data))
        reads: list[tuple[int, int]] = []
        while (offset := scanner.next_offset) is not None:
            assert scanner.need > 0
            reads.append((offset, scanner.need))
            scanner.feed(offset, data[offset : offset + scanner.need])
        assert scanner.done and scanner.need == 0
        assert scanner.info() == parse_volume(data, volume_size=len(data))
        assert sum(length for _, length in reads) < 400, reads
        if len(data) > 90000:
            assert any(offset > 90000 for offset, _ in reads)  # the tail headers were read


def test_scanner_takes_big_chunks_and_short_ones(rardir: Path) -> None:
    data = (rardir / "rar3-vols.part3.rar").read_bytes()
    scanner = VolumeScanner()
    scanner.feed(0, data[:5])
    assert (scanner.next_offset, scanner.need) == (0, 16)
    with pytest.raises(NeedMoreData):
        scanner.info()
    scanner.feed(0, bytearray(data[:100]))
    assert len(scanner.info().entries) == 1
    assert scanner.next_offset == 450  # the next header, after the split file's data
    with pytest.raises(ValueError, match="cover offset 450"):
        scanner.feed(500, data[500:])
    scanner.feed(400, memoryview(data)[400:])
    assert scanner.done and scanner.info() == parse_volume(data)
    scanner.feed(0, b"ignored once done")
    assert scanner.next_offset is None


def test_volume_without_end_block_needs_its_size(rardir: Path) -> None:
    data = (rardir / "rar3-vols.part1.rar").read_bytes()[:-20]  # drop the end block
    with pytest.raises(NeedMoreData):
        parse_volume(data)
    info = parse_volume(data, volume_size=len(data))
    assert info.complete and info.has_next and info.volume_number == 0
    middle = (rardir / "rar3-vols.part2.rar").read_bytes()[:-20]
    assert parse_volume(middle, volume_size=len(middle)).volume_number is None


# -- hostile input ----------------------------------------------------------------------


def flipped(data: bytes, at: int) -> bytes:
    bad = bytearray(data)
    bad[at] ^= 0x01
    return bytes(bad)


def expect_rar_error(build: Callable[[], bytes], match: str) -> None:
    data = build()
    with pytest.raises(RarError, match=match):
        parse_volume(data, volume_size=len(data))


def test_random_bytes_fail_fast() -> None:
    rng = random.Random(1)
    started = time.perf_counter()
    for length in range(0, 3000, 3):
        junk = rng.randbytes(length)
        with pytest.raises((RarError, NeedMoreData)):
            parse_volume(junk)
        for signature in (RAR4_SIGNATURE, RAR5_SIGNATURE):
            with pytest.raises(RarError):
                data = signature + junk
                parse_volume(data, volume_size=len(data))
    assert time.perf_counter() - started < 10


def test_every_header_byte_is_guarded(rardir: Path) -> None:
    for name in ("rar5-vols.part1.rar", "rar3-vols.part1.rar", "rar5-subdirs.rar"):
        data = (rardir / name).read_bytes()
        info = parse_volume(data, volume_size=len(data))
        header_end = info.entries[0].data_offset
        for at in range(header_end):
            for flip in (0x01, 0x80):
                bad = bytearray(data)
                bad[at] ^= flip
                with pytest.raises(RarError):
                    parse_volume(bad, volume_size=len(bad))


def test_flipped_bytes_anywhere_never_escape_as_other_errors(rardir: Path) -> None:
    rng = random.Random(5)
    for name in ("rar3-subdirs.rar", "rar5-crc.rar", "rar5-psw.rar", "seektest.rar"):
        data = (rardir / name).read_bytes()
        for _ in range(400):
            bad = bytearray(data)
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
            with contextlib.suppress(RarError):  # any other exception fails the test
                parse_volume(bad, volume_size=len(bad))


def test_crafted_rar5_headers_are_refused() -> None:
    sig, main = RAR5_SIGNATURE, r5_main()
    cases: list[tuple[Callable[[], bytes], str]] = [
        (lambda: sig + r5_header(b"") + bytes(10), "0 bytes long"),
        (lambda: sig + b"\0\0\0\0\x80\x80\x80\x01" + bytes(40), "past the end of its header"),
        (lambda: sig + main + r5_header(vint(2) + vint(2) + b"\x80" * 11), "longer than 10"),
        (lambda: sig + main + r5_header(vint(2) + vint(2) + b"\xff" * 9 + b"\x7f"), "64 bits"),
        (lambda: sig + main + r5_header(vint(2) + vint(2) + vint(1 << 60)), "beyond any"),
        (lambda: sig + main + r5_header(vint(3) + vint(1) + vint(500)), "extra area larger"),
        (lambda: sig + r5_file(b"x", b"abc") + r5_end(), "without a main header"),
        (lambda: sig + main + main, "two main headers"),
        (lambda: sig + main + r5_header(vint(4) + vint(0) + bytes(30)), "encryption header"),
        (lambda: sig + main + r5_file(b"x", b"abc", data_size=1 << 40), "past the volume end"),
        (lambda: sig + main + r5_file(b"x", b"", size=1 << 55), "unpacked size"),
        (lambda: sig + main + flipped(r5_file(b"x" * 5, b""), 7), "CRC mismatch"),
        (lambda: sig + main + b"\x01\x02", "ends at"),
    ]
    for build, message in cases:
        expect_rar_error(build, message)
    # A name length beyond its header, with a valid CRC.
    body = vint(2) + vint(0) + vint(0) + vint(1) + vint(0o644) + vint(0) + vint(1) + vint(900)
    expect_rar_error(lambda: sig + main + r5_header(body + b"ab") + r5_end(), "name runs past")
    # Huge but possible sizes ask for the bytes, or fail once the real size is known.
    huge = sig + main + r5_file(b"x", b"", data_size=1 << 45)
    with pytest.raises(NeedMoreData) as more:
        parse_volume(huge)
    assert more.value.bytes_needed == len(huge) + (1 << 45) + 7


def test_crafted_rar4_headers_are_refused() -> None:
    sig, main = RAR4_SIGNATURE, r4_main()
    cases: list[tuple[Callable[[], bytes], str]] = [
        (lambda: sig + b"\0\0\x73\0\0\x03\0" + bytes(20), "3 bytes long"),
        (lambda: sig + r4_file(b"x", b"a") + r4_end(), "without a main header"),
        (lambda: sig + r4_block(0x73, 0, b"") + bytes(20), "main header too short"),
        (lambda: sig + main + r4_block(0x75, 0, b"", crc_end=3) + r4_end(), "type 0x75"),
        (lambda: sig + main + r4_block(0x74, 0x8000, bytes(10)), "file header too short"),
        (lambda: sig + main + r4_file(b"x", b"a", method=0x00) + r4_end(), "method byte"),
        (lambda: sig + main + r4_file(b"x", b"a", high=(0xFFFFFFFF, 0)) + r4_end(), "beyond"),
        (lambda: sig + main + r4_block(0x7B, 0x0008, b""), "volume number"),
        (lambda: sig + main + r4_block(0x77, 0x8000, b"\xff\xff\xff\xff"), "past the volume"),
        (lambda: sig + main + r4_file(b"x", b"abc") + b"\0\0\0", "ends at"),
    ]
    for build, message in cases:
        expect_rar_error(build, message)
    name_past = r4_block(0x74, 0x8000, struct.pack("<IIBIIBBHI", 0, 0, 3, 0, 0, 29, 0x30, 99, 0))
    expect_rar_error(lambda: sig + main + name_past + r4_end(), "name runs past")
    bad_crc = bytearray(sig + main + r4_file(b"x", b"abc") + r4_end())
    bad_crc[20] ^= 0xFF
    expect_rar_error(lambda: bytes(bad_crc), "file header CRC")


def test_rar4_comment_outside_the_crc_and_exttime() -> None:
    # RAR 2.x file comments follow the header fields and are left out of the header CRC.
    # mtime with 3 fraction bytes, ctime (4 bytes), atime (4 bytes + 1 fraction byte)
    exttime = struct.pack("<H", 0xB000 | 0x0800 | 0x0090) + bytes(3) + bytes(4) + bytes(5)
    comment = b"old-style comment block"
    fixed_len = 32 + 1 + len(exttime)  # up to the end of the extended time
    flags = 0x0008 | 0x1000
    good = (
        RAR4_SIGNATURE
        + r4_main()
        + r4_file(b"x", b"abc", flags=flags, tail=exttime + comment, crc_end=fixed_len)
        + r4_end()
    )
    (entry,) = assemble([parse_volume(good)])
    assert (entry.name, entry.size, entry.stored) == ("x", 3, True)
    covered_all = (
        RAR4_SIGNATURE
        + r4_main()
        + r4_file(b"x", b"abc", flags=flags, tail=exttime + comment)
        + r4_end()
    )
    with pytest.raises(RarError, match="CRC"):
        parse_volume(covered_all)


def test_rar4_old_blocks_and_service_headers_are_skipped() -> None:
    fixed = struct.pack("<IIBIIBBHI", 5, 5, 3, 0, 0, 29, 0x30, 3, 0)
    archive = (
        RAR4_SIGNATURE
        + r4_main()
        + r4_block(0x7A, 0x8000, fixed + b"CMT")  # a service header and its 5 data bytes
        + b"12345"
        + r4_block(0x78, 0x8000, struct.pack("<I", 4))  # an old recovery record
        + b"rrrr"
        + r4_file(b"dir\\file.bin", b"hello")
        + r4_end()
    )
    info = parse_volume(archive)
    assert [p.name for p in info.entries] == ["dir/file.bin"]
    (entry,) = assemble([info])
    assert read_pieces_from_bytes([archive], entry.pieces) == b"hello"


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        # high byte 0x20; opcodes 3 (copy 3 from the plain name), 0 (0xe9), 1 (0x20ac)
        (bytes([0x20, 0b11_00_01_00, 0x01, 0xE9, 0xAC]), "abcé€"),
        # opcode 2: a whole UTF-16 unit; then 3 with a correction of +1 on "c" -> "d"
        (bytes([0x00, 0b10_11_00_00, 0x2D, 0x4E, 0x80, 0x01]), "中cd"),
        # a surrogate pair spelled as two opcode-2 units
        (bytes([0x00, 0b10_10_00_00, 0x35, 0xD8, 0x00, 0xDC]), "𝐀"),
        # a run far longer than the name is cut, not followed into memory
        (bytes([0x00, 0b11_11_11_11, 0x7F, 0x7F, 0x7F, 0x7F] * 200), None),
    ],
)
def test_rar4_unicode_name_encoding(encoded: bytes, expected: str | None) -> None:
    name = b"abc\0" + encoded
    archive = RAR4_SIGNATURE + r4_main() + r4_file(name, b"", flags=0x0200 | 0x00E0) + r4_end()
    (entry,) = assemble([parse_volume(archive)])
    assert entry.is_dir
    if expected is None:
        assert entry.name.startswith("abc") and len(entry.name) <= 8192
    else:
        assert entry.name == expected


def test_rar4_names_without_encoded_part() -> None:
    def name_of(raw: bytes, flags: int = 0) -> str:
        archive = RAR4_SIGNATURE + r4_main() + r4_file(raw, b"", flags=flags) + r4_end()
        return parse_volume(archive).entries[0].name

    assert name_of("ünï.txt".encode(), 0x0200) == "ünï.txt"  # UTF-8 under the flag
    assert name_of("ünï.txt".encode()) == "ünï.txt"
    assert name_of(b"\x81ber.txt") == "über.txt"  # not UTF-8: the DOS code page


def test_need_more_data_is_not_a_rar_error() -> None:
    # Callers treat RarError as "bad archive"; a short read must never look like one.
    assert not issubclass(NeedMoreData, RarError)
    assert issubclass(RarError, ValueError)
    with pytest.raises(NeedMoreData) as more:
        parse_volume(RAR5_SIGNATURE)
    assert more.value.bytes_needed == 16


def test_rar_entry_stored_property() -> None:
    base = RarEntry("a", 3, 0, False, False, False, None, (RarPiece(0, 10, 3),))
    assert base.stored
    assert not dataclasses.replace(base, method=3).stored
    assert not dataclasses.replace(base, encrypted=True).stored
    assert not dataclasses.replace(base, is_dir=True).stored
    assert not dataclasses.replace(base, is_link=True).stored
    assert base.locate(1, 2) == (RarPiece(0, 11, 2),)
