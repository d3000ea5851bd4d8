"""Benchmark: what a webhook batch and a schedule tick cost as history grows, DuckDB and Postgres side by side.

A team's history grows by days, not by denser days: each history size
(emails + calls, 70% emails, `--daily` of them a day, so 1M is 100 days and
10M is 1,000; with memberships, meetings, successes and users to match) is
generated inside the engine as raw tables of the pipeline's real layout, then
built the way a new deployment builds them (full staging rebuild, first
engagement update: `full_staging_s`, `full_engagement_s`). Then, through the
pipeline's own code:
- webhook_100: 100 emails of the last 30 days changed (a late reply and open
  each), upserted as the webhook apply job does, merged into staging, and the
  engagement days they touch rebuilt (`raw_s`, `staging_s`, `engagement_s`,
  `total_s`, `days_rebuilt`);
- webhook_100_anywhere: the same, with the 100 emails spread over the whole
  history (every one a different day: the worst case for the days rebuilt);
- tick_5000: a schedule tick's load of today: 4,000 emails of the last 30 days
  changed and 1,000 new ones, then the same merge and update.
Each is run `--repeat` times; the median is reported, with the ratio of the
largest history to the smallest (the goal: at most 1.5, flat in history size).
Prints one JSON line.

    python bench/bench_incremental.py --sizes 1000000,10000000 --engines duckdb,postgres

Postgres runs in a throwaway database on the server of `--postgres-url`
(default SALESLOFT_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from salesloft_pipeline.defs.engagement import changes
from salesloft_pipeline.defs.extract.tables import all_raw_tables, raw_table
from salesloft_pipeline.defs.staging.build import ENGAGEMENT_INPUTS, build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import PostgresWarehouse, Warehouse, open_warehouse
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

START = date(2025, 1, 1)
PEOPLE = 200_000
USERS = 50
CADENCES = 300


def generation_sql(wh: Warehouse, rows: int, days: int, first: date = START) -> str:
    """INSERTs filling the raw tables of the engagement inputs, in the engine, from day `first`."""
    postgres = isinstance(wh, PostgresWarehouse)
    obj = "jsonb_build_object" if postgres else "json_object"
    text = "TEXT" if postgres else "VARCHAR"
    emails, calls = rows * 7 // 10, rows - rows * 7 // 10
    memberships, meetings, successes = PEOPLE * 3 // 2, rows // 200, rows // 200
    start = f"TIMESTAMPTZ '{first.isoformat()} 00:00:00+00:00'"
    seconds = days * 86_400

    def at(n: int) -> str:  # activity spread evenly over the days, in id order
        return f"({start} + CAST(FLOOR(CAST(i AS DOUBLE PRECISION) * {seconds} / {n}) AS BIGINT) * INTERVAL '1 second')"

    def ref(expr: str) -> str:
        return f"{obj}('id', {expr})"

    def insert(stream: str, n: int, activity: str, columns: dict[str, str], record: str) -> str:
        updated = f"({activity} + CAST(i % 3 AS BIGINT) * INTERVAL '1 day')"
        values = {"id": "i", "created_at": activity, "updated_at": updated, **columns, "record": record,
                  "_partition": f"CAST({updated} AT TIME ZONE 'UTC' AS DATE)",
                  "_extracted_at": f"{updated} + INTERVAL '2 hours'", "_source": "'poll'"}  # fmt: skip
        return (
            f"INSERT INTO raw.{stream} ({', '.join(values)})\n"
            f"SELECT {', '.join(values.values())} FROM generate_series(CAST(1 AS BIGINT), {n}) AS g(i);\n"
        )

    person_e, person_c = f"((i * 7919) % {PEOPLE} + 1)", f"((i * 104729) % {PEOPLE} + 1)"
    cadence_e = f"(CASE WHEN i % 10 < 8 THEN ((i * 7919) % {PEOPLE}) % {CADENCES} + 1 END)"
    cadence_c = f"(CASE WHEN i % 10 < 7 THEN ((i * 104729) % {PEOPLE}) % {CADENCES} + 1 END)"
    email_record = (
        f"{obj}('id', i, 'status', CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'sent' END, 'bounced', i % 29 = 0,"
        f" 'counts', {obj}('views', CASE WHEN i % 5 < 2 THEN 1 + i % 3 ELSE 0 END,"
        f" 'clicks', CASE WHEN i % 23 = 0 THEN 1 ELSE 0 END, 'replies', CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END),"
        f" 'sent_at', CAST({at(emails)} AS {text}), 'updated_at', CAST({at(emails)} AS {text}),"
        f" 'recipient', {ref(person_e)}, 'cadence', {ref(cadence_e)}, 'user', {ref(f'i % {USERS} + 1')})"
    )
    call_record = (
        f"{obj}('id', i, 'disposition', CASE i % 6 WHEN 0 THEN 'Connected' WHEN 1 THEN 'No Answer'"
        f" WHEN 2 THEN 'Left Voicemail' ELSE 'Busy' END, 'duration', CASE WHEN i % 6 = 0 THEN 30 + i % 900 END)"
    )
    return (
        insert("emails", emails, at(emails), {
            "sent_at": at(emails), "user_id": f"i % {USERS} + 1", "recipient_id": person_e, "cadence_id": cadence_e,
            "step_id": f"CASE WHEN i % 10 < 8 THEN (((i * 7919) % {PEOPLE}) % {CADENCES}) * 10 + i % 4 END",
        }, email_record)
        + insert("calls", calls, at(calls), {
            "user_id": f"i % {USERS} + 1", "called_person_id": person_c, "cadence_id": cadence_c,
        }, call_record)
        + insert("cadence_memberships", memberships, at(memberships), {
            "added_at": at(memberships), "person_id": f"(i - 1) % {PEOPLE} + 1",
            "cadence_id": f"((i - 1) % {PEOPLE}) % {CADENCES} + 1", "user_id": f"i % {USERS} + 1",
        }, f"{obj}('id', i)")
        + insert("meetings", meetings, at(meetings), {
            "booked_by_user_id": f"'guid-' || CAST(i % {USERS} + 1 AS {text})", "person_id": f"(i * 31) % {PEOPLE} + 1",
        }, f"{obj}('id', i, 'status', 'booked', 'no_show', i % 12 = 0)")
        + insert("successes", successes, at(successes), {}, (
            f"{obj}('id', i, 'succeeded_at', CAST({at(successes)} AS {text}), 'user', {ref(f'i % {USERS} + 1')},"
            f" 'person', {ref(f'(i * 31) % {PEOPLE} + 1')})"
        ))
        + insert("users", USERS, start, {}, f"{obj}('id', i, 'guid', 'guid-' || CAST(i AS {text}))")
    )  # fmt: skip


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def emails_now(wh: Warehouse, ids: list[int], now: datetime) -> list[dict[str, Any]]:
    """New versions of these emails: a late reply and open each, updated now."""
    listed = ", ".join(str(i) for i in ids)
    versions = []
    for (record,) in wh.query(f"SELECT CAST(record AS {wh.TYPES['text']}) FROM staging.emails WHERE id IN ({listed})"):
        email = json.loads(record)
        email["counts"] = {**email["counts"], "replies": email["counts"]["replies"] + 1, "views": email["counts"]["views"] + 1}
        email["updated_at"] = now.isoformat()
        versions.append(email)
    return versions


def propagate(wh: Warehouse, last: date) -> dict[str, float]:
    figures = {"staging_s": timed(lambda: build_staging(wh, BY_NAME["emails"]))}
    update: list[Any] = []
    figures["engagement_s"] = timed(lambda: update.append(changes.update_changed_days(wh, START, last)))
    figures["days_rebuilt"] = len(update[0].days)
    return figures


def history_days(rows: int, daily: int) -> int:
    return max(rows // daily, 31)


def recent_email_ids(rows: int, days: int) -> range:
    """Ids of the generated emails of the last 30 days (ids are in sending order)."""
    emails = rows * 7 // 10
    return range(emails - emails * 30 // days, emails + 1)


def build_history(wh: Warehouse, rows: int, days: int, first: date, last: date) -> dict[str, float]:
    """The history generated from day `first`, then built as a new deployment builds it
    (full staging rebuild, first engagement update over first..last); seconds of each step."""
    wh.setup(all_raw_tables())
    figures = {"generate_s": timed(lambda: wh.execute_script(generation_sql(wh, rows, days, first)))}
    if isinstance(wh, PostgresWarehouse):
        wh.execute_script("".join(f"ANALYZE raw.{s};" for s in ENGAGEMENT_INPUTS))
    wh.execute_script("DELETE FROM raw._changes")  # generated in bulk: the first build takes everything
    figures["full_staging_s"] = timed(lambda: [build_staging(wh, BY_NAME[s], force=True) for s in ENGAGEMENT_INPUTS])
    figures["full_engagement_s"] = timed(lambda: changes.update_changed_days(wh, first, last))
    return figures


def run(wh: Warehouse, rows: int, daily: int, repeat: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    days = history_days(rows, daily)
    last = START + timedelta(days=days + 3)
    figures: dict[str, Any] = {"days": days, **build_history(wh, rows, days, START, last)}
    emails = rows * 7 // 10
    recent = recent_email_ids(rows, days)
    emails_table = raw_table(BY_NAME["emails"])
    runs: dict[str, list[dict[str, float]]] = {"webhook_100": [], "webhook_100_anywhere": [], "tick_5000": []}
    for n in range(repeat):
        now = datetime.combine(last, datetime.min.time(), timezone.utc) + timedelta(minutes=n + 1)
        for name, ids in (("webhook_100", rng.sample(recent, 100)), ("webhook_100_anywhere", rng.sample(range(1, emails + 1), 100))):
            batch = emails_now(wh, ids, now)
            one = {"raw_s": timed(lambda: wh.upsert_records(emails_table, batch))}
            runs[name].append({**one, **propagate(wh, last)})

        changed = emails_now(wh, rng.sample(recent, 4000), now)
        template = changed[0]
        new = [{**template, "id": emails + 1_000_000 * (n + 1) + k, "sent_at": now.isoformat()} for k in range(1000)]
        one = {"raw_s": timed(lambda: wh.replace_partition(emails_table, last, changed + new))}
        runs["tick_5000"].append({**one, **propagate(wh, last)})
    for one in (r for rs in runs.values() for r in rs):
        one["total_s"] = one["raw_s"] + one["staging_s"] + one["engagement_s"]
    for name, measured in runs.items():
        figures[name] = {k: round(statistics.median(r[k] for r in measured), 3) for k in measured[0]}
    figures["full_staging_s"] = round(figures["full_staging_s"], 3)
    figures["full_engagement_s"] = round(figures["full_engagement_s"], 3)
    figures["generate_s"] = round(figures["generate_s"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000", help="history sizes: emails + calls")
    parser.add_argument("--daily", type=int, default=10_000, help="emails + calls a day")
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SALESLOFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a Postgres server (any database on it) to make the throwaway database on",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, Any] = {"benchmark": "incremental", "sizes": sizes, "daily": args.daily, "cpus": os.cpu_count()}
    for engine in args.engines.split(","):
        by_size: dict[str, Any] = {}
        for size in sizes:
            if engine == "duckdb":
                with tempfile.TemporaryDirectory() as tmp:
                    by_size[str(size)] = run(open_warehouse(str(Path(tmp) / "bench.duckdb")), size, args.daily, args.repeat, args.seed)
            else:
                with throwaway_database(args.postgres_url, "slp_bench_incremental") as url:
                    by_size[str(size)] = run(open_warehouse(url), size, args.daily, args.repeat, args.seed)
        small, large = by_size[str(sizes[0])], by_size[str(sizes[-1])]
        by_size["ratio_largest_to_smallest"] = {
            name: round(large[name]["total_s"] / max(small[name]["total_s"], 1e-9), 2)
            for name in ("webhook_100", "webhook_100_anywhere", "tick_5000")
        }
        result[engine] = by_size
    print(json.dumps(result))


if __name__ == "__main__":
    main()
