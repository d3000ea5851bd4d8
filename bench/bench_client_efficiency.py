"""API efficiency: records per unit of API cost on a 100,000-record extraction (ceiling 100).

Reads one `updated_at` window holding `--records` emails from the simulator
(budget off) twice: with the client's keyset walk, and with a page-number
walk over the same window (what other connectors do). Checks the keyset walk
against the ground truth: no record lost, no version emitted twice.

    python bench/bench_client_efficiency.py [--records 100000] [--people 2500] [--days 90]

Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from salesloft_pipeline.salesloft import SalesloftClient, extract
from salesloft_pipeline.salesloft.paging import format_instant, parse_instant
from salesloft_pipeline.simulator import Simulator, SimulatorConfig


def page_walk_cost(sim: Simulator, since: str, until: str) -> tuple[int, int]:
    """(records, cost) of a page-number walk over [since, until)."""
    records = cost = 0
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=60) as http:
        page = 1
        while True:
            response = http.get(
                "activities/emails",
                params={"sort_by": "updated_at", "sort_direction": "ASC", "per_page": 100, "page": page,
                        "updated_at[gte]": since, "updated_at[lt]": until},
            )
            response.raise_for_status()
            cost += int(response.headers["x-ratelimit-endpoint-cost"])
            data = response.json()["data"]
            records += len(data)
            if len(data) < 100:
                return records, cost
            page += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=2500)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()

    with Simulator(SimulatorConfig(seed=7, people=args.people, days=args.days, budget=0)).serve() as sim:
        truth = httpx.get(f"{sim.url}/__sim/truth/emails", timeout=120).json()["records"]
        rows = sorted((parse_instant(r["updated_at"]), r["id"]) for r in truth)
        if len(rows) <= args.records:
            raise SystemExit(f"only {len(rows)} emails: raise --people or --days")
        since, until = rows[0][0], rows[args.records][0]
        expected = {rid for at, rid in rows if since <= at < until}

        started = time.monotonic()
        with SalesloftClient(sim.api_key, sim.base_url) as client:
            versions = [(r.id, r.updated_at) for r in extract(client, "emails", since, until)]
            keyset_cost, keyset_requests = client.stats.cost, client.stats.requests
        seconds = time.monotonic() - started
        page_records, page_cost = page_walk_cost(sim, format_instant(since), format_instant(until))
        deepest = httpx.get(f"{sim.url}/__sim/stats", timeout=30).json()["deepest_page"]

    ids = {rid for rid, _ in versions}
    print(json.dumps({
        "benchmark": "client_api_efficiency",
        "records": len(versions),
        "records_per_cost": round(len(versions) / keyset_cost, 2),
        "requests": keyset_requests,
        "cost": keyset_cost,
        "lost": len(expected - ids),
        "unexpected": len(ids - expected),
        "versions_emitted_twice": len(versions) - len(set(versions)),
        "seconds": round(seconds, 1),
        "page_walk_records": page_records,
        "page_walk_cost": page_cost,
        "page_walk_records_per_cost": round(page_records / page_cost, 2),
        "page_walk_deepest_page": deepest,
        "goal_records_per_cost": 98,
    }))


if __name__ == "__main__":
    main()
