"""Late updates reach their activity day: `engagement_late_updates_sensor`.

A reply on D+5 to an email sent on D bumps the email's `updated_at` to D+5, so
extraction loads it into partition D+5 and staging picks the new version. The
metric belongs to day D, so day D of the engagement models must be rebuilt.

Whenever a staging model the engagement facts read has been materialized
since the sensor last looked, the sensor recomputes the activity facts from
staging and compares each day (row count and sum of row hashes) with the
stored `engagement.activity_facts` (`models.stale_days`). Every activity day whose facts differ (a late reply,
open, click or bounce, a cancelled meeting, a new or deleted record) or that
has activity but was never built gets a run of `engagement_refresh` for it;
consecutive days share one run (a partition range, built in one go).
"""

import json
from datetime import datetime, timezone

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from salesloft_pipeline.salesloft import BY_NAME

from ..extract.assets import DAILY
from ..resources import WarehouseResource
from ..staging.assets import staging_asset_key
from . import models
from .assets import engagement_job

INPUT_KEYS = [staging_asset_key(BY_NAME[s]) for s in models.INPUT_STREAMS]


def staging_versions(instance: dg.DagsterInstance) -> dict[str, str]:
    """The run and time of the latest materialization of each staging input ("" if never)."""
    versions = {}
    for key in INPUT_KEYS:
        event = instance.get_latest_materialization_event(key)
        versions[key.to_user_string()] = f"{event.run_id}@{event.timestamp}" if event is not None else ""
    return versions


def requests_for_stale_days(wh, now: datetime) -> list[dg.RunRequest]:  # type: ignore[no-untyped-def]
    """One run request a range of consecutive stale activity days."""
    first = DAILY.start.date()
    last = now.astimezone(timezone.utc).date()  # DAILY has today's partition (end_offset=1)
    days = models.stale_days(wh, first, last)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    return [
        dg.RunRequest(
            run_key=f"engagement:{start}..{end}@{stamp}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
                "engagement/reason": "activity changed since the days were built",
            },
        )
        for start, end in models.day_ranges(days)
    ]


@dg.sensor(
    job=engagement_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds the engagement days whose activity changed after they were built (late replies,"
    " opens, bounces; deletes), each time the staging models they read are rebuilt.",
)
def engagement_late_updates_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    versions = staging_versions(context.instance)
    if context.cursor and json.loads(context.cursor) == versions:
        return dg.SkipReason("no staging model the engagement metrics read was rebuilt since the last check")
    wh = warehouse.open()
    if models.missing_inputs(wh):
        return dg.SkipReason(f"staging tables missing: {', '.join(models.missing_inputs(wh))}")
    now = datetime.now(timezone.utc)
    requests = requests_for_stale_days(wh, now)
    days = sum(
        (datetime.fromisoformat(r.tags[ASSET_PARTITION_RANGE_END_TAG]) - datetime.fromisoformat(r.tags[ASSET_PARTITION_RANGE_START_TAG])).days + 1
        for r in requests
    )
    context.log.info(f"{days} activity day(s) changed since they were built, in {len(requests)} range(s)")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(versions))

