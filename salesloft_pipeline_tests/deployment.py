"""A whole deployment on this machine, for the long tests and the chaos soak (no tests here).

The processes a team runs (the simulator standing in for SalesLoft, the webhook endpoint, the
Dagster daemon with its code server and run workers), how to tell that everything due has run
(`settled`), and the final comparison of the warehouse with the simulator's ground truth
(`compare_with_truth`): the same ids, the same latest versions, deletes gone, no version twice
in a raw table, engagement tables equal to a fresh build.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import httpx
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


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class Processes:
    """Long-running processes, each in its own session (so that a signal reaches its children)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], env: dict[str, str], preexec: Callable[[], None] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.running[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True, preexec_fn=preexec
        )
        log.close()

    def alive(self) -> None:
        for name, process in self.running.items():
            assert process.poll() is None, f"{name} exited ({process.returncode}): see {self.logs / name}.log"

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything in its session: the host it ran on went down."""
        process = self.running.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

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


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                command = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((child, command))
            todo.append(child)
    return found


def run_cli(command: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=timeout)
    assert done.returncode == 0, (command, done.stdout.decode()[-3000:], done.stderr.decode()[-3000:])
    return done.stdout.decode()


def instance_of(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def sensor_cursor(instance: DagsterInstance, name: str) -> str | None:
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None


def settled(w: dict[str, Any], instance: DagsterInstance, since: datetime) -> bool:
    """Everything due has run: a schedule tick since `since` (the deployment's clock), staging,
    engagement and the webhooks delivered so far. `w`: sim, events, warehouse (URLs), processes."""
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


def settle(w: dict[str, Any], since: datetime, timeout: float = 600) -> None:
    instance = instance_of(w["home"])
    poll(lambda: settled(w, instance, since) and (time.sleep(2) or settled(w, instance, since)),
         timeout=timeout, interval=2, what="the deployment to settle")  # fmt: skip


def truth(sim: str, stream: str) -> dict[Any, datetime | None]:
    records = httpx.get(f"{sim}/__sim/truth/{stream}", timeout=120).json()["records"]
    return {r["id"]: datetime.fromisoformat(r["updated_at"]).astimezone(timezone.utc) if r["updated_at"] else None for r in records}


@dataclass
class Comparison:
    """How the warehouse compares with the simulator's truth, stream by stream."""

    compared: int = 0  # live records in the truth
    lost: dict[str, int] = field(default_factory=dict)  # in the truth, not in staging
    extra: dict[str, int] = field(default_factory=dict)  # in staging, not in the truth (a delete missed)
    stale: dict[str, int] = field(default_factory=dict)  # in both, an older version in staging
    duplicated: dict[str, int] = field(default_factory=dict)  # a version held twice in a raw table
    engagement_differs: list[str] = field(default_factory=list)  # models unequal to a fresh build

    @property
    def clean(self) -> bool:
        return not (self.lost or self.extra or self.stale or self.duplicated or self.engagement_differs)

    def summary(self) -> dict[str, Any]:
        return {
            "records_compared": self.compared, "lost": sum(self.lost.values()), "extra": sum(self.extra.values()),
            "stale": sum(self.stale.values()), "duplicated": sum(self.duplicated.values()),
            "by_stream": {k: v for k, v in (("lost", self.lost), ("extra", self.extra), ("stale", self.stale),
                                            ("duplicated", self.duplicated)) if v},
            "engagement_differs": self.engagement_differs,
        }  # fmt: skip


def compare_with_truth(
    w: dict[str, Any], loaded_from: datetime | None, first_day: date, last_day: date, scratch: Path
) -> Comparison:
    """The warehouse against the simulator's truth. `loaded_from`: for incremental streams, only
    records changed since then are expected (polling reads what changed since the first loaded
    day; webhooks bring deletes). The engagement tables are compared with a fresh build of days
    first_day..last_day (`engagement_differences`)."""
    wh = open_warehouse(w["warehouse"])
    result = Comparison()
    for stream in SIMULATED:
        expected = truth(w["sim"], stream.name)
        if stream.incremental and loaded_from is not None:
            expected = {i: t for i, t in expected.items() if t is not None and t >= loaded_from}
        actual = dict(wh.query(f"SELECT id, updated_at FROM staging.{stream.name}"))
        result.compared += len(expected)
        counts = {
            "lost": len(set(expected) - set(actual)),
            "extra": len(set(actual) - set(expected)),
            "stale": sum(1 for i in set(expected) & set(actual) if expected[i] != actual[i]),
        }
        for kind, n in counts.items():
            if n:
                getattr(result, kind)[stream.name] = n
        [(twice,)] = wh.query(
            f"SELECT count(*) FROM (SELECT id FROM raw.{stream.name}"
            " GROUP BY id, _partition, _source, CAST(record AS VARCHAR) HAVING count(*) > 1) AS d"
        )
        if twice:
            result.duplicated[stream.name] = twice
    result.engagement_differs = engagement_differences(w["warehouse"], first_day, last_day, scratch)
    return result


def learnt_zone(pipeline_home: Path) -> str | None:
    """The reporting zone the deployment learnt from SalesLoft (SALESLOFT_REPORTING_TIMEZONE unset)."""
    path = pipeline_home / reporting.LEARNT_FILE
    return json.loads(path.read_text())["time_zone"] if path.exists() else None


def engagement_differences(url: str, first_day: date, last_day: date, scratch: Path) -> list[str]:
    """Engagement models whose tables differ from a fresh build of every day from the same staging
    (built in this process's reporting zone: set SALESLOFT_REPORTING_TIMEZONE to the deployment's)."""
    wh = open_warehouse(url)
    ours = {m: sorted(map(repr, wh.query(f"SELECT * FROM engagement.{m}"))) for m in models.MODELS}
    if url.startswith("postgresql"):
        models.build(wh, models.MODELS, first_day, last_day, rebuild=True)
        rebuilt = wh
    else:
        fresh = scratch / "fresh.duckdb"
        shutil.copy(url, fresh)
        rebuilt = open_warehouse(str(fresh))
        models.build(rebuilt, models.MODELS, first_day, last_day, rebuild=True)
    return [m for m in models.MODELS if ours[m] != sorted(map(repr, rebuilt.query(f"SELECT * FROM engagement.{m}")))]
