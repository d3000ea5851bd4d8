"""Benchmark: the engagement models over millions of emails and calls, DuckDB and Postgres side by side.

Synthetic staging tables (the columns the engagement SQL reads) are generated
inside each engine with SQL `generate_series`: `--rows` emails and calls
(70% emails), spread over `--days` days, with memberships, meetings,
successes and users to match, and given the indexes the pipeline gives
staging tables (Postgres only; `indexes_s`). Then, on the same data in each engine:
- full: every engagement model, every day, from empty tables;
- one_day: every model, one day in the middle (a sensor-triggered rebuild);
- detect: the sensor's change detection over every day (nothing changed).
With `--timezones`, each engine runs once per reporting time zone (days
counted in it), side by side, on the same generated data. Prints one JSON
line: per engine, the figures of each zone.

    python bench/bench_engagement.py --rows 10000000 --engines duckdb,postgres --timezones UTC,America/New_York

Postgres runs in a throwaway database on the server of `--postgres-url`
(default SALESLOFT_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


from salesloft_pipeline import reporting
from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.defs.staging.build import STAGING_INDEXES, staging_indexes_sql
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

START = date(2025, 1, 1)
PEOPLE = 200_000
USERS = 50
CADENCES = 300


def generation_sql(rows: int, days: int) -> str:
    emails, calls = rows * 7 // 10, rows - rows * 7 // 10
    seconds = days * 86_400
    start = f"TIMESTAMPTZ '{START.isoformat()} 00:00:00+00:00'"

    def at(n: int) -> str:  # activity spread evenly over the days, in id order
        return f"{start} + CAST(FLOOR(CAST(i AS DOUBLE PRECISION) * {seconds} / {n}) AS BIGINT) * INTERVAL '1 second'"

    memberships, meetings, successes = PEOPLE * 3 // 2, rows // 200, rows // 200
    return f"""
DROP SCHEMA IF EXISTS engagement CASCADE;
DROP SCHEMA IF EXISTS staging CASCADE;
CREATE SCHEMA staging;
CREATE SCHEMA engagement;
CREATE TABLE staging.users AS
SELECT i AS id, 'guid-' || CAST(i AS VARCHAR) AS guid FROM generate_series(CAST(1 AS BIGINT), {USERS}) AS g(i);
CREATE TABLE staging.emails AS
SELECT i AS id, {at(emails)} AS sent_at,
       CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'sent' END AS status,
       i % 29 = 0 AS bounced,
       CAST(CASE WHEN i % 5 < 2 THEN 1 + i % 3 ELSE 0 END AS BIGINT) AS views,
       CAST(CASE WHEN i % 23 = 0 THEN 1 ELSE 0 END AS BIGINT) AS clicks,
       CAST(CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END AS BIGINT) AS replies,
       i % {USERS} + 1 AS user_id, (i * 7919) % {PEOPLE} + 1 AS recipient_id,
       CASE WHEN i % 10 < 8 THEN ((i * 7919) % {PEOPLE}) % {CADENCES} + 1 END AS cadence_id,
       CASE WHEN i % 10 < 8 THEN (((i * 7919) % {PEOPLE}) % {CADENCES}) * 10 + i % 4 END AS step_id
FROM generate_series(CAST(1 AS BIGINT), {emails}) AS g(i);
CREATE TABLE staging.calls AS
SELECT i AS id, {at(calls)} AS created_at,
       CASE i % 6 WHEN 0 THEN 'Connected' WHEN 1 THEN 'No Answer' WHEN 2 THEN 'Left Voicemail'
                  WHEN 3 THEN 'Busy' WHEN 4 THEN 'No Answer' ELSE NULL END AS disposition,
       CASE i % 4 WHEN 0 THEN 'Interested' WHEN 1 THEN 'Not Interested' ELSE NULL END AS sentiment,
       CAST(CASE WHEN i % 6 = 0 THEN 30 + i % 900 WHEN i % 6 = 2 THEN 20 ELSE NULL END AS DOUBLE PRECISION) AS duration,
       CAST(NULL AS BOOLEAN) AS connected,
       i % {USERS} + 1 AS user_id, (i * 104729) % {PEOPLE} + 1 AS called_person_id,
       CASE WHEN i % 10 < 7 THEN ((i * 104729) % {PEOPLE}) % {CADENCES} + 1 END AS cadence_id,
       CASE WHEN i % 10 < 7 THEN (((i * 104729) % {PEOPLE}) % {CADENCES}) * 10 + 4 END AS step_id
FROM generate_series(CAST(1 AS BIGINT), {calls}) AS g(i);
CREATE TABLE staging.cadence_memberships AS
SELECT i AS id, {at(memberships)} AS added_at, (i - 1) % {PEOPLE} + 1 AS person_id,
       ((i - 1) % {PEOPLE}) % {CADENCES} + 1 + CAST(FLOOR(CAST(i - 1 AS DOUBLE PRECISION) / {PEOPLE}) AS BIGINT) AS cadence_id, i % {USERS} + 1 AS user_id
FROM generate_series(CAST(1 AS BIGINT), {memberships}) AS g(i);
CREATE TABLE staging.meetings AS
SELECT i AS id, {at(meetings)} AS created_at, 'guid-' || CAST(i % {USERS} + 1 AS VARCHAR) AS booked_by_user_id,
       CASE WHEN i % 10 = 0 THEN {at(meetings)} END AS canceled_at,
       CASE WHEN i % 10 = 0 THEN 'canceled' ELSE 'booked' END AS status, i % 12 = 0 AS no_show,
       (i * 31) % {PEOPLE} + 1 AS person_id, i % {CADENCES} + 1 AS cadence_id, (i % {CADENCES}) * 10 AS step_id
FROM generate_series(CAST(1 AS BIGINT), {meetings}) AS g(i);
CREATE TABLE staging.successes AS
SELECT i AS id, {at(successes)} AS succeeded_at, i % {USERS} + 1 AS user_id, (i * 31) % {PEOPLE} + 1 AS person_id,
       i % {CADENCES} + 1 AS cadence_id, (i % {CADENCES}) * 10 AS step_id
FROM generate_series(CAST(1 AS BIGINT), {successes}) AS g(i);
"""


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return round(time.perf_counter() - started, 3)


def run(wh: Warehouse, rows: int, days: int) -> dict[str, object]:
    last = START + timedelta(days=days - 1)
    middle = START + timedelta(days=days // 2)
    figures: dict[str, object] = {"generate_s": timed(lambda: wh.execute_script(generation_sql(rows, days)))}
    # What the staging rebuild adds on this engine (nothing on DuckDB).
    indexes = "".join(staging_indexes_sql(wh, stream) for stream in STAGING_INDEXES)
    figures["indexes_s"] = timed(lambda: wh.execute_script(indexes) if indexes else None)
    figures["full_s"] = timed(lambda: models.build(wh, models.MODELS, START, last))
    figures["one_day_s"] = timed(lambda: models.build(wh, models.MODELS, middle, middle))
    stale: list[date] = []
    figures["detect_s"] = timed(lambda: stale.extend(models.stale_days(wh, START, last)))
    figures["stale_days_found"] = len(stale)
    [(facts,)] = wh.query("SELECT count(*) FROM engagement.activity_facts")
    [(sent, calls)] = wh.query("SELECT sum(emails_sent), sum(calls) FROM engagement.daily_engagement")
    figures.update({"facts_rows": facts, "emails_sent": int(sent), "calls": int(calls)})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="emails + calls")
    parser.add_argument("--postgres-rows", type=int, default=None, help="rows for Postgres (default: --rows)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SALESLOFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a Postgres server (any database on it) to make the throwaway database on",
    )
    parser.add_argument("--timezones", default="UTC", help="reporting time zones to count days in, comma-separated")
    args = parser.parse_args()
    result: dict[str, object] = {"benchmark": "engagement", "rows": args.rows, "days": args.days, "cpus": os.cpu_count()}
    engines = args.engines.split(",")
    for zone in args.timezones.split(","):
        os.environ[reporting.VARIABLE] = reporting.validated(zone)
        if "duckdb" in engines:
            with tempfile.TemporaryDirectory() as tmp:
                figures = run(open_warehouse(str(Path(tmp) / "bench.duckdb")), args.rows, args.days)
            result.setdefault("duckdb", {})[zone] = figures  # type: ignore[index]
        if "postgres" in engines:
            with throwaway_database(args.postgres_url, "slp_bench_engagement") as url:
                rows = args.postgres_rows or args.rows
                figures = {"rows": rows, **run(open_warehouse(url), rows, args.days)}
            result.setdefault("postgres", {})[zone] = figures  # type: ignore[index]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
