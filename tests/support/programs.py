"""Real programs the tests run (par2, unar, ffmpeg...): a test that needs one says so with
``@needs("par2")``. Missing, it is skipped on a developer's machine, and fails on CI (``CI``
set), where `.ci/system-deps.sh` must have installed it: a missing peer is never a pass."""

from __future__ import annotations

import os
import shutil

import pytest


def missing(*programs: str) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


def require(*programs: str) -> None:
    """Inside a test or fixture: go on only if every program is on PATH."""
    absent = missing(*programs)
    if not absent:
        return
    why = f"not installed: {', '.join(absent)} (make system-deps installs them)"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def needs(*programs: str) -> pytest.MarkDecorator:
    """A mark: the test runs only with these programs (checked in conftest's setup hook)."""
    return pytest.mark.needs(*programs)
