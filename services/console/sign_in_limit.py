"""Failed sign-ins are limited per email and per client address over a sliding window, so a
password cannot be guessed at speed. Kept in the process: with several console instances the
limit is per instance (each still bounds the rate; argon2's cost slows every guess too)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 15 * 60


# One address may hold several people (an office behind one NAT): it gets this many times more.
PER_CLIENT_FACTOR = 4


class SignInLimit:
    def __init__(self, attempts: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - WINDOW_SECONDS:
            failures.popleft()
        if not failures:
            del self._failures[key]  # an idle key costs nothing
            return deque()
        return failures

    def retry_after(self, email: str, client: str) -> int | None:
        """Seconds until this email may try again from this client, or None if it may now."""
        waits = []
        for key, allowed in ((f"email:{email}", self.attempts),
                             (f"client:{client}", self.attempts * PER_CLIENT_FACTOR)):
            failures = self._recent(key)
            if len(failures) >= allowed:
                # The oldest failures that must lapse before one more attempt fits.
                waits.append(int(failures[len(failures) - allowed] + WINDOW_SECONDS - self.clock()) + 1)
        return max(waits) if waits else None

    def failed(self, email: str, client: str) -> None:
        now = self.clock()
        for key in (f"email:{email}", f"client:{client}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"email:{email}", None)
