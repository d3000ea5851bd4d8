"""Budget use: API cost spent per rate-limit window, as a share of the budget.

Runs a long extraction against the simulator with a real budget and a short
window, alone (no 429 allowed), and reports what the client spent in each
complete window it was active in, against the share it may use (90%).

    python bench/bench_client_budget.py [--budget 300] [--window-seconds 5] [--seconds 60]

Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from salesloft_pipeline.salesloft import SalesloftClient, extract
from salesloft_pipeline.simulator import Simulator, SimulatorConfig

SHARE = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--window-seconds", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--people", type=int, default=6000)
    args = parser.parse_args()

    config = SimulatorConfig(
        seed=7, people=args.people, days=90, budget=args.budget, window_seconds=args.window_seconds
    )
    remaining_seen: list[int] = []
    with Simulator(config).serve() as sim:
        with SalesloftClient(sim.api_key, sim.base_url, window_seconds=args.window_seconds,
                             budget_share=SHARE) as client:

            def tally(response: httpx.Response) -> None:
                remaining_seen.append(int(response.headers["x-ratelimit-remaining-minute"]))

            client._http.event_hooks["response"].append(tally)
            started = time.monotonic()
            deadline = started + args.seconds
            records = 0
            for _ in extract(client, "emails"):
                records += 1
                if time.monotonic() > deadline:
                    break
            elapsed = time.monotonic() - started
            stats = client.stats
        server = httpx.get(f"{sim.url}/__sim/stats", timeout=30).json()

    # Alone, what a window has left only goes down; it goes up when the window turns.
    spent_per_window: list[int] = []
    for previous, current in zip(remaining_seen, remaining_seen[1:]):
        if current > previous:
            spent_per_window.append(args.budget - previous)
    complete = spent_per_window[1:]  # the first window is partial, the last one not counted
    allowed = args.budget * SHARE
    print(json.dumps({
        "benchmark": "client_budget_use",
        "budget": args.budget,
        "window_seconds": args.window_seconds,
        "share": SHARE,
        "windows": len(complete),
        "cost_per_window_mean": round(statistics.mean(complete), 1) if complete else None,
        "cost_per_window_min": min(complete) if complete else None,
        "cost_per_window_max": max(complete) if complete else None,
        "use_of_share": round(statistics.mean(complete) / allowed, 3) if complete else None,
        "use_of_budget": round(statistics.mean(complete) / args.budget, 3) if complete else None,
        # Over the whole run, idle waits included: windows skipped would show here.
        "use_of_share_overall": round(stats.cost / (elapsed / args.window_seconds) / allowed, 3),
        "seconds": round(elapsed, 1),
        "rate_limited_client": stats.rate_limited,
        "rate_limited_server": server["rate_limited"],
        "records": records,
        "goal_use_of_share": 0.9,
    }))


if __name__ == "__main__":
    main()
