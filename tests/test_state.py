"""nntp.state: the download's state log survives a kill mid-save and stays small."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

import nntp.state as state_mod
from nntp.state import DownloadState, FileRecord, StateFile, load_state

FP = "f" * 64
COUNTS = [("m.mkv", 100)]


def state_with(done: int) -> DownloadState:
    rec = FileRecord("m.mkv", size=100 * 1000, part_size=1000)
    rec.done.add(0, done)
    rec.ranges = [[0, done * 1000]]
    return DownloadState(FP, {"m.mkv": rec})


def test_the_last_complete_save_wins_over_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "state"
    log = StateFile(path)
    log.save(state_with(10))
    log.save(state_with(20))
    log.close()
    whole = path.read_bytes()
    assert load_state(path, FP, COUNTS).files["m.mkv"].ranges == [[0, 20_000]]
    # A kill in the middle of the third save leaves part of a line at the end.
    third = json.dumps(state_with(30).to_json()).encode()
    for cut in (1, len(third) // 2, len(third) - 1):
        path.write_bytes(whole + third[:cut])
        loaded = load_state(path, FP, COUNTS).files["m.mkv"]
        assert loaded.ranges == [[0, 20_000]]
        assert list(loaded.done) == [(0, 20)]
    # The next run starts the log afresh, without the torn line.
    log = StateFile(path)
    log.save(state_with(40))
    log.save(state_with(50))
    log.close()
    assert len(path.read_bytes().splitlines()) == 2
    assert load_state(path, FP, COUNTS).files["m.mkv"].ranges == [[0, 50_000]]


def test_a_state_file_of_one_document_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state"
    # As the engine wrote it before saves were appended: one compact document, no newline.
    path.write_text(json.dumps(state_with(7).to_json(), separators=(",", ":")))
    assert load_state(path, FP, COUNTS).files["m.mkv"].ranges == [[0, 7_000]]
    assert load_state(path, "0" * 64, COUNTS).files == {}  # another NZB's state


def test_the_log_is_compacted_when_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_mod, "COMPACT_MIN_BYTES", 0)
    monkeypatch.setattr(state_mod, "COMPACT_LINES", 4)
    path = tmp_path / "state"
    log = StateFile(path)
    line = len(json.dumps(state_with(99).to_json(), separators=(",", ":"))) + 1
    sizes = []
    for done in range(1, 100):
        log.save(state_with(done))
        sizes.append(path.stat().st_size)
    log.close()
    assert max(sizes) <= 4 * line
    rewrites = sum(1 for a, b in itertools.pairwise(sizes) if b < a)
    assert rewrites > 20  # rewritten to its last line, again and again
    assert load_state(path, FP, COUNTS).files["m.mkv"].ranges == [[0, 99_000]]
