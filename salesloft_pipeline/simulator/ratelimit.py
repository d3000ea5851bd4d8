"""SalesLoft's rate limit: a cost budget per fixed window, shared by the team."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# "No limit" is still reported, so a client reading the header sees plenty left.
UNLIMITED_REMAINING = 1_000_000


def page_cost(page: int) -> int:
    """Cost of one list request by page number, as SalesLoft documents it."""
    if page <= 100:
        return 1
    if page <= 150:
        return 3
    if page <= 250:
        return 8
    if page <= 500:
        return 10
    return 30


class RateLimiter:
    """A fixed-window cost budget.

    Windows are aligned to multiples of `window_seconds` since the epoch, so a
    60 s window is the calendar minute. Besides our own callers, "another
    integration" may spend part of each window (`external_spend`, spread evenly
    over the window) or a lump of the current one (`spend_now`).
    """

    def __init__(
        self, budget: int, window_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.external_spend = 0
        self.configure(budget, window_seconds)

    def configure(self, budget: int, window_seconds: float) -> None:
        if budget < 0 or window_seconds <= 0:
            raise ValueError("budget must be >= 0 and window_seconds > 0")
        with self._lock:
            self.budget = budget
            self.window_seconds = window_seconds
            self._window = -1
            self._spent = 0
            self._lump = 0

    def spend_now(self, cost: int) -> None:
        """Another integration spends `cost` of the current window at once."""
        with self._lock:
            self._turn()
            self._lump += cost

    def charge(self, cost: int) -> tuple[bool, int]:
        """Charges `cost` if the window has it left.

        Returns (allowed, remaining after this request). A refused request is
        not charged."""
        with self._lock:
            if self.budget == 0:
                return True, UNLIMITED_REMAINING
            self._turn()
            left = self._left()
            if cost > left:
                return False, max(0, left)
            self._spent += cost
            return True, left - cost

    def remaining(self) -> int:
        with self._lock:
            if self.budget == 0:
                return UNLIMITED_REMAINING
            self._turn()
            return max(0, self._left())

    def _turn(self) -> None:
        window = int(self._clock() // self.window_seconds)
        if window != self._window:
            self._window = window
            self._spent = 0
            self._lump = 0

    def _left(self) -> int:
        elapsed = self._clock() - self._window * self.window_seconds
        external = int(self.external_spend * min(1.0, elapsed / self.window_seconds))
        return self.budget - self._spent - self._lump - external
