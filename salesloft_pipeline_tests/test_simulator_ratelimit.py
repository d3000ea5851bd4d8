"""The simulator's rate limit (docs/simulator.md, "Rate limit"): cost by page
depth, a fixed budget per window aligned to the epoch, headers, 429s, and
another integration spending the budget."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from salesloft_pipeline_tests.conftest import (
    RATE_HEADERS,
    api_client,
    reset_stats,
    set_budget,
    set_faults,
    start_simulator,
    stats,
    truth_ids,
)

SIM_OPTIONS = {"people": 40, "days": 3, "budget": 0}
WINDOW = 2.0
OVER_BUDGET = {"error": "API rate limit exceeded"}


@pytest.fixture(autouse=True)
def _unlimited_after(inspect):
    yield
    set_faults(inspect)
    set_budget(inspect, 0, 60)


def window_index(t: float, window: float = WINDOW) -> int:
    return int(t // window)


def wait_for_window_fraction(fraction: float, window: float = WINDOW) -> None:
    """Sleeps until `fraction` of the way into a window (a later one than now if needed)."""
    now = time.time()
    start = (now // window) * window
    target = start + fraction * window
    if target <= now + 0.01:
        target += window
    time.sleep(target - now)


def in_one_window(run: Callable[[], Any], fraction: float = 0.02, window: float = WINDOW, tries: int = 4) -> Any:
    """Runs `run` from `fraction` into a window; retries when it spilled into the next window."""
    for _ in range(tries):
        wait_for_window_fraction(fraction, window)
        t0 = time.time()
        result = run()
        t1 = time.time()
        if window_index(t0, window) == window_index(t1, window):
            return result
    pytest.fail(f"could not fit the requests into one {window}s window in {tries} tries")


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining-minute"])


def cost(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-endpoint-cost"])


# -- cost by page depth ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "page, expected",
    [(1, 1), (2, 1), (100, 1), (101, 3), (150, 3), (151, 8), (250, 8), (251, 10), (500, 10), (501, 30), (2000, 30)],
)
def test_cost_by_page_depth(client, page, expected):
    response = client.get("/people", params={"page": page})
    assert response.status_code == 200
    assert cost(response) == expected


def test_single_record_and_subscription_requests_cost_1(client, inspect):
    person = sorted(truth_ids(inspect, "people"))[0]
    for response in (
        client.get(f"/people/{person}"),
        client.get(f"/people/{person}.json"),
        client.get("/webhook_subscriptions"),
    ):
        assert response.status_code == 200, response.text
        assert cost(response) == 1


def test_stats_record_cost_by_depth(client, inspect):
    reset_stats(inspect)
    for page in (1, 101, 151, 251, 501):
        assert client.get("/activities/emails", params={"page": page}).status_code == 200
    s = stats(inspect)
    assert s["requests"] == 5
    assert s["cost"] == 1 + 3 + 8 + 10 + 30
    assert {k: v for k, v in s["requests_by_cost"].items() if v} == {"1": 1, "3": 1, "8": 1, "10": 1, "30": 1}
    assert s["deepest_page"] == 501
    assert s["rate_limited"] == 0


def test_headers_and_date_on_every_response(client):
    for response in (
        client.get("/people"),
        client.get("/people/987654321"),
        client.get("/people", params={"page": "x"}),
        client.get("/accounts.json"),
    ):
        for header in RATE_HEADERS:
            assert header in response.headers, (response.request.url, header)
        sent = email.utils.parsedate_to_datetime(response.headers["date"])
        assert abs(sent - datetime.now(timezone.utc)) < timedelta(minutes=5)


# -- budget per fixed window ------------------------------------------------------------------
def test_budget_is_spent_by_cost_and_429_is_not_charged(sim, inspect):
    set_budget(inspect, 10, WINDOW)
    with api_client(sim) as c:

        def run():
            reset_stats(inspect)
            seen = []
            for _ in range(8):
                seen.append(c.get("/people"))
            seen.append(c.get("/people", params={"page": 101}))  # costs 3, only 2 left
            seen.append(c.get("/people"))
            seen.append(c.get("/people"))
            seen.append(c.get("/people"))  # nothing left
            return seen

        seen = in_one_window(run)
    statuses = [r.status_code for r in seen]
    assert statuses == [200] * 8 + [429, 200, 200, 429], statuses
    assert [remaining(r) for r in seen[:8]] == list(range(9, 1, -1))
    too_deep = seen[8]
    assert too_deep.json() == OVER_BUDGET
    assert "retry-after" not in too_deep.headers
    assert remaining(too_deep) == 2, "a refused request is not charged"
    assert [remaining(r) for r in seen[9:11]] == [1, 0]
    assert seen[11].json() == OVER_BUDGET and "retry-after" not in seen[11].headers
    assert remaining(seen[11]) == 0
    for response in seen:
        for header in RATE_HEADERS:
            assert header in response.headers
        assert "date" in response.headers
    s = stats(inspect)
    assert s["rate_limited"] == 2
    assert s["cost"] == 10


def test_window_is_fixed_and_aligned_to_the_epoch(sim, inspect):
    """Spend the budget late in a window; right after the boundary it is whole
    again (a rolling window would still refuse)."""
    set_budget(inspect, 6, WINDOW)
    with api_client(sim) as c:
        for _ in range(4):
            wait_for_window_fraction(0.55)
            t0 = time.time()
            spent = [c.get("/people") for _ in range(7)]
            t1 = time.time()
            if window_index(t0) != window_index(t1):
                continue
            assert [r.status_code for r in spent] == [200] * 6 + [429]
            boundary = (window_index(t1) + 1) * WINDOW
            time.sleep(max(0.0, boundary - time.time()) + 0.05)
            fresh = c.get("/people")
            assert fresh.status_code == 200, "budget not renewed at the window boundary"
            if time.time() < boundary + WINDOW:
                assert remaining(fresh) == 5
            return
    pytest.fail("could not fit the requests into one window")


def test_budget_and_window_given_at_start():
    with start_simulator(seed=2, people=15, days=2, budget=5, window_seconds=WINDOW) as other:
        with api_client(other) as c:
            seen = in_one_window(lambda: [c.get("/people") for _ in range(6)])
    assert [r.status_code for r in seen] == [200] * 5 + [429]
    assert [remaining(r) for r in seen[:5]] == [4, 3, 2, 1, 0]


def test_budget_changes_at_run_time(sim, inspect):
    set_budget(inspect, 3, WINDOW)
    with api_client(sim) as c:
        seen = in_one_window(lambda: [c.get("/people") for _ in range(4)])
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        set_budget(inspect, 0, WINDOW)
        assert all(c.get("/people").status_code == 200 for _ in range(10))


def test_401_costs_nothing_against_the_budget(sim, inspect):
    set_budget(inspect, 4, WINDOW)
    with api_client(sim) as c, httpx.Client(base_url=sim.base_url, timeout=30) as anonymous:

        def run():
            refused = [anonymous.get("/people") for _ in range(6)]
            return refused, c.get("/people")

        refused, ok = in_one_window(run)
    assert all(r.status_code == 401 for r in refused)
    assert ok.status_code == 200
    assert remaining(ok) == 3


# -- another integration spending the budget -------------------------------------------------------------
def test_spend_now_takes_the_current_window(sim, inspect):
    set_budget(inspect, 10, WINDOW)
    with api_client(sim) as c:

        def run():
            set_faults(inspect, spend_now=10)
            return c.get("/people")

        refused = in_one_window(run)
        assert refused.status_code == 429
        assert refused.json() == OVER_BUDGET
        assert remaining(refused) == 0
        # The next window is whole again.
        fresh = in_one_window(lambda: c.get("/people"))
        assert fresh.status_code == 200 and remaining(fresh) == 9


def test_spend_now_partial(sim, inspect):
    set_budget(inspect, 10, WINDOW)
    with api_client(sim) as c:

        def run():
            set_faults(inspect, spend_now=7)
            return [c.get("/people") for _ in range(4)]

        seen = in_one_window(run)
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [remaining(r) for r in seen[:3]] == [2, 1, 0]


def test_external_spend_is_spread_evenly_over_the_window(sim, inspect):
    budget, window = 1000, 4.0
    set_budget(inspect, budget, window)
    set_faults(inspect, external_spend=budget)
    tolerance = 0.05 * budget
    with api_client(sim) as c:
        for fraction in (0.15, 0.8):
            for _ in range(4):
                wait_for_window_fraction(fraction, window)
                t0 = time.time()
                response = c.get("/people")
                t1 = time.time()
                if window_index(t0, window) == window_index(t1, window):
                    break
            else:
                pytest.fail("request spilled over a window boundary every time")
            assert response.status_code == 200
            f0 = (t0 % window) / window
            f1 = (t1 % window) / window
            # Only our one request and the other integration spent this window.
            high = budget - 1 - budget * f0 + tolerance
            low = budget - 1 - budget * f1 - tolerance
            assert low <= remaining(response) <= high, (fraction, f0, f1, remaining(response))


def test_external_spend_causes_429_late_in_the_window(sim, inspect):
    budget, window = 20, WINDOW
    set_budget(inspect, budget, window)
    set_faults(inspect, external_spend=2 * budget)  # all of it gone by mid-window
    with api_client(sim) as c:
        late = in_one_window(lambda: c.get("/people"), fraction=0.7)
        assert late.status_code == 429, remaining(late)
        assert late.json() == OVER_BUDGET
        early = in_one_window(lambda: c.get("/people"), fraction=0.02)
        assert early.status_code == 200
