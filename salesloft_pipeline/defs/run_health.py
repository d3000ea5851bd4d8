"""`dead_run_workers_sensor`: a run whose worker process died with its host is marked failed.

With Dagster's default run launcher (the embedded defaults, `dagster dev`), a run's worker is a
child process of the code server. When the code server lives and the worker dies, the server
marks the run failed itself. When both die at once (the machine restarts, a supervisor kills the
daemon's whole process group, an OOM kill of the group), nothing does: the run stays STARTED
forever, holds its concurrency pool slot, and every schedule and sensor that waits for the
previous run (the incremental schedule, the engagement sensor) waits forever. Dagster's run
monitoring cannot check such workers (the default launcher has no health check), so this sensor
does: each STARTED or CANCELING run whose worker pid (from the run's own "Started process for
run" event) no longer exists on this machine is reported failed, with an engine event saying why.
The next tick of the schedule or sensor that asked for it asks again.

Other run launchers (Docker, Kubernetes) run workers elsewhere, where a pid means nothing here:
for them the sensor does nothing, and Dagster's run monitoring (deploy/dagster.yaml) checks
their workers' health.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher

WATCHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
STARTED_PROCESS = "Started process for run"  # the run worker's first engine event, with its pid


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's latest worker process, as the worker reported it (None if it never did)."""
    pid = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or not (event.message or entry.user_message or "").startswith(STARTED_PROCESS):
            continue
        value = event.engine_event_data.metadata.get("pid")
        if value is not None and str(value.value).isdigit():
            pid = int(str(value.value))
    return pid


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Marks failed the watched runs whose worker process is gone; returns their run ids."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=WATCHED)):
        pid = worker_pid(instance, run.run_id)
        if pid is None or process_exists(pid):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:  # it ended meanwhile
            continue
        instance.report_engine_event(
            f"The run's worker process (pid {pid}) no longer exists on this machine: it died with its code"
            " server (a restart or a kill of the host's processes), so nothing else can end this run."
            " Marked failed so that the schedules and sensors waiting for it go on.",
            current,
        )
        instance.report_run_failed(current)
        failed.append(run.run_id)
    return failed


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose worker process died with its host (default run launcher only),"
    " so that they hold no pool slot and no schedule or sensor waits for them forever.",
)
def dead_run_workers_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = fail_dead_runs(context.instance)
    if failed:
        return dg.SkipReason(f"marked {len(failed)} run(s) failed, their worker gone: {', '.join(failed)}")
    return dg.SkipReason("every running run's worker is alive")
