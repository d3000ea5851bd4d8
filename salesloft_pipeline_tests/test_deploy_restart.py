"""Dagster on deploy/dagster.yaml keeps runs, sensor cursors and schedule state across a restart.

The real processes of a team deployment, against a throwaway Postgres database:
a code server (`dagster code-server start -m salesloft_pipeline.definitions`),
`dagster-webserver` and `dagster-daemon run`, both loading the code location
from that server. The test launches a run through GraphQL, turns a schedule on,
lets the webhook sensor tick until it has stored its cursor, stops every
process, starts them again and reads everything back, through a fresh
DagsterInstance and through GraphQL. Nothing calls SalesLoft: the run and the
sensor only touch the webhook event store (one event of a type the pipeline
does not apply) and the warehouse, both on Postgres.
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
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy.engine import make_url

from salesloft_pipeline.defs.webhooks.jobs import BATCH_TAG
from salesloft_pipeline.webhooks import NewEvent, open_event_store

from .conftest import poll
from .postgres import fresh_database

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "salesloft_pipeline"
REPOSITORY = "__repository__"
SENSOR = "salesloft_webhooks"
SCHEDULE = "salesloft_incremental_schedule"
APPLY_JOB = "salesloft_webhook_apply"
NEVER = "0 0 1 1 *"  # schedules turned on never fire while the test runs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment:
    """The code server, webserver and daemon of one deployment, started together and stopped together."""

    def __init__(self, home: Path, env: dict[str, str], logs: Path) -> None:
        self.home, self.env, self.logs = home, env, logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.port = 0

    def start(self) -> DagsterGraphQLClient:
        code_port, self.port = free_port(), free_port()
        workspace = self.home / "workspace.yaml"
        workspace.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
            f"      location_name: {LOCATION}\n"
        )
        commands = {
            "code": [sys.executable, "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
                     "-m", "salesloft_pipeline.definitions"],
            "webserver": [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(self.port),
                          "-w", str(workspace)],
            "daemon": [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace)],
        }  # fmt: skip
        for name, command in commands.items():
            log = open(self.logs / f"{name}-{len(self.processes)}.log", "ab")  # noqa: SIM115 (closed with the process)
            # A session of its own: stopping it stops the run workers it spawned too.
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True)
            )
            log.close()
        poll(self.code_location_loaded, timeout=90, interval=0.5, what="the webserver to load the code location")
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=30)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def code_location_loaded(self) -> bool:
        for process in self.processes:
            assert process.poll() is None, f"{process.args[:4]} exited: see {self.logs}"
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name"
                " locationOrLoadError { __typename } } } } }"
            )
        except httpx.HTTPError:
            return False
        entries = data["workspaceOrError"]["locationEntries"]
        return any(e["name"] == LOCATION and e["locationOrLoadError"]
                   and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes = []


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Deployment, dict[str, str]]]:
    with fresh_database("slp_dagster") as dagster_url, fresh_database("slp_salesloft") as salesloft_url:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        url = make_url(dagster_url)
        dagster_env = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_USERNAME": url.username or "postgres",
            "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_DB": url.database or "",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESLOFT_", "DAGSTER_"))}
        env.update(dagster_env)
        env.update(
            SALESLOFT_API_KEY="unused-nothing-calls-salesloft",
            SALESLOFT_BASE_URL="http://127.0.0.1:9/v2",
            SALESLOFT_WAREHOUSE_URL=salesloft_url,
            SALESLOFT_EVENTS_URL=salesloft_url,
            SALESLOFT_PIPELINE_HOME=str(tmp_path / "pipeline_home"),
            SALESLOFT_WEBHOOK_SENSOR_SECONDS="1",
            SALESLOFT_INCREMENTAL_CRON=NEVER,
            SALESLOFT_FULL_REFRESH_CRON=NEVER,
        )
        store = open_event_store(salesloft_url)
        store.setup()
        # A type the pipeline stores but does not apply: the apply run reads it and succeeds.
        assert store.append(NewEvent("deploy_check", json.dumps({"id": 1}).encode(), False, time.time()))
        store.close()
        logs = tmp_path / "logs"
        logs.mkdir()
        running = Deployment(home, env, logs)
        try:
            yield running, dagster_env
        finally:
            running.stop()


def fresh_instance(home: Path, dagster_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
    """A new DagsterInstance on the deployment's dagster.yaml, as any other process would open it."""
    for name, value in dagster_env.items():
        monkeypatch.setenv(name, value)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def instigator(instance: DagsterInstance, name: str, kind: InstigatorType) -> Any:
    states = [s for s in instance.all_instigator_state(instigator_type=kind) if s.instigator_name == name]
    return states[0] if states else None


def webhook_runs(instance: DagsterInstance) -> list[Any]:
    return [r for r in instance.get_runs() if BATCH_TAG in r.tags]


SENSOR_QUERY = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 1) { timestamp } typeSpecificData { ... on SensorData { lastCursor } } } }
  }
}"""
SCHEDULE_QUERY = """
query ($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) { __typename ... on Schedule { scheduleState { status } } }
}"""
START_SCHEDULE = """
mutation ($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on ScheduleNotFoundError { message }
  }
}"""
RUNS_QUERY = """
{ runsOrError { ... on Runs { results { runId status jobName } } } }"""


def test_runs_sensor_cursor_and_schedule_state_survive_a_restart(
    deployment: tuple[Deployment, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, dagster_env = deployment
    sensor_selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR}
    schedule_selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": SCHEDULE}

    client = running.start()
    # A run through GraphQL: queued, then launched by the daemon's run queue.
    run_id = client.submit_job_execution(
        APPLY_JOB,
        repository_location_name=LOCATION,
        run_config={"ops": {"apply_webhook_events": {"config": {"after_seq": 0, "through_seq": 1}}}},
    )
    started = running.graphql(START_SCHEDULE, selector=schedule_selector)["startSchedule"]
    assert started["__typename"] == "ScheduleStateResult", started
    assert started["scheduleState"]["status"] == "RUNNING", started
    poll(lambda: client.get_run_status(run_id) == DagsterRunStatus.SUCCESS, timeout=90, interval=0.5,
         what="the GraphQL run to succeed")  # fmt: skip

    # The sensor (running by default) asks for a run of event 1 and, once that run
    # succeeded, settles on its final cursor.
    settled = json.dumps({"outstanding": {}, "requested_through": 1}, sort_keys=True)

    def sensor_cursor() -> str | None:
        state = running.graphql(SENSOR_QUERY, selector=sensor_selector)["sensorOrError"]["sensorState"]
        return state["typeSpecificData"]["lastCursor"]

    poll(lambda: sensor_cursor() == settled, timeout=90, interval=0.5, what="the webhook sensor's cursor to settle")

    before = fresh_instance(running.home, dagster_env, monkeypatch)
    try:
        runs_before = {r.run_id: r.status for r in before.get_runs()}
        sensor_run_ids = [r.run_id for r in webhook_runs(before)]
        events_before = [e.dagster_event_type for e in before.all_logs(run_id) if e.is_dagster_event]
    finally:
        before.dispose()
    assert runs_before[run_id] == DagsterRunStatus.SUCCESS
    assert len(sensor_run_ids) == 1 and runs_before[sensor_run_ids[0]] == DagsterRunStatus.SUCCESS
    assert DagsterEventType.RUN_SUCCESS in events_before

    running.stop()
    restarted_at = time.time()

    # Nothing runs now: a fresh instance reads everything straight from Postgres.
    after = fresh_instance(running.home, dagster_env, monkeypatch)
    try:
        assert {r.run_id: r.status for r in after.get_runs()} == runs_before
        assert [e.dagster_event_type for e in after.all_logs(run_id) if e.is_dagster_event] == events_before
        sensor = instigator(after, SENSOR, InstigatorType.SENSOR)
        assert sensor.instigator_data.cursor == settled
        schedule = instigator(after, SCHEDULE, InstigatorType.SCHEDULE)
        assert schedule.status == InstigatorStatus.RUNNING
    finally:
        after.dispose()

    client = running.start()

    # The restarted daemon ticks the sensor again and resumes from the stored cursor:
    # event 1 is not asked for a second time.
    def ticked_since_restart() -> bool:
        state = running.graphql(SENSOR_QUERY, selector=sensor_selector)["sensorOrError"]["sensorState"]
        return bool(state["ticks"]) and state["ticks"][0]["timestamp"] > restarted_at

    poll(ticked_since_restart, timeout=90, interval=0.5, what="the restarted daemon to tick the sensor")
    assert sensor_cursor() == settled
    schedule_state = running.graphql(SCHEDULE_QUERY, selector=schedule_selector)["scheduleOrError"]["scheduleState"]
    assert schedule_state["status"] == "RUNNING"
    runs = {r["runId"]: r for r in running.graphql(RUNS_QUERY)["runsOrError"]["results"]}
    assert {run: r["status"] for run, r in runs.items()} == {run: s.value for run, s in runs_before.items()}
    assert runs[run_id]["jobName"] == APPLY_JOB
    assert client.get_run_status(run_id) == DagsterRunStatus.SUCCESS

    final = fresh_instance(running.home, dagster_env, monkeypatch)
    try:
        assert [r.run_id for r in webhook_runs(final)] == sensor_run_ids
    finally:
        final.dispose()
