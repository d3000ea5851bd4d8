"""Runs whose worker died with its host are marked failed (defs/run_health.py).

Found by the chaos soak: SIGKILL of the daemon's process group (the daemon, its code server and
the run workers, as when a machine restarts) left the running runs STARTED forever on the
default run launcher. They held the `salesloft_api` pool slot, so every later SalesLoft run
stayed queued, and the incremental schedule, which waits for the previous run, never ran again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData

from salesloft_pipeline.defs.run_health import dead_run_workers_sensor, fail_dead_runs, worker_pid


@pytest.fixture
def instance(tmp_path: Path):  # type: ignore[no-untyped-def]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def started_run(instance: dg.DagsterInstance, pid: int | None, status=dg.DagsterRunStatus.STARTED) -> str:  # type: ignore[no-untyped-def]
    run = instance.add_run(dg.DagsterRun(job_name="salesloft_incremental", run_id=str(uuid.uuid4()), status=status))
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run.run_id


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_a_run_whose_worker_is_gone_is_marked_failed_and_a_live_one_is_left_alone(instance: dg.DagsterInstance) -> None:
    gone = started_run(instance, dead_pid())
    alive = started_run(instance, os.getpid())
    canceling = started_run(instance, dead_pid(), dg.DagsterRunStatus.CANCELING)
    never_reported = started_run(instance, None)  # launching: Dagster's run monitoring times those out
    finished = started_run(instance, dead_pid(), dg.DagsterRunStatus.SUCCESS)
    assert worker_pid(instance, alive) == os.getpid()

    assert sorted(fail_dead_runs(instance)) == sorted([gone, canceling])
    assert status(instance, gone) == status(instance, canceling) == dg.DagsterRunStatus.FAILURE
    assert status(instance, alive) == status(instance, never_reported) == dg.DagsterRunStatus.STARTED
    assert status(instance, finished) == dg.DagsterRunStatus.SUCCESS
    why = [m for m in (e.message for e in instance.all_logs(gone)) if "no longer exists" in m]
    assert why and "died with its code server" in why[0]
    # Once failed, it is not reported again; the sensor says what it did.
    assert fail_dead_runs(instance) == []
    again = started_run(instance, dead_pid())
    with dg.build_sensor_context(instance=instance) as context:
        result = dead_run_workers_sensor(context)
    assert isinstance(result, dg.SkipReason) and again in (result.skip_message or "")
    assert status(instance, again) == dg.DagsterRunStatus.FAILURE


def test_the_latest_worker_of_a_resumed_run_is_the_one_checked(instance: dg.DagsterInstance) -> None:
    run_id = started_run(instance, dead_pid())
    run = instance.get_run_by_id(run_id)
    assert run is not None
    live = os.getpid()
    instance.report_engine_event(f"Started process for run (pid: {live}).", run, EngineEventData.in_process(live))
    assert worker_pid(instance, run_id) == live
    assert fail_dead_runs(instance) == []
