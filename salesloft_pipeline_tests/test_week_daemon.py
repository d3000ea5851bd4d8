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

import os
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import libfaketime
import pytest
from dagster import DagsterRunStatus

from salesloft_pipeline import reporting
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline_tests.deployment import (
    IN_FLIGHT, ROOT, SIMULATED, Processes, answers, compare_with_truth, free_port, instance_of, learnt_zone, poll, run_cli,
    settle,
)  # fmt: skip

HISTORY_DAYS = 4
BACKFILLED_DAYS = 2
WEEK_HOURS = 7 * 24
# SalesLoft's activity is simulated three hours at a time, from midnight: a day
# is never read complete (an hour after its end) before its last hours exist.
CHUNK_HOURS = 3
OUTAGE_HOURS = range(3 * 24 + 12, 5 * 24)  # the daemon is down from day 3, noon, to day 5
SETTLE_DAYS = (2, 3, 5, 7)  # ends of days at which the deployment is let catch up


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
    poll(lambda: answers(f"{sim_url}/__sim/stats") and answers(f"http://127.0.0.1:{hook_port}/health"),
         timeout=120, interval=0.5, what="the simulator and the webhook endpoint")  # fmt: skip
    env = {**base, **clock.env(1)}
    run_cli([*cli, "webhooks", "subscribe", "--url", f"http://127.0.0.1:{hook_port}/webhooks/salesloft"], env)
    try:
        yield {"clock": clock, "env": env, "home": home, "processes": processes, "sim": sim_url,
               "warehouse": base["SALESLOFT_WAREHOUSE_URL"], "events": base["SALESLOFT_EVENTS_URL"],
               "first_day": first_day, "tmp": tmp_path}  # fmt: skip
    finally:
        processes.stop_all()


def start_daemon(w: dict[str, Any]) -> None:
    w["processes"].start("daemon", ["dagster-daemon", "run", "-w", str(w["home"] / "workspace.yaml")], w["env"])


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

    # SALESLOFT_REPORTING_TIMEZONE is unset: the pipeline counted days in the team's zone, learnt
    # once from the simulator's /v2/me (its admin's), and every process used that one.
    learnt = learnt_zone(Path(env["SALESLOFT_PIPELINE_HOME"]))
    me = httpx.get(f"{w['sim']}/v2/me", headers={"Authorization": f"Bearer {env['SALESLOFT_API_KEY']}"}, timeout=30).json()["data"]
    assert learnt == me["time_zone"] != "UTC"
    monkeypatch.setenv(reporting.VARIABLE, learnt)
    # Staging equals the truth (deletes gone, latest versions), no raw version is held twice, and the
    # engagement tables equal a fresh build of every day from the same staging, in that zone.
    first = datetime.fromisoformat(env["SALESLOFT_START_DATE"]).date()
    comparison = compare_with_truth(w, loaded_from, first, clock.now.date(), w["tmp"])
    assert comparison.clean, comparison.summary()
    assert comparison.compared > 0
    [(emails_sent,)] = wh.query("SELECT sum(emails_sent) FROM engagement.daily_engagement")
    assert emails_sent > 0
