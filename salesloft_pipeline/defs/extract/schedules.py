"""Schedules: incremental streams every 15 minutes, a daily look-back, full refreshes hourly.

`salesloft_incremental` reads yesterday and today, and every day of the last
SALESLOFT_CATCHUP_DAYS (30) that is not complete yet: a day whose last load
came too early (within the hour after it ended) or that was never loaded at
all after the stream's first loaded day (an outage: SalesLoft down, a refused
token, the daemon stopped). The run reads its whole range as one scan and
skips the complete days in it, so the catch-up costs only the incomplete days.

`salesloft_lookback` reads the last SALESLOFT_LOOKBACK_DAYS (2) days again,
complete or not, once a day: for records that SalesLoft's lists show more
than an hour after their `updated_at`.

The 15-minute tick never asks for a stream that already has a run queued or
in progress (a long backfill, the previous tick still waiting for the API
pool, the look-back): the next tick after it ends catches up.
`salesloft_full_refresh` likewise waits for its previous run. The daily
look-back always asks (once a day cannot pile up; it waits behind).
"""

import os
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from salesloft_pipeline.salesloft import STREAMS

from ..partitions import DAILY, range_tags
from ..resources import WarehouseResource
from .assets import FULL_REFRESH_KEYS, INCREMENTAL_KEYS, raw_asset_key
from .loading import complete_days

INCREMENTAL_CRON = os.environ.get("SALESLOFT_INCREMENTAL_CRON") or "*/15 * * * *"
FULL_REFRESH_CRON = os.environ.get("SALESLOFT_FULL_REFRESH_CRON") or "0 * * * *"
LOOKBACK_CRON = os.environ.get("SALESLOFT_LOOKBACK_CRON") or "30 2 * * *"
CATCHUP_DAYS = int(os.environ.get("SALESLOFT_CATCHUP_DAYS") or 30)
LOOKBACK_DAYS = int(os.environ.get("SALESLOFT_LOOKBACK_DAYS") or 2)
# A schedule tick has about a minute: it waits this long at most for a DuckDB
# file another run is writing, then asks for yesterday and today only.
WAREHOUSE_WAIT_SECONDS = 20.0

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
INCREMENTAL = [s for s in STREAMS if s.incremental]

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


def busy_keys(instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    """Incremental assets that a queued or running run will materialize."""
    busy: set[dg.AssetKey] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        if run.asset_selection is not None:
            busy |= set(run.asset_selection)
        elif run.job_name == incremental_job.name:
            busy |= set(INCREMENTAL_KEYS)
    return busy & set(INCREMENTAL_KEYS)


def incomplete_days(loaded: dict[str, set[date]], complete: dict[str, set[date]], today: date) -> set[date]:
    """Days of the catch-up window, after a stream's first loaded day, that the stream has not complete."""
    window_start = max(DAILY.start.date(), today - timedelta(days=CATCHUP_DAYS))
    window = [window_start + timedelta(days=n) for n in range((today - window_start).days)]  # before today
    days: set[date] = set()
    for stream, stream_loaded in loaded.items():
        if stream_loaded:
            first_loaded = min(stream_loaded)
            days |= {d for d in window if d >= first_loaded and d not in complete[stream]}
    return days


def _today(context: dg.ScheduleEvaluationContext) -> date:
    now = context.scheduled_execution_time or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).date()


@dg.schedule(job=incremental_job, cron_schedule=INCREMENTAL_CRON, execution_timezone="UTC")
def salesloft_incremental_schedule(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    """Yesterday, today and the incomplete days of the catch-up window, in one run."""
    today = _today(context)
    busy = busy_keys(context.instance)
    keys = [k for k in INCREMENTAL_KEYS if k not in busy]
    if not keys:
        return dg.SkipReason("every incremental stream has a run queued or in progress; the next tick catches up")
    streams = [s for s in INCREMENTAL if raw_asset_key(s) in keys]
    try:
        wh = warehouse.open(lock_timeout=WAREHOUSE_WAIT_SECONDS)
        loaded = wh.loaded_partitions_by_stream([s.name for s in streams])
        behind = incomplete_days(
            {s: set(days) for s, days in loaded.items()},
            {s: complete_days(days) for s, days in loaded.items()},
            today,
        )
    except Exception as error:  # its type only: a driver's message may quote the warehouse URL
        context.log.warning(f"could not read which days are complete ({type(error).__name__}): reading yesterday and today")
        behind = set()
    first = min({today - timedelta(days=1), *behind})
    first = max(first, DAILY.start.date())
    if behind:
        context.log.info(f"catching up {len(behind)} incomplete day(s) from {min(behind)}")
    return dg.RunRequest(run_key=None, asset_selection=keys, tags=range_tags(first, today))


@dg.schedule(job=incremental_job, cron_schedule=LOOKBACK_CRON, execution_timezone="UTC")
def salesloft_lookback_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """The last days read again, complete or not, for records that surface late. Once a day,
    so it never piles up: a run still waiting for the API pool then waits behind it."""
    if LOOKBACK_DAYS <= 0:
        return dg.SkipReason("SALESLOFT_LOOKBACK_DAYS is 0: no look-back")
    today = _today(context)
    first = max(today - timedelta(days=LOOKBACK_DAYS), DAILY.start.date())
    force = {"ops": {"__".join(k.path): {"config": {"force": True}} for k in INCREMENTAL_KEYS}}
    return dg.RunRequest(run_key=None, run_config=force, tags=range_tags(first, today - timedelta(days=1)))


@dg.schedule(job=full_refresh_job, cron_schedule=FULL_REFRESH_CRON, execution_timezone="UTC")
def full_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Every full-refresh list, unless the previous refresh is still queued or running."""
    waiting = context.instance.get_runs(filters=dg.RunsFilter(job_name=full_refresh_job.name, statuses=IN_FLIGHT), limit=1)
    if waiting:
        return dg.SkipReason(f"run {waiting[0].run_id} is still refreshing the lists")
    return dg.RunRequest(run_key=None)
