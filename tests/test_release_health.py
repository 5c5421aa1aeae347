"""The release health check's verdict and sample (pure); the check itself runs in
test_discovery_api (auto mode skips a release whose articles are gone)."""

from __future__ import annotations

import pytest

from nntp.health import Health, recovery_share, sample_segments
from nntp.nzb import parse_nzb
from tests.support.yenc import NzbEntry, articles_for_bytes, build_nzb


@pytest.mark.parametrize(
    ("missing", "recovery", "hopeless"),
    [
        (20, 0.0, True),  # taken down
        (20, 0.5, True),
        (10, 0.1, True),  # half gone: far more than 10 % of PAR2 repairs
        (2, 0.0, False),  # a hole or two: a repair's job, or the backup's
        (5, 0.0, False),  # could be 10 % by chance: never called hopeless
        (8, 0.0, True),
        (8, 0.3, False),  # plenty of recovery data
    ],
)
def test_hopeless_only_beyond_what_par2_repairs(
    missing: int, recovery: float, hopeless: bool
) -> None:
    assert Health(20, missing, recovery, ("news",)).hopeless is hopeless


def test_no_answer_is_no_evidence() -> None:
    assert not Health(20, 20, 0.0, (), {"news": "no answer in time"}).hopeless


def test_sample_spreads_over_the_data_and_leaves_par2_out() -> None:
    movie = articles_for_bytes(b"m" * 100 * 1024, "film.mkv", part_size=1024)
    vol = articles_for_bytes(b"p" * 10 * 1024, "film.vol00+10.par2", part_size=1024)
    nzb = parse_nzb(build_nzb([NzbEntry.from_articles(movie), NzbEntry.from_articles(vol)]))
    sample = sample_segments(nzb, 10)
    ids = [s.message_id for s in sample]
    movie_ids = [a.message_id for a in movie]
    assert len(ids) == 10 and set(ids) <= set(movie_ids)
    positions = [movie_ids.index(i) for i in ids]
    assert positions == sorted(positions) and positions[0] < 10 and positions[-1] > 90
    assert recovery_share(nzb) == pytest.approx(0.1, rel=0.1)
