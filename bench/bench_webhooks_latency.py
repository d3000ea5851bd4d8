"""Time from a webhook delivery to its row in staging, with the real Dagster daemon.

Starts the endpoint (`salesloft-pipeline webhooks serve`) and `dagster-daemon
run` on the code location, each a real process with its own fresh home
(DuckDB warehouse, SQLite event store, SQLite Dagster storage), with the
sensor at its default interval. Sends `--deliveries` signed person_updated
deliveries at random moments over `--spread` seconds, then waits for them.
A delivery is in staging when the apply run whose range holds its sequence
number reports `staging/people` materialized; the latency is that event's
time minus the time the delivery was acknowledged.

    python bench/bench_webhooks_latency.py [--deliveries 30] [--spread 90]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

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
    args = parser.parse_args()

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
        moments = sorted(random.uniform(0, args.spread) for _ in range(args.deliveries))
        start = time.monotonic()
        for n, moment in enumerate(moments):
            time.sleep(max(0.0, start + moment - time.monotonic()))
            now = datetime.now(timezone.utc)
            body = json.dumps({"id": 900_000 + n, "updated_at": now.isoformat(), "created_at": now.isoformat(),
                               "first_name": "Latency"}).encode()
            signature = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
            answer = httpx.post(url, content=body, headers={"x-salesloft-event": "person_updated",
                                                            "x-salesloft-signature": signature})
            answer.raise_for_status()
            sent[900_000 + n] = time.time()
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
                records = instance.fetch_materializations(dg.AssetKey(["staging", "people"]), limit=1000).records
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

        print(json.dumps({
            "benchmark": "webhook_delivery_to_staging",
            "sensor_interval_s": INTERVAL_SECONDS,
            "deliveries": len(sent),
            "in_staging": len(latencies),
            "p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 2) if latencies else None,
            "max_s": round(latencies[-1], 2) if latencies else None,
            "goal_s": 60,
            "all_under_goal": bool(latencies) and len(latencies) == len(sent) and latencies[-1] < 60,
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
