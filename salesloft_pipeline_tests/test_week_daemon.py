"""A week of a deployment in a few minutes: the real Dagster daemon, schedules, sensors and
automation, the webhook endpoint and a live simulated SalesLoft team, with the wall clock of
every one of those processes moved forward (libfaketime; monotonic time stays real, so timeouts
and sleeps behave).

Only the last two days of history are backfilled (SALESLOFT_START_DATE is days earlier), the team
works all week (activity an hour at a time, webhooks delivered as it happens), and in the middle the
daemon is down for a day and a half while SalesLoft and its webhooks go on. At the end staging
equals the simulator's truth (deletes gone), the engagement tables equal a fresh build, no run is
queued or running, and no job piled up runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import libfaketime
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorType

from salesloft_pipeline import reporting
from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.salesloft import STREAMS
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.webhooks import open_event_store
from salesloft_pipeline_tests.conftest import poll

ROOT = Path(__file__).resolve().parents[1]
HISTORY_DAYS = 4
BACKFILLED_DAYS = 2
WEEK_HOURS = 7 * 24
# SalesLoft's activity is simulated three hours at a time, from midnight: a day
# is never read complete (an hour after its end) before its last hours exist.
CHUNK_HOURS = 3
OUTAGE_HOURS = range(3 * 24 + 12, 5 * 24)  # the daemon is down from day 3, noon, to day 5
SETTLE_DAYS = (2, 3, 5, 7)  # ends of days at which the deployment is let catch up
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
SIMULATED = [s for s in STREAMS if s.required_scope is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Clock:
    """The faked wall clock of the deployment's processes: an offset from real time in a file."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        self.now = start
        self.set(start)

    def set(self, moment: datetime) -> None:
        self.now = moment
        offset = (moment - datetime.now(timezone.utc)).total_seconds()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{offset:+.3f}\n")
        tmp.replace(self.path)

    def env(self, cache_seconds: int) -> dict[str, str]:
        _, preload = libfaketime.get_reload_information()
        return {
            **preload,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            # 0: read the file at every clock call (the simulator stamps records with it at once);
            # otherwise at most this many seconds late, which is cheap.
            "FAKETIME_NO_CACHE": "1" if cache_seconds == 0 else "0",
            "FAKETIME_CACHE_DURATION": str(max(cache_seconds, 1)),
        }


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.running[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    def alive(self) -> None:
        for name, process in self.running.items():
            assert process.poll() is None, f"{name} exited ({process.returncode}): see {self.logs / name}.log"

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def run_cli(command: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=timeout)
    assert done.returncode == 0, (command, done.stdout.decode()[-3000:], done.stderr.decode()[-3000:])
    return done.stdout.decode()


@pytest.fixture
def week(tmp_path: Path) -> Iterator[dict[str, Any]]:
    logs = tmp_path / "logs"
    logs.mkdir()
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = start.replace(hour=0)  # simulated time starts at midnight UTC tomorrow
    clock = Clock(tmp_path / "clock", start)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        (ROOT / "dagster.yaml").read_text().replace("base_dir: .salesloft_pipeline/dagster", f"base_dir: {home / 'storage'}")
    )
    (home / "workspace.yaml").write_text(
        f"load_from:\n  - python_module:\n      module_name: salesloft_pipeline.definitions\n"
        f"      working_directory: {ROOT}\n"
    )
    sim_port, hook_port = free_port(), free_port()
    first_day = (start - timedelta(days=HISTORY_DAYS)).date()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SALESLOFT_", "DAGSTER_", "FAKETIME"))}
    base.update(
        PYTHONPATH=str(ROOT),
        DAGSTER_HOME=str(home),
        SALESLOFT_PIPELINE_HOME=str(tmp_path / "pipeline"),
        SALESLOFT_API_KEY="sim-api-key",
        SALESLOFT_BASE_URL=f"http://127.0.0.1:{sim_port}/v2",
        SALESLOFT_WAREHOUSE_URL=str(tmp_path / "warehouse.duckdb"),
        SALESLOFT_EVENTS_URL=str(tmp_path / "events.sqlite"),
        SALESLOFT_WEBHOOK_SECRET="week-secret",
        SALESLOFT_START_DATE=first_day.isoformat(),
        SALESLOFT_WEBHOOK_SENSOR_SECONDS="5",
        SALESLOFT_ENGAGEMENT_SENSOR_SECONDS="5",
        SALESLOFT_AUTOMATION_SECONDS="5",
    )
    processes = Processes(logs)
    cli = [sys.executable, "-m", "salesloft_pipeline.cli"]
    processes.start(
        "simulator",
        [*cli, "simulator", "--port", str(sim_port), "--seed", "17", "--people", "40", "--days", str(HISTORY_DAYS),
         "--anchor", start.isoformat(), "--budget", "0", "--webhook-retry-seconds", "1", "--webhook-duplicate-rate", "0.02"],
        {**base, **clock.env(cache_seconds=0)},
    )  # fmt: skip
    processes.start("endpoint", [*cli, "webhooks", "serve", "--port", str(hook_port)], {**base, **clock.env(1)})
    sim_url = f"http://127.0.0.1:{sim_port}"
    poll(lambda: _answers(f"{sim_url}/__sim/stats") and _answers(f"http://127.0.0.1:{hook_port}/health"),
         timeout=120, interval=0.5, what="the simulator and the webhook endpoint")  # fmt: skip
    env = {**base, **clock.env(1)}
    run_cli([*cli, "webhooks", "subscribe", "--url", f"http://127.0.0.1:{hook_port}/webhooks/salesloft"], env)
    try:
        yield {"clock": clock, "env": env, "home": home, "processes": processes, "sim": sim_url,
               "warehouse": base["SALESLOFT_WAREHOUSE_URL"], "events": base["SALESLOFT_EVENTS_URL"],
               "first_day": first_day, "tmp": tmp_path}  # fmt: skip
    finally:
        processes.stop_all()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def instance_of(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def sensor_cursor(instance: DagsterInstance, name: str) -> str | None:
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None


def settled(w: dict[str, Any], instance: DagsterInstance, since: datetime) -> bool:
    """Everything due has run: a schedule tick since `since` (the deployment's clock), staging,
    engagement and the webhooks delivered so far."""
    w["processes"].alive()
    if instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT), limit=1):
        return False
    if not instance.get_runs(filters=RunsFilter(job_name="salesloft_incremental", created_after=since), limit=1):
        return False
    if httpx.get(f"{w['sim']}/__sim/webhooks", timeout=30).json()["pending"]:
        return False
    store = open_event_store(w["events"])
    if store.exists():
        cursor = sensor_cursor(instance, "salesloft_webhooks")
        if cursor is None:
            return False
        state = json.loads(cursor)
        if state["requested_through"] != store.last_seq() or state["outstanding"]:
            return False
    wh = open_warehouse(w["warehouse"])
    [(raw_queue,)] = wh.query("SELECT count(*) FROM raw._changes")
    [(staging_queue,)] = wh.query("SELECT count(*) FROM staging._changes")
    return raw_queue == 0 and staging_queue == 0


def settle(w: dict[str, Any], since: datetime) -> None:
    instance = instance_of(w["home"])
    poll(lambda: settled(w, instance, since) and (time.sleep(2) or settled(w, instance, since)),
         timeout=600, interval=2, what="the deployment to settle")  # fmt: skip


def start_daemon(w: dict[str, Any]) -> None:
    w["processes"].start("daemon", ["dagster-daemon", "run", "-w", str(w["home"] / "workspace.yaml")], w["env"])


def truth(sim: str, stream: str) -> dict[Any, datetime | None]:
    records = httpx.get(f"{sim}/__sim/truth/{stream}", timeout=120).json()["records"]
    return {r["id"]: datetime.fromisoformat(r["updated_at"]).astimezone(timezone.utc) if r["updated_at"] else None for r in records}


@pytest.mark.timeout(1800)  # a simulated week: about 6 minutes on 2 cores, past the suite's 300 s limit
def test_a_simulated_week_with_the_daemon_down_in_the_middle(week: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, env = week, week["clock"], week["env"]
    start = clock.now
    # A partly loaded history: only the last two days before the daemon starts.
    backfilled_from = (start - timedelta(days=BACKFILLED_DAYS)).date()
    keys = ",".join(f"salesloft/{s.name}" for s in SIMULATED if s.incremental)
    run_cli(["dagster", "asset", "materialize", "-m", "salesloft_pipeline.definitions", "--select", keys,
             "--partition-range", f"{backfilled_from}...{start.date()}"], env)  # fmt: skip
    run_cli(["dagster", "schedule", "start", "--start-all", "-w", str(w["home"] / "workspace.yaml")], env)
    start_daemon(w)

    for hour in range(CHUNK_HOURS, WEEK_HOURS + 1, CHUNK_HOURS):
        clock.set(start + timedelta(hours=hour))
        httpx.post(f"{w['sim']}/__sim/advance", json={"seconds": CHUNK_HOURS * 3600}, timeout=120).raise_for_status()
        down = hour in OUTAGE_HOURS
        if down and "daemon" in w["processes"].running:
            settle(w, clock.now - timedelta(hours=CHUNK_HOURS))
            w["processes"].stop("daemon")  # the host goes down; SalesLoft and the endpoint go on
        elif not down and "daemon" not in w["processes"].running:
            start_daemon(w)
        if hour % 24 == 0 and hour // 24 in SETTLE_DAYS:
            settle(w, clock.now)
    # Two more hours so that the last day is read after it ended, then settle.
    clock.set(clock.now + timedelta(hours=2))
    settle(w, clock.now)
    w["processes"].stop("daemon")

    instance = instance_of(w["home"])
    records = instance.get_run_records()
    assert not [r for r in records if r.dagster_run.status in IN_FLIGHT]
    failed = [r.dagster_run for r in records if r.dagster_run.status == DagsterRunStatus.FAILURE]
    assert not failed, [(r.job_name, r.run_id) for r in failed]
    # No pile: a job never had more runs waiting or running at once than its sensor or schedule allows.
    at_once = {"salesloft_incremental": 2, "salesloft_full_refresh": 1, "engagement_update": 1, "salesloft_webhook_apply": 10}
    for job, limit in at_once.items():
        spans = [(r.create_timestamp.timestamp(), r.end_time or 0) for r in records if r.dagster_run.job_name == job]
        assert spans, job
        most = max(sum(1 for c, e in spans if c <= created < e) for created, _ in spans)
        assert most <= limit, f"{job}: {most} runs at once"

    wh = open_warehouse(w["warehouse"])
    # Staging followed a history loaded only in part, and nothing before its first loaded day was read.
    first_loads = dict(wh.query("SELECT stream, min(_partition) FROM raw._loads GROUP BY stream"))
    assert set(first_loads.values()) == {backfilled_from}
    loaded_from = datetime.combine(backfilled_from, datetime.min.time(), timezone.utc)
    for stream in SIMULATED:
        expected = truth(w["sim"], stream.name)
        if stream.incremental:  # polling reads what changed since the first loaded day; webhooks bring deletes
            expected = {i: t for i, t in expected.items() if t is not None and t >= loaded_from}
        actual = dict(wh.query(f"SELECT id, updated_at FROM staging.{stream.name}"))
        assert set(actual) == set(expected), f"{stream.name}: {len(set(expected) - set(actual))} missing, {len(set(actual) - set(expected))} extra"
        assert actual == expected, f"{stream.name}: latest versions differ"
        [(twice,)] = wh.query(
            f"SELECT count(*) FROM (SELECT id FROM raw.{stream.name}"
            " GROUP BY id, _partition, _source, CAST(record AS VARCHAR) HAVING count(*) > 1) AS d"
        )
        assert twice == 0, f"raw.{stream.name} holds a version twice"

    # SALESLOFT_REPORTING_TIMEZONE is unset: the pipeline counted days in the team's zone, learnt
    # once from the simulator's /v2/me (its admin's), and every process used that one.
    learnt = json.loads((Path(env["SALESLOFT_PIPELINE_HOME"]) / reporting.LEARNT_FILE).read_text())["time_zone"]
    me = httpx.get(f"{w['sim']}/v2/me", headers={"Authorization": f"Bearer {env['SALESLOFT_API_KEY']}"}, timeout=30).json()["data"]
    assert learnt == me["time_zone"] != "UTC"
    monkeypatch.setenv(reporting.VARIABLE, learnt)
    # The engagement tables equal a fresh build of every day from the same staging, in that zone.
    fresh = w["tmp"] / "fresh.duckdb"
    shutil.copy(w["warehouse"], fresh)
    rebuilt = open_warehouse(str(fresh))
    first = datetime.fromisoformat(env["SALESLOFT_START_DATE"]).date()
    models.build(rebuilt, models.MODELS, first, clock.now.date(), rebuild=True)
    for model in models.MODELS:
        ours = sorted(map(repr, wh.query(f"SELECT * FROM engagement.{model}")))
        theirs = sorted(map(repr, rebuilt.query(f"SELECT * FROM engagement.{model}")))
        assert ours == theirs, f"engagement.{model} differs from a fresh build"
    [(emails_sent,)] = wh.query("SELECT sum(emails_sent) FROM engagement.daily_engagement")
    assert emails_sent > 0
