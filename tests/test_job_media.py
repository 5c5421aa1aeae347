"""What a job waits for before it is playable: the head, and the tail only when needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.jobs.media import needs_tail
from tests.support.media import make_movie


@pytest.mark.parametrize(("suffix", "faststart", "expected"), [
    (".mp4", True, False),   # moov first: the head is enough
    (".mp4", False, True),   # moov at the end: the player asks for the tail first
    (".mkv", False, True),   # cues at the end
])  # fmt: skip
def test_needs_tail_reads_real_files(
    tmp_path: Path, suffix: str, faststart: bool, expected: bool
) -> None:
    path = make_movie(tmp_path / f"m{suffix}", seconds=3, faststart=faststart)
    head = path.read_bytes()[: 1024 * 1024]
    assert needs_tail(head) is expected


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00" * 100, b"\x00\x00\x00\x00ftypisom" + b"\x00" * 20, b"RIFF....AVI "],
)
def test_needs_tail_is_safe_on_odd_heads(head: bytes) -> None:
    assert needs_tail(head) is True
