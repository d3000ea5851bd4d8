"""Time from a webhook delivery to its row in staging, with the real Dagster daemon.

Starts the endpoint (`salesloft-pipeline webhooks serve`) and `dagster-daemon
run` on the code location, each a real process with its own fresh home
(DuckDB warehouse, SQLite event store, SQLite Dagster storage), with the
sensor at its default interval. Sends `--deliveries` signed person_updated
deliveries at random moments over `--spread` seconds, then waits for them.
A delivery is in staging when the apply run whose range holds its sequence
number reports its staging table materialized; the latency is that event's
time minus the time the delivery was acknowledged.

    python bench/bench_webhooks_latency.py [--deliveries 30] [--spread 90]

With `--history N`, the warehouse first holds N emails and calls of history
(`--daily` a day, ending today; generated as bench_incremental.py does, and
built: staging and every engagement day), and the deliveries are
email_updated events of emails of the last 30 days (a late reply each),
sent at a sustained `--rate` a second for `--spread` seconds; the
engagement sensor and its update runs work alongside, as in production.
`--postgres-url` puts the warehouse in a throwaway Postgres database.

    python bench/bench_webhooks_latency.py --history 10000000 --rate 20 --spread 300

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "latency-bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=30)
    parser.add_argument("--spread", type=float, default=90.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--history", type=int, default=0, help="emails + calls of history in the warehouse first")
    parser.add_argument("--daily", type=int, default=10_000, help="with --history: emails + calls a day")
    parser.add_argument("--rate", type=float, default=0.0, help="with --history: deliveries a second, sustained")
    parser.add_argument("--postgres-url", default=None, help="a Postgres server for a throwaway warehouse database")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        warehouse_url = None
        if args.postgres_url:
            warehouse_url = stack.enter_context(throwaway_database(args.postgres_url, "slp_bench_latency"))
        run(args, warehouse_url)


def prepare_history(warehouse_url: str, rows: int, daily: int, sample: int) -> tuple[list[dict], date, float]:
    """`rows` emails and calls ending today, built; returns `sample` emails of the last 30 days,
    the history's first day and the seconds taken."""
    from bench_incremental import build_history, history_days, recent_email_ids

    from salesloft_pipeline.warehouse import open_warehouse

    started = time.perf_counter()
    days = history_days(rows, daily)
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1)
    wh = open_warehouse(warehouse_url)
    build_history(wh, rows, days, first, today)
    ids = random.sample(recent_email_ids(rows, days), sample)
    records = wh.query(
        f"SELECT CAST(record AS {wh.TYPES['text']}) FROM staging.emails WHERE id IN ({', '.join(map(str, ids))})"
    )
    return [json.loads(r) for (r,) in records], first, time.perf_counter() - started


def run(args: argparse.Namespace, warehouse_url: str | None) -> None:

    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-latency-"))
    dagster_home = work / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(dagster_home),
        "SALESLOFT_PIPELINE_HOME": str(work / "home"),
        "SALESLOFT_WEBHOOK_SECRET": SECRET,
        "SALESLOFT_API_KEY": "unused-by-the-apply-job",
    }
    for name in ("SALESLOFT_EVENTS_URL", "SALESLOFT_WAREHOUSE_URL", "SALESLOFT_WEBHOOK_SENSOR_SECONDS"):
        env.pop(name, None)
    warehouse_url = warehouse_url or str(work / "home" / "warehouse.duckdb")
    env["SALESLOFT_WAREHOUSE_URL"] = warehouse_url
    recent: list[dict] = []
    history_s = 0.0
    count = int(args.rate * args.spread) if args.rate else args.deliveries
    if args.history:
        (work / "home").mkdir(parents=True, exist_ok=True)
        recent, first, history_s = prepare_history(warehouse_url, args.history, args.daily, count)
        env["SALESLOFT_START_DATE"] = first.isoformat()
    port = free_port()
    endpoint = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", str(port)],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    daemon = subprocess.Popen(
        ["dagster-daemon", "run", "-m", "salesloft_pipeline.definitions"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=(work / "daemon.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}/webhooks/salesloft"
    sent: dict[int, float] = {}  # person id -> acknowledged at
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the endpoint did not start")
            time.sleep(0.2)
        time.sleep(20)  # let the daemon load the code location and start its sensors
        if args.rate:  # sustained: evenly spaced
            moments = [n / args.rate for n in range(count)]
        else:
            moments = sorted(random.uniform(0, args.spread) for _ in range(count))
        records = recent or [{"id": 900_000 + n, "first_name": "Latency"} for n in range(count)]
        event, stream = ("email_updated", "emails") if recent else ("person_updated", "people")
        start = time.monotonic()
        with httpx.Client(timeout=10) as http:
            for original, moment in zip(records, moments):
                time.sleep(max(0.0, start + moment - time.monotonic()))
                now = datetime.now(timezone.utc).isoformat()
                record = {**original, "updated_at": now}
                record_id = record["id"]
                if recent:  # a late reply to an email sent in the last 30 days
                    record["counts"] = {**record["counts"], "replies": record["counts"]["replies"] + 1}
                else:
                    record["created_at"] = now
                body = json.dumps(record).encode()
                signature = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
                answer = http.post(url, content=body, headers={"x-salesloft-event": event, "x-salesloft-signature": signature})
                answer.raise_for_status()
                sent[record_id] = time.time()
        sending_s = time.monotonic() - start
        # Wait until every delivery's range was applied.
        sys.path.insert(0, str(ROOT))
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        import dagster as dg

        from salesloft_pipeline.webhooks import open_event_store

        store = open_event_store(str(work / "home" / "events.sqlite"))
        seq_of = {json.loads(e.body)["id"]: e.seq for e in store.read(0)}
        done_at: dict[int, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(done_at) < len(sent) and time.monotonic() < deadline:
            time.sleep(2)
            with dg.DagsterInstance.get() as instance:
                records = instance.fetch_materializations(dg.AssetKey(["staging", stream]), limit=10_000).records
                for record in records:
                    run = instance.get_run_by_id(record.run_id)
                    batch = (run.tags.get("salesloft/webhook_batch") if run else None)
                    if not batch:
                        continue
                    after, through = (int(x) for x in batch.split("-"))
                    for person, seq in seq_of.items():
                        if after < seq <= through and person not in done_at:
                            done_at[person] = record.timestamp
        latencies = sorted(done_at[p] - sent[p] for p in done_at)
        from salesloft_pipeline.defs.webhooks.sensors import INTERVAL_SECONDS

        def quantile(q: float) -> float | None:
            return round(latencies[int(q * (len(latencies) - 1))], 2) if latencies else None

        print(json.dumps({
            "benchmark": "webhook_delivery_to_staging",
            "warehouse": "postgres" if "://" in warehouse_url else "duckdb",
            "history_rows": args.history,
            "history_build_s": round(history_s, 1),
            "rate_per_s": round(len(sent) / sending_s, 2) if sending_s else None,
            "sensor_interval_s": INTERVAL_SECONDS,
            "deliveries": len(sent),
            "in_staging": len(latencies),
            "p50_s": quantile(0.5),
            "p90_s": quantile(0.9),
            "p99_s": quantile(0.99),
            "max_s": round(latencies[-1], 2) if latencies else None,
            "goal_s": 60,
            "p99_under_goal": bool(latencies) and len(latencies) == len(sent) and (quantile(0.99) or 0) < 60,
        }))
    finally:
        for process in (daemon, endpoint):
            process.send_signal(signal.SIGTERM)
        for process in (daemon, endpoint):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
