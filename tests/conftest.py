"""Fixtures shared by the whole suite. Real peers live in tests/support, one module each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.programs import require

# Each module registers its own fixtures; add one line per support module.
pytest_plugins: list[str] = [  # a module before those that import it
    "tests.support.blocking",
    "tests.support.fake_nntp",
    "tests.support.fake_newznab",
    "tests.support.fake_tmdb",
    "tests.support.inn2",
    "tests.support.media",
    "tests.support.app",
    "tests.support.world",
    "tests.support.site",
    "tests.support.browser",
    "tests.support.playback",
    "tests.support.firefox",
    "tests.support.disk",
    "tests.support.s3",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (Debian's chromium, via Playwright)"
    )
    config.addinivalue_line("markers", "needs(*programs): real programs the test runs")
    config.addinivalue_line("markers", "blocking: may block the event loop (say why)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require(*mark.args)


SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The captured real-world data in ../shared/fixtures (read in place, never copied)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return SHARED_FIXTURES
