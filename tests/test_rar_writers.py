"""tests/support/rar4 and rar5 write store-mode sets that real RAR readers accept: unar
extracts the same bytes, lsar's CRC test passes, and nntp.rar maps the file to the right
pieces."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from nntp.rar import assemble, parse_volume
from tests.support import rar4, rar5


@pytest.mark.skipif(shutil.which("unar") is None, reason="unar is not installed")
@pytest.mark.parametrize("writer", [rar4, rar5], ids=["rar4", "rar5"])
def test_a_written_set_reads_back_everywhere(tmp_path: Path, writer: ModuleType) -> None:
    data = os.urandom(250_000)
    (tmp_path / "Movie.mkv").write_bytes(data)
    paths = writer.write_store_set(tmp_path / "Movie.mkv", tmp_path, "movie", 100_000)
    assert [p.name for p in paths] == ["movie.part01.rar", "movie.part02.rar", "movie.part03.rar"]
    test = subprocess.run(["lsar", "-t", str(paths[0])], capture_output=True, text=True)
    assert test.returncode == 0 and "OK" in test.stdout, test.stdout + test.stderr
    subprocess.run(
        ["unar", "-q", "-o", str(tmp_path / "x"), str(paths[0])], check=True, capture_output=True
    )
    assert (tmp_path / "x" / "Movie.mkv").read_bytes() == data
    (entry,) = assemble([parse_volume(p.read_bytes()) for p in paths])
    assert (entry.name, entry.size, entry.stored) == ("Movie.mkv", len(data), True)
    joined = b"".join(
        paths[p.volume].read_bytes()[p.offset : p.offset + p.length] for p in entry.pieces
    )
    assert joined == data
