"""Schedules: incremental streams every 15 minutes (today and yesterday), full refreshes hourly."""

import os
from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from .assets import DAILY, FULL_REFRESH_KEYS, INCREMENTAL_KEYS

INCREMENTAL_CRON = os.environ.get("SALESLOFT_INCREMENTAL_CRON") or "*/15 * * * *"
FULL_REFRESH_CRON = os.environ.get("SALESLOFT_FULL_REFRESH_CRON") or "0 * * * *"

incremental_job = dg.define_asset_job(
    "salesloft_incremental",
    selection=dg.AssetSelection.assets(*INCREMENTAL_KEYS),
    description="Incremental SalesLoft streams for a range of days, in one run.",
)
full_refresh_job = dg.define_asset_job(
    "salesloft_full_refresh",
    selection=dg.AssetSelection.assets(*FULL_REFRESH_KEYS),
    description="SalesLoft lookup lists that have no updated_at filter, read whole.",
)


@dg.schedule(job=incremental_job, cron_schedule=INCREMENTAL_CRON, execution_timezone="UTC")
def salesloft_incremental_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday and today, in one run: late changes to yesterday land before it is complete."""
    now = context.scheduled_execution_time or datetime.now(timezone.utc)
    today = now.astimezone(timezone.utc).date()
    yesterday = max(today - timedelta(days=1), DAILY.start.date())
    return dg.RunRequest(
        run_key=None,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: yesterday.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: today.isoformat(),
        },
    )


full_refresh_schedule = dg.ScheduleDefinition(
    job=full_refresh_job, cron_schedule=FULL_REFRESH_CRON, execution_timezone="UTC"
)
