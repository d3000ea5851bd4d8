"""A 90-day backfill of every incremental stream at SalesLoft's rate, then the same backfill again.

SalesLoft allows 600 cost a minute (10 a second). The simulator runs in its
own process with a short window at that same rate (`--budget 60
--window-seconds 6` by default), so the run takes minutes, not hours, and the
floor set by the budget is unchanged: records / 100 / 600 minutes at best.
The pipeline keeps 10% of the budget for the rest of the team, so its own
floor is that divided by 0.9.

    python bench/bench_backfill.py [--people 4100] [--days 90] [--budget 60] [--window-seconds 6]
        [--warehouse postgresql://...]

`--warehouse` takes SALESLOFT_WAREHOUSE_URL's format (an empty Postgres
database, or a DuckDB file; default a DuckDB file in a temporary folder).
`--budget 0` turns SalesLoft's rate limit off: the figures are then the
pipeline's own speed, API client, Dagster and warehouse writes together.

Prints one JSON line: wall time against both floors, API cost per 100
records, peak memory of the backfill process, and the cost and time of a
rerun of the same range (days already complete are not read again).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.salesloft import STREAMS

KEY = "bench-key"
SHARE = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=4100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--window-seconds", type=float, default=6.0)
    parser.add_argument("--warehouse", default=None, help="warehouse URL (default: a temporary DuckDB file)")
    args = parser.parse_args()

    # History ends two days ago, so every day of the range is complete once loaded.
    anchor = (datetime.now(timezone.utc) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    first, last = (anchor - timedelta(days=args.days)).date(), anchor.date()
    server = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "simulator", "--port", "0", "--api-key", KEY,
         "--people", str(args.people), "--days", str(args.days), "--anchor", anchor.isoformat(),
         "--budget", str(args.budget), "--window-seconds", str(args.window_seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        match = re.search(r"(http://\S+)/v2", server.stdout.readline())  # type: ignore[union-attr]
        if not match:
            sys.exit("the simulator did not start")
        root = match.group(1)
        incremental = [s for s in STREAMS if s.incremental and s.required_scope is None]
        assets = [a for a in EXTRACT_ASSETS if a.key.path[-1] in {s.name for s in incremental}]
        with tempfile.TemporaryDirectory() as folder:
            resources = {
                "salesloft": SalesloftResource(
                    api_key=KEY, base_url=f"{root}/v2", window_seconds=args.window_seconds, budget_share=SHARE
                ),
                "warehouse": WarehouseResource(url=args.warehouse or str(Path(folder) / "warehouse.duckdb")),
            }
            tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}

            def backfill() -> tuple[float, dict]:
                httpx.post(f"{root}/__sim/stats/reset").raise_for_status()
                started = time.monotonic()
                result = dg.materialize(assets, resources=resources, tags=tags)
                if not result.success:
                    sys.exit("the backfill failed")
                return time.monotonic() - started, httpx.get(f"{root}/__sim/stats").json()

            seconds, stats = backfill()
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            records = sum(
                len(httpx.get(f"{root}/__sim/truth/{s.name}", timeout=120).json()["records"]) for s in incremental
            )
            rerun_seconds, rerun_stats = backfill()
    finally:
        server.terminate()
        server.wait(30)

    per_second = args.budget / args.window_seconds
    floor = records / 100 / per_second if per_second else None
    engine = "postgres" if args.warehouse and "://" in args.warehouse else "duckdb"
    print(json.dumps({
        "benchmark": "backfill",
        "warehouse": engine,
        "people": args.people,
        "days": args.days,
        "streams": len(incremental),
        "records": records,
        "budget_per_second": per_second,
        "seconds": round(seconds, 1),
        "records_per_second": round(records / seconds),
        "floor_seconds_full_budget": round(floor, 1) if floor else None,
        "floor_seconds_at_share": round(floor / SHARE, 1) if floor else None,
        "ratio_to_floor_at_share": round(seconds / (floor / SHARE), 3) if floor else None,
        "api_cost": stats["cost"],
        "api_cost_per_100_records": round(stats["cost"] / records * 100, 3),
        "requests_by_cost": stats["requests_by_cost"],
        "rate_limited": stats["rate_limited"],
        "deepest_page": stats["deepest_page"],
        "peak_rss_mb": round(peak_rss_mb),
        "rerun_seconds": round(rerun_seconds, 1),
        "rerun_api_cost": rerun_stats["cost"],
    }))


if __name__ == "__main__":
    main()
