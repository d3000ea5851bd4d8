"""`engagement/<model>`: the daily engagement metrics, partitioned by activity day.

Days are dates in the reporting time zone (salesloft_pipeline/reporting.py).

A partition is an activity day: the day an email was sent, a call made, a
meeting booked (not the day the record was last updated). Materializing a
range of days replaces those days of every `engagement.<model>` in one
transaction (the models are one multi-asset), so reruns never double-count
and a mart never disagrees with the facts. `engagement/activity_facts` is
built from staging; the marts aggregate it. Late updates (a reply on D+5 to
an email sent on D) reach day D through the `engagement_update` job that
`engagement_late_updates_sensor` runs (sensors.py).
"""

from datetime import date, timedelta
from typing import Any

import dagster as dg

from salesloft_pipeline import reporting
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse

from ..partitions import ENGAGEMENT_DAILY
from ..resources import WarehouseResource
from ..staging.assets import staging_asset_key
from . import models

GROUP = "engagement"
CHART_DAYS = 28
SPARK = "▁▂▃▄▅▆▇█"


class EngagementConfig(dg.Config):
    rebuild: bool = False
    """Drop and recreate the table first (after a model's columns changed); rebuild every day then."""


def engagement_asset_key(model: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, model])


def _days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    window = context.partition_time_window
    return window.start.date(), window.end.date() - timedelta(days=1)


def _description(model: str) -> str:
    header = [line[3:] for line in models.model_sql(model).splitlines() if line.startswith("-- ")]
    return " ".join(header).split(" Built from")[0].split(" The marts aggregate")[0]


def sparkline(values: list[float | None]) -> str:
    """One character a value, scaled from the smallest to the largest; a space where there is none."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    return "".join(" " if v is None else SPARK[int((v - low) / span * (len(SPARK) - 1))] for v in values)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def trend_markdown(rows: list[tuple[date, int, float | None, float | None]]) -> str:
    """The last weeks at a glance: sparklines, then the numbers, newest day first."""
    sent = [float(r[1]) for r in rows]
    reply = [r[2] for r in rows]
    connect = [r[3] for r in rows]
    if not rows:
        return "No activity in the last weeks."
    lines = [
        f"**Last {len(rows)} activity days** ({rows[0][0]} to {rows[-1][0]}, {reporting.reporting_timezone()};"
        " oldest on the left)",
        "",
        "| metric | trend | latest |",
        "| --- | --- | --- |",
        f"| emails sent | `{sparkline(sent)}` | {rows[-1][1]} |",
        f"| reply rate | `{sparkline(reply)}` | {_pct(rows[-1][2])} |",
        f"| connect rate | `{sparkline(connect)}` | {_pct(rows[-1][3])} |",
        "",
        "| day | sent | reply rate | connect rate |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {day} | {s} | {_pct(r)} | {_pct(c)} |" for day, s, r, c in reversed(rows)]
    return "\n".join(lines)


def _spec(model: str) -> dg.AssetSpec:
    if model == models.FACTS:
        deps = [staging_asset_key(BY_NAME[s]) for s in models.INPUT_STREAMS]
    else:
        deps = [engagement_asset_key(models.FACTS)]
    return dg.AssetSpec(
        key=engagement_asset_key(model),
        deps=deps,
        group_name=GROUP,
        description=_description(model),
        kinds={"sql", "table"},
        metadata={"dagster/table_name": f"engagement.{model}", "sql": f"sql/marts/{model}.sql"},
    )


def model_metadata(wh: Warehouse, model: str, first: date, last: date) -> dict[str, Any]:
    """What a materialization of days first..last of a model shows."""
    [(day_rows,)] = wh.query(
        f"SELECT count(*) FROM engagement.{model} WHERE activity_day BETWEEN "
        f"DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"
    )
    [(total,)] = wh.query(f"SELECT count(*) FROM engagement.{model}")
    columns = wh.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = 'engagement' AND table_name = '{model}' ORDER BY ordinal_position"
    )
    metadata: dict[str, Any] = {
        "dagster/row_count": total,
        "rows_in_these_days": day_rows,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, str(kind).lower()) for name, kind in columns]
        ),
    }
    if model == "daily_engagement":
        metadata.update(trend_metadata(wh, last))
    return metadata


def missing_inputs_failure(wh: Warehouse) -> dg.Failure | None:
    missing = models.missing_inputs(wh)
    if not missing:
        return None
    return dg.Failure(
        f"staging tables {', '.join(missing)} do not exist yet: materialize"
        f" {', '.join('staging/' + m for m in missing)} first"
    )


@dg.multi_asset(
    name="engagement_models",
    specs=[_spec(m) for m in models.MODELS],
    partitions_def=ENGAGEMENT_DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # The facts and every mart are built together, in one transaction: a mart
    # never disagrees with the facts, even after a failed run.
    can_subset=False,
)
def engagement_models(context: dg.AssetExecutionContext, config: EngagementConfig, warehouse: WarehouseResource):  # type: ignore[no-untyped-def]
    first, last = _days(context)
    wh = warehouse.open()
    wh.setup([])
    failure = missing_inputs_failure(wh)
    if failure:
        raise failure
    rebuild = config.rebuild or models.built_with_other_settings(wh)
    if rebuild:  # every day, so that no day of the old models or settings (a zone) survives
        first, last = ENGAGEMENT_DAILY.start.date(), max(last, reporting.today())
        context.log.info(f"rebuilding every day {first}..{last}: " + (
            "asked to" if config.rebuild else "the models or their settings changed since the tables were built"))
    models.build(wh, models.MODELS, first, last, rebuild=rebuild)
    for model in models.MODELS:
        yield dg.MaterializeResult(asset_key=engagement_asset_key(model), metadata=model_metadata(wh, model, first, last))


def trend_metadata(wh: Warehouse, last: date) -> dict[str, Any]:
    """The chart: the last 28 days as sparklines and a table, and the last day's numbers (plotted by Dagster)."""
    first = last - timedelta(days=CHART_DAYS - 1)
    rows = wh.query(
        "SELECT activity_day, emails_sent, reply_rate, connect_rate FROM engagement.daily_engagement"
        f" WHERE activity_day BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"
        " ORDER BY activity_day"
    )
    metadata: dict[str, Any] = {"trend": dg.MetadataValue.md(trend_markdown(rows))}
    if rows and rows[-1][0] == last:
        day, sent, reply, connect = rows[-1]
        # Numeric metadata is what the asset's Plots tab draws, one point per materialization.
        metadata["day"] = day.isoformat()
        metadata["emails_sent"] = dg.MetadataValue.int(int(sent))
        metadata["reply_rate"] = dg.MetadataValue.float(float(reply or 0.0))
        metadata["connect_rate"] = dg.MetadataValue.float(float(connect or 0.0))
    return metadata


ENGAGEMENT_ASSETS = [engagement_models]
ENGAGEMENT_KEYS = [engagement_asset_key(m) for m in models.MODELS]

engagement_job = dg.define_asset_job(
    "engagement_refresh",
    selection=dg.AssetSelection.assets(*ENGAGEMENT_KEYS),
    description="Rebuilds a range of activity days of every engagement model.",
)
