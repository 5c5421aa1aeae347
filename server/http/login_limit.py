"""How many wrong passwords may be tried: a bound per client, and one for everybody.

* Per client: at most ``max_failures`` failed logins per ``window``; a client is its IPv4
  address, or its IPv6 /64 (one household's, or one attacker's, whole prefix).
* For everybody: once more than ``global_budget`` logins failed within the window, whoever
  they came from, passwords are checked one at a time with ``backoff`` seconds between
  checks, and an attempt that would wait longer than ``max_queue`` seconds is told to try
  again later. So a limiter keyed wrongly (a proxy that hides clients, an attacker with many
  addresses) never means unlimited guessing, while a household member on another address,
  with the right password, still gets in: after a wait, never locked out.

In memory, per process: enough for one household behind one Matinee process, and a restart
forgets the counts. The number of clients tracked is bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Callable

MAX_LOGIN_FAILURES = 5
LOGIN_WINDOW = 300.0
GLOBAL_BUDGET = 30
BACKOFF = 1.0
MAX_QUEUE = 10.0


def client_key(address: str) -> str:
    """What a client is counted as: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class Overloaded(Exception):
    """Too many attempts are waiting for the slow lane: answer "try again later"."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = MAX_LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        *,
        global_budget: int = GLOBAL_BUDGET,
        backoff: float = BACKOFF,
        max_queue: float = MAX_QUEUE,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.global_budget = global_budget
        self.backoff = backoff
        self.max_queue = max_queue
        self.clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._everybody: deque[float] = deque(maxlen=global_budget * 4 + 1)
        self._slow_lane = asyncio.Lock()
        self._waiting = 0

    # -- per client ----------------------------------------------------------------
    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client_key(client))
        if failures is None or len(failures) < self.max_failures:
            return 0.0
        return max(failures[0] + self.window - self.clock(), 0.001)

    def failed(self, client: str) -> None:
        """Count an attempt as failed; called before the password is checked, so that
        parallel guesses cannot all pass while the first ones are still being verified."""
        key = client_key(client)
        failures = self._recent(key)
        if failures is None:
            if len(self._failures) >= self._max_clients:
                self._forget_expired()
            if len(self._failures) >= self._max_clients:
                del self._failures[next(iter(self._failures))]
            failures = self._failures[key] = deque(maxlen=self.max_failures)
        now = self.clock()
        failures.append(now)
        self._everybody.append(now)

    def reset(self, client: str) -> None:
        """A right password: the client's count starts again (everybody's does not)."""
        self._failures.pop(client_key(client), None)
        if self._everybody:
            self._everybody.pop()  # this attempt was counted as failed before the check

    # -- everybody -------------------------------------------------------------------
    def under_attack(self) -> bool:
        horizon = self.clock() - self.window
        while self._everybody and self._everybody[0] <= horizon:
            self._everybody.popleft()
        return len(self._everybody) > self.global_budget

    async def slow_lane(self) -> _Turn:
        """Wait for this attempt's turn when the budget for everybody is spent; raises
        Overloaded when the wait would be too long."""
        if not self.under_attack():
            return _Turn(None)
        if (self._waiting + 1) * self.backoff > self.max_queue:
            raise Overloaded(self.max_queue)
        self._waiting += 1
        try:
            await self._slow_lane.acquire()
        finally:
            self._waiting -= 1
        try:
            await asyncio.sleep(self.backoff)  # the spacing between two checks
        except BaseException:
            self._slow_lane.release()
            raise
        return _Turn(self)

    # -- bookkeeping -----------------------------------------------------------------
    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def _forget_expired(self) -> None:
        horizon = self.clock() - self.window
        for key in [k for k, f in self._failures.items() if not f or f[-1] <= horizon]:
            del self._failures[key]


class _Turn:
    """Held while one password is checked in the slow lane; spaced by the back-off."""

    def __init__(self, limiter: LoginLimiter | None) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter._slow_lane.release()
