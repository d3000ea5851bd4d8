"""Write-back of N people rows: single requests against bulk upsert jobs, side by side in one run.

For each mode a fresh simulator of the same seed (in its own process, rate
limit off so wall times are our code's) and a fresh warehouse: extraction and
staging of people, cadences, memberships and users, then `writeback.people`
filled by SQL (`--new` people staging does not know, `--updates` existing
people with a new title), then `writeback/people` materialized once with
`bulk_threshold` above N (one request a change) and once with 0 (person/upsert
bulk jobs of up to 5000 records). Then the same run again, which must send
nothing, and again after the next extraction of people. The single-request
simulator also gets `--enrollments` rows through `writeback/cadence_enrollments`.

    PYTHONPATH=. python bench/bench_writeback.py [--new 5000] [--updates 1000] [--enrollments 1000]
        [--people 2000] [--days 3] [--postgres-url postgresql://...]

`--postgres-url`: the warehouse is a throwaway database on that server
(created and dropped per mode) instead of a DuckDB file. The time at
SalesLoft's rate is the API cost at 600 a minute with the pipeline's 90%
share (cost / 9 s); for bulk jobs SalesLoft's own time to run the job is not
in it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.defs.writeback.assets import writeback_cadence_enrollments, writeback_people
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.warehouse.writeback import LEDGER, Ledger
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

KEY = "bench-key"
PER_SECOND_AT_SHARE = 600 / 60 * 0.9  # SalesLoft's 600 cost a minute, our 90% share
STAGED = ["people", "cadences", "cadence_memberships", "users"]
TAG = "wbbench"


@contextmanager
def simulator(seed: int, people: int, days: int, anchor: datetime) -> Iterator[str]:
    """A simulator in its own process with the rate limit off; yields its root URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "simulator", "--port", "0", "--api-key", KEY,
         "--seed", str(seed), "--people", str(people), "--days", str(days), "--anchor", anchor.isoformat(),
         "--budget", "0", "--webhook-duplicate-rate", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        match = re.search(r"(http://\S+)/v2", server.stdout.readline())  # type: ignore[union-attr]
        if not match:
            sys.exit("the simulator did not start")
        yield match.group(1)
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def warehouse(postgres_url: str | None) -> Iterator[str]:
    """A fresh warehouse URL: a DuckDB file, or a throwaway Postgres database dropped afterwards."""
    if not postgres_url:
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / "warehouse.duckdb")
        return
    with throwaway_database(postgres_url, "slp_bench_writeback") as url:
        yield url


def resources(root: str, url: str) -> dict[str, Any]:
    return {"salesloft": SalesloftResource(api_key=KEY, base_url=f"{root}/v2"), "warehouse": WarehouseResource(url=url)}


def load_staging(root: str, url: str, first: str, last: str, streams: list[str]) -> None:
    """Extraction then staging, as the schedule would run them."""
    keys = {raw_asset_key(BY_NAME[s]) for s in streams}
    incremental = [a for a in EXTRACT_ASSETS if a.key in keys and BY_NAME[a.key.path[-1]].incremental]
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last}
    if not dg.materialize(incremental, resources=resources(root, url), tags=tags).success:
        sys.exit("extraction failed")
    full = [a for a in EXTRACT_ASSETS if a.key in keys and not BY_NAME[a.key.path[-1]].incremental]
    staging = [a for a in STAGING_ASSETS if a.key.path[-1] in streams]
    if not dg.materialize(full + staging, resources=resources(root, url)).success:
        sys.exit("staging failed")


def fill_people(url: str, new: int, updates: int) -> None:
    """writeback.people by SQL, as a user's model would: new people, and existing ones with a new title."""
    wh = open_warehouse(url)
    Ledger(wh).setup()
    text, json_type = wh.TYPES["text"], wh.TYPES["json"]
    wh.execute_script(
        f"""
        DELETE FROM writeback.people;
        INSERT INTO writeback.people (email_address, first_name, last_name, title, city, tags)
        SELECT '{TAG}-' || CAST(i AS {text}) || '@example.com', 'Bench', 'Person ' || CAST(i AS {text}),
               'Buyer', 'Lyon', CAST('["bench"]' AS {json_type})
        FROM generate_series(1, {new}) AS g(i);
        INSERT INTO writeback.people (email_address, title)
        SELECT record ->> 'email_address', 'Title {TAG}'
        FROM staging.people
        WHERE record ->> 'email_address' IS NOT NULL
          AND lower(record ->> 'email_address') IN (
              SELECT lower(record ->> 'email_address') FROM staging.people
              GROUP BY 1 HAVING count(*) = 1)
        ORDER BY id
        LIMIT {updates};
        """
    )
    [(rows,)] = wh.query("SELECT count(*) FROM writeback.people")
    if rows != new + updates:
        sys.exit(f"writeback.people has {rows} rows, not {new + updates} (too few people with an email to update?)")


def fill_enrollments(url: str, count: int) -> None:
    """writeback.cadence_enrollments by SQL: people not yet on the first live cadence, by id."""
    wh = open_warehouse(url)
    wh.execute_script(
        f"""
        DELETE FROM writeback.cadence_enrollments;
        INSERT INTO writeback.cadence_enrollments (person_id, cadence_id)
        SELECT p.id, c.id
        FROM staging.people AS p
        CROSS JOIN (SELECT min(id) AS id FROM staging.cadences WHERE record ->> 'archived_at' IS NULL) AS c
        WHERE NOT EXISTS (SELECT 1 FROM staging.cadence_memberships AS m
                          WHERE m.person_id = p.id AND m.cadence_id = c.id)
        ORDER BY p.id
        LIMIT {count};
        """
    )
    [(rows,)] = wh.query("SELECT count(*) FROM writeback.cadence_enrollments")
    if rows != count:
        sys.exit(f"writeback.cadence_enrollments has {rows} rows, not {count}")


def sim_stats(root: str) -> dict[str, Any]:
    return httpx.get(f"{root}/__sim/stats", timeout=30).json()


def materialize(root: str, url: str, asset: dg.AssetsDefinition, config: dict[str, Any]) -> dict[str, Any]:
    """One run of `asset`; its wall time, what the simulator saw and the run's ledger rows by status."""
    httpx.post(f"{root}/__sim/stats/reset", timeout=30).raise_for_status()
    started, cpu = time.monotonic(), time.process_time()
    result = dg.materialize(
        [asset], resources=resources(root, url), run_config={"ops": {asset.op.name: {"config": config}}}
    )
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    if not result.success:
        sys.exit(f"{asset.key.to_user_string()} failed")
    stats = sim_stats(root)
    run_id = result.dagster_run.run_id
    rows = open_warehouse(url).query(f"SELECT status, count(*) FROM {LEDGER} WHERE run_id = '{run_id}' GROUP BY 1")
    writes = sum(stats["writes_by_endpoint"].values())
    lookups = sum(stats["by_stream"].values())  # GET people?email_addresses[]=..., cadence_memberships...
    kinds = {"lookups": lookups, "writes": writes, "bulk_job_reads": stats["requests"] - writes - lookups}
    return {"seconds": seconds, "cpu_seconds": cpu, "requests": stats["requests"], "cost": stats["cost"],
            "writes": writes, "requests_by_kind": kinds,
            "writes_by_endpoint": {k: v for k, v in stats["writes_by_endpoint"].items() if v},
            "rate_limited": stats["rate_limited"], "ledger": dict(sorted(rows))}  # fmt: skip


def figures(first: dict[str, Any], rows: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "api_requests": first["requests"],
        "requests_by_kind": first["requests_by_kind"],
        "write_requests": first["writes_by_endpoint"],
        "api_cost": first["cost"],
        "api_cost_per_1000_rows": round(first["cost"] / rows * 1000, 1),
        "seconds": round(first["seconds"], 2),
        "rows_per_second": round(rows / first["seconds"]),
        "cpu_seconds": round(first["cpu_seconds"], 2),  # this process's: Dagster, the client, the ledger
        "seconds_at_600_per_min_90pct": round(first["cost"] / PER_SECOND_AT_SHARE, 1),
        "ledger_rows": first["ledger"],
    }


def check_people(root: str, new: int, updates: int) -> dict[str, int]:
    """What SalesLoft holds afterwards: every new person once, every update applied."""
    people = httpx.get(f"{root}/__sim/truth/people", params={"full": "true"}, timeout=120).json()["records"]
    created = [p for p in people if str(p.get("email_address") or "").startswith(f"{TAG}-")]
    updated = [p for p in people if p.get("title") == f"Title {TAG}"]
    emails = {p["email_address"] for p in created}
    if len(created) != new or len(emails) != new or len(updated) != updates:
        sys.exit(f"SalesLoft has {len(created)} new people ({len(emails)} emails), {len(updated)} updated")
    return {"created": len(created), "updated": len(updated)}


def run_mode(args: argparse.Namespace, anchor: datetime, bulk: bool) -> dict[str, Any]:
    first, last = (anchor - timedelta(days=args.days)).date().isoformat(), datetime.now(timezone.utc).date()
    rows = args.new + args.updates
    config = {"bulk_threshold": 0 if bulk else rows + 1}
    with simulator(args.seed, args.people, args.days, anchor) as root, warehouse(args.postgres_url) as url:
        load_staging(root, url, first, last.isoformat(), STAGED)
        fill_people(url, args.new, args.updates)
        once = materialize(root, url, writeback_people, config)
        result = {"mode": "bulk jobs" if bulk else "single requests", **figures(once, rows)}
        result["applied"] = check_people(root, args.new, args.updates)
        rerun = materialize(root, url, writeback_people, config)
        result["rerun"] = {"api_requests": rerun["requests"], "writes": rerun["writes"],
                           "ledger_rows": sum(rerun["ledger"].values()), "seconds": round(rerun["seconds"], 2)}  # fmt: skip
        # The changes come back by extraction (today's partition): staging knows everyone, no lookups left.
        load_staging(root, url, last.isoformat(), last.isoformat(), ["people"])
        after = materialize(root, url, writeback_people, config)
        result["rerun_after_extraction"] = {"api_requests": after["requests"], "writes": after["writes"],
                                            "ledger_rows": sum(after["ledger"].values()),
                                            "seconds": round(after["seconds"], 2)}  # fmt: skip
        if not bulk and args.enrollments:
            fill_enrollments(url, args.enrollments)
            once = materialize(root, url, writeback_cadence_enrollments, {})
            enrolled = {"mode": "single requests", **figures(once, args.enrollments)}
            rerun = materialize(root, url, writeback_cadence_enrollments, {})
            enrolled["rerun"] = {"api_requests": rerun["requests"], "writes": rerun["writes"],
                                 "ledger_rows": sum(rerun["ledger"].values())}  # fmt: skip
            result["enrollments"] = enrolled
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=5000, help="people rows staging and SalesLoft do not know")
    parser.add_argument("--updates", type=int, default=1000, help="rows that change an existing person's title")
    parser.add_argument("--enrollments", type=int, default=1000, help="cadence enrollments (single requests)")
    parser.add_argument("--people", type=int, default=2000, help="people in the simulated team")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--postgres-url", default=None, help="Postgres server for throwaway warehouses")
    args = parser.parse_args()

    anchor = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    modes = [run_mode(args, anchor, bulk=False), run_mode(args, anchor, bulk=True)]
    single, bulk = modes
    print(json.dumps({
        "benchmark": "writeback",
        "warehouse": "postgres" if args.postgres_url else "duckdb",
        "people_rows": args.new + args.updates,
        "new": args.new,
        "updates": args.updates,
        "modes": modes,
        "bulk_vs_single": {
            "api_cost": round(bulk["api_cost"] / single["api_cost"], 4),
            "seconds": round(bulk["seconds"] / single["seconds"], 3),
        },
    }))  # fmt: skip


if __name__ == "__main__":
    main()
