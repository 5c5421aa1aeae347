"""Write a store-mode (``-m0``) RAR5 volume set, as a release group's ``rar -ma5 -v`` would.

The RAR5 sibling of ``tests/support/rar4.py`` (no `rar` binary ships with Debian), after
RARLAB's RAR 5.0 format description: the signature, a main header with the volume flag
(and the volume number from the second volume on), one file header per volume (split
flags; the CRC32 of that volume's piece, the CRC32 of the whole file in the last), the
bytes verbatim, and an end-of-archive header saying whether a volume follows. Volumes are
named ``STEM.partNN.rar``. A set of gigabytes streams through; it never sits in memory.

Command line, for the benchmarks (which may not import tests/; run from the repository
root): ``python -m tests.support.rar5 SRC OUT_DIR --volume-mib 100``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.support.rar import r5_end, r5_file, r5_main, write_volumes

SIGNATURE = b"Rar!\x1a\x07\x01\x00"
MAIN_VOLUME = 0x0001
SPLIT_BEFORE, SPLIT_AFTER = 0x0008, 0x0010


def _frame(name: bytes, i: int, last: bool, piece: int, size: int, crc: int) -> tuple[bytes, bytes]:
    split = (SPLIT_BEFORE if i else 0) | (0 if last else SPLIT_AFTER)
    # r5_file frames data given to it; only its header is taken, the data stream past.
    header = r5_file(name, b"", block_flags=split, size=size, data_size=piece, crc=crc)
    return SIGNATURE + r5_main(MAIN_VOLUME, i if i else None) + header, r5_end(not last)


def write_store_set(src: Path, out_dir: Path, stem: str, volume_size: int) -> list[Path]:
    """Store `src` in volumes of `volume_size` data bytes each; returns the volume paths."""
    return write_volumes(src, out_dir, stem, volume_size, _frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.rar5", description="Write a RAR5 store-mode volume set."
    )
    parser.add_argument("src", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--volume-mib", type=int, default=100)
    parser.add_argument("--stem", default=None, help="volume names (default: src's stem)")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.stem or args.src.stem.lower()
    for path in write_store_set(args.src, args.out_dir, stem, args.volume_mib << 20):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
