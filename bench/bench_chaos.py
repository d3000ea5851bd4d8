"""Benchmark: a chaos soak. The whole pipeline under combined faults, then compared with the truth.

Against the simulator with live changes and webhooks, this runs the real Dagster daemon (with its
code server and run workers), the webhook endpoint, a backfill of every incremental stream, and
the schedules and sensors, while a seeded schedule injects, one after another, in rounds of every
kind in a random order:

    api_429_storm     other integrations spend most of the team's budget for a while, and 429s come
    api_5xx_burst     a share of API requests answer 500/502/503
    api_resets        a share of API connections are dropped without an answer
    api_truncated     a share of API bodies are cut short (malformed JSON)
    api_slow          a share of API answers come after the client's timeout
    kill_run_worker   SIGKILL of a running run's worker process
    kill_endpoint     SIGKILL of the webhook endpoint; restarted 2 s later
    kill_daemon       SIGKILL of the daemon, its code server and runs (the host went down); restarted
    drop_postgres     every warehouse connection terminated (Postgres only)
    event_store_full  the endpoint restarted with no room to grow its event store file (SQLite only)

Then, faults off and the team quiet, one more sync, and the comparison: staging equals the
simulator's truth for every stream (same ids, latest versions, deletes gone), the engagement tables
equal a fresh build, no version twice in a raw table, every webhook the endpoint acknowledged is in
the event store and applied, and no run is left in flight. Prints one JSON line.

    PYTHONPATH=. python bench/bench_chaos.py --minutes 60 --engine duckdb
    PYTHONPATH=. python bench/bench_chaos.py --minutes 60 --engine postgres [--postgres-url ...]

Postgres runs in throwaway databases (warehouse and event store in one, Dagster's storage in
another) on the server of `--postgres-url` (default SALESLOFT_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from dagster import DagsterRunStatus
from sqlalchemy.engine import make_url
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

from salesloft_pipeline import reporting
from salesloft_pipeline.defs.extract.assets import FULL_REFRESH_KEYS, INCREMENTAL_KEYS
from salesloft_pipeline.webhooks import open_event_store
from salesloft_pipeline_tests.deployment import (
    IN_FLIGHT, ROOT, Processes, answers, compare_with_truth, descendants, free_port, instance_of, learnt_zone, poll,
    run_cli, settle,
)  # fmt: skip

API_FAULTS = {  # POST /__sim/faults settings, held for FAULT_SECONDS
    "api_5xx_burst": {"rate": 0.3, "kinds": ["5xx"]},
    "api_resets": {"rate": 0.2, "kinds": ["drop"]},
    "api_truncated": {"rate": 0.2, "kinds": ["truncate"]},
    "api_slow": {"rate": 0.05, "kinds": ["slow"], "slow_seconds": 35.0},  # the client waits 30 s
    # Other integrations spend most of the budget of 600 a minute, and the next answers are 429s.
    "api_429_storm": {"external_spend": 560, "next": ["429"] * 10},
}
PROCESS_FAULTS = ("kill_run_worker", "kill_endpoint", "kill_daemon")
FAULT_SECONDS = 20.0
API_KEY = "sim-api-key"
SECRET = "chaos-secret"


def faults_for(engine: str) -> list[str]:
    own = ["drop_postgres"] if engine == "postgres" else ["event_store_full"]
    return [*API_FAULTS, *PROCESS_FAULTS, *own]


class Soak:
    def __init__(self, workdir: Path, engine: str, seed: int, people: int, days: int, urls: dict[str, str]) -> None:
        self.workdir, self.engine, self.rng = workdir, engine, random.Random(f"chaos-{seed}")
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.processes = Processes(self.logs)
        self.home = workdir / "dagster_home"
        self.home.mkdir()
        if engine == "postgres":
            dagster = make_url(urls["dagster"])
            config = (ROOT / "deploy" / "dagster.yaml").read_text()
            dagster_env = {"DAGSTER_PG_HOST": dagster.host or "127.0.0.1", "DAGSTER_PG_USERNAME": dagster.username or "postgres",
                           "DAGSTER_PG_PASSWORD": dagster.password or "", "DAGSTER_PG_DB": dagster.database or ""}  # fmt: skip
            # This process reads the instance too, at the end (runs in flight, failed, retried).
            os.environ.update(dagster_env)
        else:
            config = (ROOT / "dagster.yaml").read_text().replace(
                "base_dir: .salesloft_pipeline/dagster", f"base_dir: {self.home / 'storage'}"
            )
            dagster_env = {}
        (self.home / "dagster.yaml").write_text(config)
        (self.home / "workspace.yaml").write_text(
            f"load_from:\n  - python_module:\n      module_name: salesloft_pipeline.definitions\n"
            f"      working_directory: {ROOT}\n"
        )
        self.first_day = (datetime.now(timezone.utc) - timedelta(days=days)).date()
        self.sim_port, self.hook_port = free_port(), free_port()
        self.sim = f"http://127.0.0.1:{self.sim_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SALESLOFT_", "DAGSTER_"))}
        self.env = {
            **base, **dagster_env,
            "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(self.home),
            "SALESLOFT_PIPELINE_HOME": str(workdir / "pipeline"),
            "SALESLOFT_API_KEY": API_KEY, "SALESLOFT_BASE_URL": f"{self.sim}/v2",
            "SALESLOFT_WAREHOUSE_URL": urls["warehouse"], "SALESLOFT_EVENTS_URL": urls["events"],
            "SALESLOFT_WEBHOOK_SECRET": SECRET, "SALESLOFT_START_DATE": self.first_day.isoformat(),
            "SALESLOFT_INCREMENTAL_CRON": "* * * * *", "SALESLOFT_FULL_REFRESH_CRON": "*/5 * * * *",
            "SALESLOFT_WEBHOOK_SENSOR_SECONDS": "5", "SALESLOFT_ENGAGEMENT_SENSOR_SECONDS": "5",
            "SALESLOFT_AUTOMATION_SECONDS": "5",
        }  # fmt: skip
        self.w = {"sim": self.sim, "home": self.home, "processes": self.processes,
                  "warehouse": urls["warehouse"], "events": urls["events"]}  # fmt: skip
        self.cli = [sys.executable, "-m", "salesloft_pipeline.cli"]
        self.sim_command = [*self.cli, "simulator", "--port", str(self.sim_port), "--api-key", API_KEY,
                            "--seed", str(seed), "--people", str(people), "--days", str(days), "--live",
                            "--webhook-retry-seconds", "10", "--webhook-duplicate-rate", "0.02"]  # fmt: skip
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    # -- processes ------------------------------------------------------------------------
    def start(self) -> None:
        self.processes.start("simulator", self.sim_command, self.env)
        self.start_endpoint()
        poll(lambda: answers(f"{self.sim}/__sim/stats"), timeout=300, interval=0.5, what="the simulator")
        run_cli([*self.cli, "webhooks", "subscribe", "--url", f"http://127.0.0.1:{self.hook_port}/webhooks/salesloft"],
                self.env)  # fmt: skip
        workspace = str(self.home / "workspace.yaml")
        # The backfill of every incremental stream: one run through the run queue, like the UI's.
        tags = {"dagster/asset_partition_range_start": self.first_day.isoformat(),
                "dagster/asset_partition_range_end": datetime.now(timezone.utc).date().isoformat()}  # fmt: skip
        run_cli(["dagster", "job", "launch", "-w", workspace, "-j", "salesloft_incremental",
                 "--tags", json.dumps(tags)], self.env)  # fmt: skip
        run_cli(["dagster", "schedule", "start", "--start-all", "-w", workspace], self.env)
        self.start_daemon()

    def start_endpoint(self, room: int | None = None) -> None:
        """The endpoint; with `room`, no file it writes may grow past that many bytes (a full disk)."""
        def full_disk() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

        self.processes.start("endpoint", [*self.cli, "webhooks", "serve", "--port", str(self.hook_port)], self.env,
                             preexec=full_disk if room is not None else None)  # fmt: skip
        poll(lambda: answers(f"http://127.0.0.1:{self.hook_port}/health"), timeout=120, interval=0.2,
             what="the webhook endpoint")  # fmt: skip

    def start_daemon(self) -> None:
        self.processes.start("daemon", ["dagster-daemon", "run", "-w", str(self.home / "workspace.yaml")], self.env)

    # -- faults ---------------------------------------------------------------------------
    def inject(self, kind: str) -> None:
        if kind in API_FAULTS:
            httpx.post(f"{self.sim}/__sim/faults", json=API_FAULTS[kind], timeout=30).raise_for_status()
            time.sleep(FAULT_SECONDS)
            httpx.post(f"{self.sim}/__sim/faults", json={}, timeout=30).raise_for_status()
        elif kind == "kill_run_worker":
            daemon = self.processes.running["daemon"].pid
            deadline = time.monotonic() + FAULT_SECONDS  # waits for a run to be running
            while not (workers := [pid for pid, command in descendants(daemon) if "spawn_main" in command]):
                if time.monotonic() > deadline:
                    self.skipped[kind] += 1
                    return
                time.sleep(0.5)
            os.kill(self.rng.choice(workers), signal.SIGKILL)
        elif kind == "kill_endpoint":
            self.processes.kill("endpoint")
            time.sleep(2)
            self.start_endpoint()
        elif kind == "kill_daemon":
            self.processes.kill("daemon")
            time.sleep(5)
            self.start_daemon()
        elif kind == "drop_postgres":
            database = make_url(self.w["warehouse"]).database
            with psycopg2.connect(self.w["warehouse"]) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE datname = %s AND pid <> pg_backend_pid()", [database])  # fmt: skip
            conn.close()
        elif kind == "event_store_full":
            store = Path(self.w["events"])
            self.processes.stop("endpoint")
            self.start_endpoint(room=max(store.stat().st_size if store.exists() else 0, 1))
            time.sleep(8)  # shorter than the deliveries' retries (3 x 10 s): what is refused comes again
            self.processes.stop("endpoint")
            self.start_endpoint()
        self.injected[kind] += 1

    def soak(self, minutes: float, fault_every: float) -> None:
        deadline, due = time.monotonic() + minutes * 60, []
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.5, 1.5) * fault_every)
            if time.monotonic() >= deadline:
                break
            if not due:  # rounds of every kind in a random order: a short soak meets each one
                due = self.rng.sample(faults_for(self.engine), len(faults_for(self.engine)))
            self.inject(due.pop())
            for name in ("simulator", "endpoint", "daemon"):  # a supervisor restarts what died by itself
                process = self.processes.running.get(name)
                if process is not None and process.poll() is not None:
                    self.injected[f"unexpected_exit_{name}"] += 1
                    self.processes.running.pop(name)
                    {"endpoint": self.start_endpoint, "daemon": self.start_daemon}.get(name, lambda: None)()

    # -- the end --------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        httpx.post(f"{self.sim}/__sim/faults", json={}, timeout=30).raise_for_status()
        httpx.post(f"{self.sim}/__sim/live", json={"paused": True}, timeout=30).raise_for_status()
        quiet_since = datetime.now(timezone.utc) + timedelta(seconds=2)  # after the last live change
        # One quiet sync: a schedule tick after the team went quiet, staging, engagement, webhooks.
        poll(lambda: httpx.get(f"{self.sim}/__sim/webhooks", timeout=30).json()["pending"] == 0,
             timeout=300, interval=1, what="the last webhook deliveries")  # fmt: skip
        settle(self.w, quiet_since + timedelta(seconds=60), timeout=1800)
        settled_at = time.time()  # no run was in flight then: every one before it had ended
        self.processes.stop("daemon")  # nothing writes while the warehouse is compared
        instance = instance_of(self.home)
        records = instance.get_run_records()
        # Still in flight and made before the deployment settled: stuck (a run the schedules and
        # sensors submit between then and the daemon's stop is not).
        stuck = [r.dagster_run.run_id for r in records
                 if r.dagster_run.status in IN_FLIGHT and r.create_timestamp.timestamp() < settled_at]  # fmt: skip
        failed = Counter(r.dagster_run.job_name for r in records if r.dagster_run.status == DagsterRunStatus.FAILURE)
        # The fresh engagement build counts days in the zone the deployment learnt from SalesLoft.
        zone = learnt_zone(Path(self.env["SALESLOFT_PIPELINE_HOME"])) or "UTC"
        before, os.environ[reporting.VARIABLE] = os.environ.get(reporting.VARIABLE), zone
        try:
            last_day = datetime.now(timezone.utc).date() + timedelta(days=1)
            comparison = compare_with_truth(self.w, None, self.first_day, last_day, self.workdir)
        finally:
            if before is None:
                os.environ.pop(reporting.VARIABLE)
            else:
                os.environ[reporting.VARIABLE] = before
        webhooks = self.acknowledged_webhooks()
        stats = httpx.get(f"{self.sim}/__sim/stats", timeout=30).json()
        baseline = self.baseline_cost()
        wasted = sum((stats.get("faults_injected") or {}).values())
        return {
            "reporting_timezone": zone, "runs": len(records), "runs_failed": dict(failed), "runs_in_flight_at_end": stuck,
            **comparison.summary(), "webhooks": webhooks,
            "api": {"requests": stats["requests"], "cost": stats["cost"], "rate_limited": stats["rate_limited"],
                    "faulted_requests": stats.get("faults_injected"), "cost_of_faulted_requests": wasted,
                    "fault_free_sync_cost": baseline,
                    "cost_per_fault_free_sync": round(stats["cost"] / baseline, 2) if baseline else None},
        }  # fmt: skip

    def baseline_cost(self) -> int:
        """The API cost of a fault-free sync of the same data: every stream the soak read, over the
        same days, into an empty warehouse and a new Dagster instance, against the same (quiet) team."""
        scratch = self.workdir / "baseline"
        (scratch / "dagster_home").mkdir(parents=True)
        env = {**self.env, "DAGSTER_HOME": str(scratch / "dagster_home"),
               "SALESLOFT_WAREHOUSE_URL": str(scratch / "warehouse.duckdb")}  # fmt: skip
        before = httpx.get(f"{self.sim}/__sim/stats", timeout=30).json()["cost"]
        today = datetime.now(timezone.utc).date()
        materialize = ["dagster", "asset", "materialize", "-m", "salesloft_pipeline.definitions", "--select"]
        run_cli([*materialize, ",".join(k.to_user_string() for k in INCREMENTAL_KEYS),
                 "--partition-range", f"{self.first_day}...{today}"], env, timeout=1800)  # fmt: skip
        run_cli([*materialize, ",".join(k.to_user_string() for k in FULL_REFRESH_KEYS)], env, timeout=1800)
        return httpx.get(f"{self.sim}/__sim/stats", timeout=30).json()["cost"] - before

    def acknowledged_webhooks(self) -> dict[str, int]:
        """Deliveries the endpoint answered 2xx to, against the events it stored and the sensor applied."""
        deliveries = httpx.get(f"{self.sim}/__sim/webhooks", timeout=60).json()["deliveries"]
        acknowledged = {(d["event_type"], str(d["id"])) for d in deliveries if d["delivered"]}
        store = open_event_store(self.w["events"])
        stored: set[tuple[str, str]] = set()
        after = 0
        while batch := store.read(after, limit=10_000):
            stored |= {(e.event_type, str(json.loads(e.body).get("id"))) for e in batch}
            after = batch[-1].seq
        progress = store.progress()
        store.close()
        return {
            "acknowledged": len(acknowledged), "acknowledged_not_stored": len(acknowledged - stored),
            "stored": progress.last_seq, "unapplied": progress.unapplied,
            "dropped_by_salesloft": sum(1 for d in deliveries if not d["delivered"] and d["attempts"] >= 4),
        }  # fmt: skip


def run_soak(minutes: float, engine: str, seed: int = 11, people: int = 300, days: int = 10,
             fault_every: float = 30.0, postgres_url: str | None = None, workdir: Path | None = None) -> dict[str, Any]:
    """The soak; returns what the benchmark prints."""
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        if engine == "postgres":
            server = postgres_url or os.environ.get("SALESLOFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
            data = stack.enter_context(throwaway_database(server, "slp_chaos"))
            urls = {"warehouse": data, "events": data, "dagster": stack.enter_context(throwaway_database(server, "slp_chaos_dagster"))}
        else:
            urls = {"warehouse": str(workdir / "warehouse.duckdb"), "events": str(workdir / "events.sqlite")}
        soak = Soak(workdir, engine, seed, people, days, urls)
        try:
            soak.start()
            soak.soak(minutes, fault_every)
            result = soak.finish()
        finally:
            soak.processes.stop_all()
    return {"benchmark": "chaos", "engine": engine, "seed": seed, "minutes_soaked": minutes,
            "minutes_total": round((time.monotonic() - started) / 60, 1),
            "faults_injected": dict(soak.injected), "faults_skipped": dict(soak.skipped), **result}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--engine", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--days", type=int, default=10, help="days of history to backfill")
    parser.add_argument("--fault-every", type=float, default=30.0, help="mean seconds between faults")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the logs and files in this (new) folder")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True)
    print(json.dumps(run_soak(args.minutes, args.engine, args.seed, args.people, args.days, args.fault_every,
                              args.postgres_url, args.keep)))  # fmt: skip


if __name__ == "__main__":
    main()
