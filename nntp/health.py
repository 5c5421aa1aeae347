"""Whether a release's articles are still there, before a download commits to it.

A release taken down (DMCA) or expired is typically missing most of its articles; finding
out by downloading costs a minute and a failed job. ``STAT`` of a sample of articles
spread over the release, pipelined on one warm connection per server, answers in a round
trip or two. The verdict is conservative: a release is hopeless only when, even at the low
end of the sample's uncertainty, more is missing than its PAR2 volumes could repair.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nntp.connection import ServerSpec
from nntp.errors import ArticleMissing, NntpError, reply_class
from nntp.line import Line
from nntp.nzb import Nzb, Segment
from nntp.par2 import par2_kind_in_name

log = logging.getLogger(__name__)

SAMPLE = 20  # articles asked about
FLOOR = 0.1  # a share missing that is never called hopeless, whatever PAR2 says
CHECK_TIMEOUT = 5.0  # seconds; a server that cannot tell in time is no evidence


@dataclass(frozen=True)
class Health:
    """What the sample said."""

    sampled: int
    missing: int  # missing on every server that answered
    recovery_share: float  # PAR2 volumes' bytes over the data's (0 when none are named)
    answered: tuple[str, ...] = ()  # servers that answered
    errors: dict[str, str] = field(default_factory=dict)  # servers that could not

    @property
    def missing_share(self) -> float:
        return self.missing / self.sampled if self.sampled else 0.0

    @property
    def hopeless(self) -> bool:
        """More is missing than a repair could restore, with the sample's error allowed for."""
        if not self.answered or not self.sampled:
            return False
        m = self.missing_share
        low = m - 2 * math.sqrt(m * (1 - m) / self.sampled)
        return low > max(FLOOR, self.recovery_share)

    def describe(self) -> str:
        return (
            f"{self.missing} of {self.sampled} sampled articles are gone from "
            f"{', '.join(self.answered) or 'every server'}"
        )


def sample_segments(nzb: Nzb, n: int = SAMPLE) -> list[Segment]:
    """``n`` articles spread evenly over the release's data (PAR2 files left out)."""
    segments = [
        seg for f in nzb.files if par2_kind_in_name(f.name) is None for seg in f.segments
    ] or [seg for f in nzb.files for seg in f.segments]
    if len(segments) <= n:
        return segments
    step = len(segments) / n
    return [segments[int(step * i + step / 2)] for i in range(n)]


def recovery_share(nzb: Nzb) -> float:
    volumes = sum(f.bytes for f in nzb.files if par2_kind_in_name(f.name) == "volume")
    data = sum(f.bytes for f in nzb.files if par2_kind_in_name(f.name) is None)
    return volumes / data if data else 0.0


async def check_release(
    nzb: Nzb, servers: Sequence[ServerSpec], line: Line, *, sample: int = SAMPLE
) -> Health:
    """Ask each server (by priority) about the sampled articles the ones before lacked."""
    wanted = sample_segments(nzb, sample)
    missing = list(wanted)
    answered: list[str] = []
    errors: dict[str, str] = {}
    for spec in sorted(servers, key=lambda s: s.priority):
        if not missing:
            break
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                missing = await _stat(line, spec, missing)
            answered.append(spec.name)
        except (NntpError, TimeoutError) as exc:
            errors[spec.name] = str(exc) or "no answer in time"
            log.info("health check on %s failed: %s", spec.name, errors[spec.name])
    return Health(len(wanted), len(missing), recovery_share(nzb), tuple(answered), errors)


async def _stat(line: Line, spec: ServerSpec, segments: list[Segment]) -> list[Segment]:
    """The segments ``spec``'s server does not have; on a warm connection when there is."""
    conn = await line.acquire(spec, 0)
    try:
        replies = await asyncio.gather(*(conn.stat(s.message_id) for s in segments))
    except BaseException:
        conn.close()
        raise
    line.park(conn)
    gone = []
    for seg, reply in zip(segments, replies, strict=True):
        kind = reply_class(reply.status_code)
        if kind is ArticleMissing:
            gone.append(seg)
        elif kind is not None:
            raise NntpError(f"STAT answered {reply.status_code}", server=spec.name)
    return gone
