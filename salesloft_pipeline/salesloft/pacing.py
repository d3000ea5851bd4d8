"""Pacing from the server's own rate-limit headers.

SalesLoft's budget (600 cost a minute) belongs to the whole team, so what is
left is known only from the server: every answer says what this request cost
(`x-ratelimit-endpoint-cost`) and what the current window has left
(`x-ratelimit-remaining-minute`). The pacer sends while that leaves a reserve
free for the rest of the team (10% of the budget by default) and otherwise
waits for the window to turn.

Windows are fixed and aligned to multiples of their length on the server's
clock. The server's clock is known only through the `Date` header, which has
a one-second resolution; the pacer keeps an interval of the possible offset
between the two clocks, narrowed with every answer. It waits until the
earliest possible server time has reached the next window, and when the
interval leaves an answer's window unsure, counts it in the later one:
waiting a little longer is safe, sending early is not. (A server that stamps
`Date` a moment late can make the pacer send one request early; that request
comes out of the reserve, never past the budget.)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

REMAINING_HEADER = "x-ratelimit-remaining-minute"
COST_HEADER = "x-ratelimit-endpoint-cost"


def page_cost(page: int) -> int:
    """Cost of a list request by page number, as SalesLoft documents it."""
    if page <= 100:
        return 1
    if page <= 150:
        return 3
    if page <= 250:
        return 8
    if page <= 500:
        return 10
    return 30


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class Pacer:
    """Decides when the next request may go, from what the server said.

    `share` is the part of the budget this client may use (the rest stays
    free for the team); `budget` is the team's budget per window, learned
    from the headers when not given.
    """

    def __init__(
        self,
        share: float = 0.9,
        window_seconds: float = 60.0,
        budget: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.share = share
        self.window_seconds = window_seconds
        self.budget = budget
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budget_seen = 0
        # server clock = local clock + offset, offset within [_offset_low, _offset_high]
        self._offset_low = -math.inf
        self._offset_high = math.inf
        self._window: int | None = None  # index of the window `_remaining` belongs to
        self._remaining: int | None = None
        self.waited_seconds = 0.0

    @property
    def reserve(self) -> int:
        """Cost to leave unspent in every window."""
        budget = self.budget if self.budget is not None else self._budget_seen
        return math.ceil(budget * (1 - self.share) - 1e-9)

    def wait_turn(self, cost: int = 1) -> None:
        """Blocks until a request of `cost` fits in the share of the current window."""
        while True:
            with self._lock:
                delay = self._delay(cost)
            if delay <= 0:
                return
            self.waited_seconds += delay
            self._sleep(delay)

    def _delay(self, cost: int) -> float:
        if self._remaining is None or self._window is None:
            return 0.0
        turn = (self._window + 1) * self.window_seconds  # next window's start, server time
        earliest_server_now = self._clock() + self._offset_low
        if earliest_server_now >= turn:
            self._remaining = None  # a new window: its answer will tell what is left
            return 0.0
        if self._remaining - cost >= self.reserve:
            return 0.0
        return turn - earliest_server_now

    def observe(
        self,
        headers: Mapping[str, str],
        sent_at: float,
        received_at: float,
        rate_limited: bool = False,
    ) -> None:
        """Takes in the rate-limit headers of one answer (sent and received on the local clock)."""
        remaining = header_int(headers, REMAINING_HEADER)
        cost = header_int(headers, COST_HEADER) or 1
        if rate_limited and remaining is None:
            remaining = 0
        with self._lock:
            window = self._window_of(headers.get("date"), sent_at, received_at)
            if remaining is None:
                return
            if not rate_limited:
                self._budget_seen = max(self._budget_seen, remaining + cost)
            if self._window is None or window > self._window:
                self._window, self._remaining = window, remaining
            elif window == self._window:
                self._remaining = min(remaining, self._remaining if self._remaining is not None else remaining)

    def _window_of(self, date_header: str | None, sent_at: float, received_at: float) -> int:
        """Index of the window an answer belongs to (the later one when unsure)."""
        date = _parse_date(date_header)
        if date is None:
            # No Date header: trust the local clock.
            return int(received_at // self.window_seconds)
        date_high = date + 1  # exclusive: Date is the server time rounded down
        low, high = date - received_at, date_high - sent_at
        if low > self._offset_high or high < self._offset_low:
            self._offset_low, self._offset_high = low, high  # the clocks jumped: start over
        else:
            self._offset_low = max(self._offset_low, low)
            self._offset_high = min(self._offset_high, high)
        latest_server_time = min(date_high, received_at + self._offset_high) - 1e-6
        return int(latest_server_time // self.window_seconds)


def _parse_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
