"""Fixtures shared by the whole suite. Real peers live in tests/support, one module each."""

from __future__ import annotations

from pathlib import Path

import pytest

# Each module registers its own fixtures; add one line per support module.
pytest_plugins: list[str] = [
    "tests.support.browser",
    "tests.support.fake_newznab",
    "tests.support.fake_nntp",
    "tests.support.fake_tmdb",
    "tests.support.inn2",
    "tests.support.media",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (Debian's chromium, via Playwright)"
    )


SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The captured real-world data in ../shared/fixtures (read in place, never copied)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return SHARED_FIXTURES
