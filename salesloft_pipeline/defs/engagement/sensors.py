"""Late updates reach their activity day: `engagement_late_updates_sensor`.

A reply on D+5 to an email sent on D bumps the email's `updated_at` to D+5, so
extraction loads it into partition D+5 and staging merges the new version. The
metric belongs to day D, so day D of the engagement models must be rebuilt.

Whenever a staging model the engagement facts read has been materialized
since the sensor last asked, it asks for one `engagement_update` run, which
finds the days the changed records touch and rebuilds them (update.py). The
sensor itself reads only Dagster's instance, never the warehouse: it cannot
wait on a busy DuckDB file past a tick's limit, and a tick costs the same
whatever the history's size. One update run at a time: while one is queued or
running, nothing more is asked (what changes meanwhile stays queued in the
warehouse for the next run); a failed run is asked for again after a pause.
"""

import json
import os
import time

import dagster as dg

from salesloft_pipeline.salesloft import BY_NAME

from ..staging.assets import staging_asset_key
from . import models
from .update import engagement_update_job

INPUT_KEYS = [staging_asset_key(BY_NAME[s]) for s in models.INPUT_STREAMS]
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
RETRY_AFTER_SECONDS = 300
INTERVAL_SECONDS = int(os.environ.get("SALESLOFT_ENGAGEMENT_SENSOR_SECONDS") or 60)


def staging_versions(instance: dg.DagsterInstance) -> dict[str, str]:
    """The run and time of the latest materialization of each staging input ("" if never), and the
    models' settings: a code location loaded with other settings (a new reporting time zone) asks
    for an update too, which rebuilds every day with them."""
    versions = {"settings": models.settings()}
    for key in INPUT_KEYS:
        event = instance.get_latest_materialization_event(key)
        versions[key.to_user_string()] = f"{event.run_id}@{event.timestamp}" if event is not None else ""
    return versions


def evaluate(instance: dg.DagsterInstance, cursor: str | None, now: float | None = None) -> dg.SensorResult | dg.SkipReason:
    now = time.time() if now is None else now
    state = json.loads(cursor) if cursor else {}
    versions = staging_versions(instance)
    [latest] = instance.get_runs(filters=dg.RunsFilter(job_name=engagement_update_job.name), limit=1) or [None]
    if latest is not None and latest.status in IN_FLIGHT:
        return dg.SkipReason(f"run {latest.run_id} is updating the engagement metrics; looking again after it")
    retry = False
    if latest is not None and latest.status == dg.DagsterRunStatus.FAILURE:
        record = instance.get_run_record_by_id(latest.run_id)
        ended = record.end_time if record is not None and record.end_time is not None else now
        retry = now - ended >= RETRY_AFTER_SECONDS
        if state.get("versions") == versions and not retry:
            return dg.SkipReason(f"run {latest.run_id} failed; asking again {RETRY_AFTER_SECONDS} s after it ended")
    if state.get("versions") == versions and not retry:
        return dg.SkipReason("no staging model the engagement metrics read was rebuilt since the last update")
    requested = int(state.get("requested", 0)) + 1
    request = dg.RunRequest(
        run_key=f"engagement-update:{requested}",
        tags={"engagement/reason": "retry of a failed update" if retry else "staging changed since the last update"},
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps({"versions": versions, "requested": requested}))


@dg.sensor(
    job=engagement_update_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs engagement_update, which rebuilds the engagement days whose activity changed after they"
    " were built (late replies, opens, bounces; deletes), each time the staging models they read change.",
)
def engagement_late_updates_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    return evaluate(context.instance, context.cursor)
