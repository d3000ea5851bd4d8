"""Benchmark: generating a large team's history into the simulator's Store.

Prints one JSON line. Activity records are those of the activity streams
(emails, calls, call data records, CRM activities, actions, notes, meetings,
successes, tasks).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime, timezone

from salesloft_pipeline.simulator.config import SimulatorConfig
from salesloft_pipeline.simulator.generator import populate
from salesloft_pipeline.simulator.store import Store

ACTIVITY_STREAMS = (
    "emails", "calls", "call_data_records", "crm_activities", "actions", "notes", "meetings", "successes", "tasks",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=9000)  # ~1.05M activity records over 90 days
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = SimulatorConfig(
        seed=args.seed, people=args.people, days=args.days, anchor=datetime(2026, 1, 1, tzinfo=timezone.utc)
    )
    store = Store()
    started = time.perf_counter()
    populate(store, config)
    seconds = time.perf_counter() - started
    activity = sum(len(store.table(s)) for s in ACTIVITY_STREAMS)
    print(json.dumps({
        "benchmark": "simulator_generate",
        "people": args.people,
        "days": args.days,
        "activity_records": activity,
        "emails_and_calls": len(store.table("emails")) + len(store.table("calls")),
        "total_records": sum(len(table) for table in store.tables.values()),
        "seconds": round(seconds, 2),
        "records_per_second": round(activity / seconds),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))


if __name__ == "__main__":
    main()
