"""How many wrong passwords a client may try: a bound per address, in memory."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_LOGIN_FAILURES = 5
LOGIN_WINDOW = 300.0


class LoginLimiter:
    """At most ``max_failures`` failed logins per client address per ``window`` seconds.

    In memory, per process: enough for one household behind one Matinee process, and a
    restart forgets the counts. The number of addresses tracked is bounded.
    """

    def __init__(
        self,
        max_failures: int = MAX_LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.max_failures:
            return 0.0
        return max(failures[0] + self.window - self.clock(), 0.001)

    def failed(self, client: str) -> None:
        """Count an attempt as failed; called before the password is checked, so that
        parallel guesses cannot all pass while the first ones are still being verified."""
        failures = self._recent(client)
        if failures is None:
            if len(self._failures) >= self._max_clients:
                self._forget_expired()
            if len(self._failures) >= self._max_clients:
                del self._failures[next(iter(self._failures))]
            failures = self._failures[client] = deque(maxlen=self.max_failures)
        failures.append(self.clock())

    def reset(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def _forget_expired(self) -> None:
        horizon = self.clock() - self.window
        for client in [c for c, f in self._failures.items() if not f or f[-1] <= horizon]:
            del self._failures[client]
