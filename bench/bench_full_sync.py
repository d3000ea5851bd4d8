"""A full sync of every stream of a simulated team at SalesLoft's rate: requests, cost, time against the floor.

Every stream of the registry is read whole once (incremental ones over their
whole history, by keyset; full-refresh ones as lists), with the key holding
every scope, against the simulator at SalesLoft's rate in a short window
(`--budget 60 --window-seconds 6` is 600 a minute, as SalesLoft allows).
The floor is what the records need at best: one request of cost 1 per 100
records (per page), and one for a stream with none, at the pipeline's 90%
share of the budget; the first window's share is there at the start, so
the floor's time is the rest of that cost at the budget's rate.

    python bench/bench_full_sync.py [--people 400] [--days 30] [--budget 60] [--window-seconds 6]

Prints one JSON line: per stream records, requests and cost; the totals; the
time against the floor; records per unit of cost.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import datetime, timedelta, timezone

import httpx

from salesloft_pipeline.salesloft import STREAMS, SalesloftClient, extract
from salesloft_pipeline.simulator import Simulator, SimulatorConfig

SHARE = 0.9
SCOPES = frozenset(s.required_scope for s in STREAMS if s.required_scope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--window-seconds", type=float, default=6.0)
    args = parser.parse_args()

    anchor = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    config = SimulatorConfig(
        seed=7, people=args.people, days=args.days, anchor=anchor, budget=args.budget,
        window_seconds=args.window_seconds, privileged_scopes=SCOPES,
    )
    per_stream: dict[str, dict[str, int]] = {}
    with Simulator(config).serve() as sim, httpx.Client(base_url=sim.url, timeout=120) as inspect:
        with SalesloftClient(sim.api_key, sim.base_url, window_seconds=args.window_seconds, budget_share=SHARE) as client:
            started = time.monotonic()
            for stream in STREAMS:
                before = inspect.get("/__sim/stats").json()
                extraction = extract(client, stream)
                records = sum(1 for _ in extraction)
                after = inspect.get("/__sim/stats").json()
                if extraction.skipped or extraction.invalid:
                    raise SystemExit(f"{stream.name}: {extraction.skipped or extraction.invalid[:3]}")
                per_stream[stream.name] = {
                    "records": records,
                    "requests": after["requests"] - before["requests"],
                    "cost": after["cost"] - before["cost"],
                }
            seconds = time.monotonic() - started
        stats = inspect.get("/__sim/stats").json()

    records = sum(s["records"] for s in per_stream.values())
    cost = sum(s["cost"] for s in per_stream.values())
    # email_contents reads the emails again (with their subject): its pages are part of the floor too.
    floor_cost = sum(max(1, math.ceil(s["records"] / 100)) for s in per_stream.values())
    per_second = args.budget / args.window_seconds * SHARE
    floor_seconds = max(0.0, floor_cost - args.budget * SHARE) / per_second
    print(json.dumps({
        "benchmark": "full_sync",
        "people": args.people,
        "days": args.days,
        "streams": len(per_stream),
        "records": records,
        "requests": sum(s["requests"] for s in per_stream.values()),
        "api_cost": cost,
        "floor_cost": floor_cost,
        "cost_over_floor": round(cost / floor_cost, 3),
        "records_per_cost": round(records / cost, 2),
        "seconds": round(seconds, 1),
        "floor_seconds_at_share": round(floor_seconds, 1),
        "ratio_to_floor_at_share": round(seconds / floor_seconds, 3) if floor_seconds else None,
        "rate_limited": stats["rate_limited"],
        "requests_by_cost": stats["requests_by_cost"],
        "per_stream": per_stream,
    }))


if __name__ == "__main__":
    main()
