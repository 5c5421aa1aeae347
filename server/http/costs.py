"""Limits on the requests that cost the household something: a release search spends the
indexers' daily API calls, and Watch (or an NZB by URL) spends their downloads and the
Usenet line. Per caller (an API key, or a login session), a token bucket per kind; over it,
429 RATE_LIMITED with Retry-After. Generous for people, a wall for a runaway script.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from server.errors import RateLimited
from server.keys import CALLER, COSTS

Cost = Literal["search", "fetch"]


@dataclass(frozen=True, slots=True)
class Budget:
    burst: int  # this many at once
    per_minute: float  # refilled at this rate


BUDGETS: dict[Cost, Budget] = {
    "search": Budget(burst=20, per_minute=6.0),  # release searches: several indexers each
    "fetch": Budget(burst=10, per_minute=2.0),  # Watch, NZB by URL: a grab at an indexer
}
WORDS: dict[Cost, str] = {"search": "release searches", "fetch": "downloads started"}


class CostLimiter:
    def __init__(
        self,
        budgets: dict[Cost, Budget] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        self.budgets = dict(budgets or BUDGETS)
        self.clock = clock
        self._max_callers = max_callers
        self._buckets: dict[tuple[str, Cost], tuple[float, float]] = {}  # (tokens, at)

    def spend(self, caller: str, cost: Cost) -> None:
        """One of ``cost`` for ``caller``; RateLimited (with when to retry) when spent."""
        budget = self.budgets[cost]
        now = self.clock()
        tokens, at = self._buckets.get((caller, cost), (float(budget.burst), now))
        tokens = min(float(budget.burst), tokens + (now - at) * budget.per_minute / 60)
        if tokens < 1:
            wait = (1 - tokens) * 60 / budget.per_minute
            raise RateLimited(
                f"too many {WORDS[cost]} in a short time; try again in {wait:.0f} s",
                retry_after=wait,
            )
        if len(self._buckets) >= self._max_callers and (caller, cost) not in self._buckets:
            self._buckets.pop(next(iter(self._buckets)))
        self._buckets[(caller, cost)] = (tokens - 1, now)


def spend(request: web.Request, cost: Cost) -> None:
    """Charge the request's caller for one ``cost`` (a no-op for none: public routes)."""
    caller = request.get(CALLER)
    if caller is not None:
        request.config_dict[COSTS].spend(caller, cost)


def setup(app: web.Application) -> None:
    app[COSTS] = CostLimiter()
