"""`engagement_update`: rebuild the activity days that changed since they were built.

One run takes the ids the staging builds queued (changes.py), finds the days
they touch, rebuilds every model for those days in one transaction and
records each day as a materialization of each engagement asset. Run by
`engagement_late_updates_sensor` after staging changed.
"""

from collections import defaultdict
from datetime import date

import dagster as dg

from salesloft_pipeline import reporting
from salesloft_pipeline.warehouse import Warehouse

from ..partitions import ENGAGEMENT_DAILY
from ..resources import WarehouseResource
from . import changes, models
from .assets import trend_metadata, engagement_asset_key, missing_inputs_failure


def _rows_by_day(wh: Warehouse, model: str, days: list[date]) -> dict[date, int]:
    listed = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    rows = wh.query(f"SELECT activity_day, count(*) FROM engagement.{model} WHERE activity_day IN ({listed}) GROUP BY 1")
    counts: dict[date, int] = defaultdict(int)
    counts.update({day: n for day, n in rows})
    return counts


@dg.op(description="Rebuilds every engagement model for the activity days that changed records touch.")
def update_changed_days(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    wh = warehouse.open()
    wh.setup([])
    failure = missing_inputs_failure(wh)
    if failure:
        context.log.info(f"nothing to update yet: {failure.description}")
        return
    # The partitions hold today's day (end_offset=1), in the reporting zone.
    update = changes.update_changed_days(wh, ENGAGEMENT_DAILY.start.date(), reporting.today())
    how = (
        "the models changed: every day rebuilt" if update.rebuilt_models
        else "every day compared" if update.exhaustive
        else f"{update.changed_ids} changed staging ids"
    )
    context.log.info(f"{len(update.days)} activity day(s) rebuilt ({how}): {models.day_ranges(update.days)}")
    if not update.days:
        return
    for model in models.MODELS:
        counts = _rows_by_day(wh, model, update.days)
        for day in update.days:
            metadata = {"dagster/partition_row_count": counts[day], "reason": how}
            if model == "daily_engagement" and day == update.days[-1]:
                metadata.update(trend_metadata(wh, day))
            context.log_event(
                dg.AssetMaterialization(asset_key=engagement_asset_key(model), partition=day.isoformat(), metadata=metadata)
            )


@dg.job(
    name="engagement_update",
    description="Rebuilds the engagement days whose activity changed (late replies, opens, bounces, deletes).",
)
def engagement_update_job() -> None:
    update_changed_days()
