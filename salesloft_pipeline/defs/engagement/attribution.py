"""`engagement/cadence_pipeline`: the opportunities each cadence touched, and their amounts.

Plain SQL (`sql/marts/cadence_pipeline.sql`) over staging, on both engines.
Opportunities are few next to activities, so the model is rebuilt whole, in
one transaction, whenever one of the staging tables it reads changed
(declarative automation, like staging): a late stage change, an amount edited
after the close or a late touch always shows, with no per-day bookkeeping.
The attribution window is SALESLOFT_ATTRIBUTION_DAYS (30 by default) and the
days are in the reporting time zone; changing either rebuilds the table.
"""

import hashlib
import os

import dagster as dg

from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse

from ..resources import WarehouseResource
from ..staging.assets import STAGING_AUTOMATION, staging_asset_key
from . import models

MODEL = "cadence_pipeline"
INPUT_STREAMS = ("opportunities", "opportunity_people", "people", "emails", "calls")
DAYS_VARIABLE = "SALESLOFT_ATTRIBUTION_DAYS"
DEFAULT_DAYS = 30


def attribution_days() -> int:
    raw = (os.environ.get(DAYS_VARIABLE) or str(DEFAULT_DAYS)).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise ValueError(f"{DAYS_VARIABLE} must be a whole number of days from 1 to 3650, not {raw!r}")
    return int(raw)


def model_select(wh: Warehouse) -> str:
    sql = (models.MARTS_DIR / f"{MODEL}.sql").read_text()
    days = attribution_days()
    sql = sql.replace("{attribution_window}", f"INTERVAL '{days} days'").replace("{attribution_days}", str(days))
    return models.render(sql, [], wh)


def missing_inputs(wh: Warehouse) -> list[str]:
    present = wh.tables("staging")
    return [s for s in INPUT_STREAMS if s not in present]


def build_pipeline(wh: Warehouse) -> int:
    """Replaces engagement.cadence_pipeline with the model's rows, in one transaction; returns the rows.

    The table is made again when the model's SQL or settings changed (its columns may have)."""
    select = model_select(wh)
    fingerprint = hashlib.sha256(select.encode()).hexdigest()[:32]
    table = f"engagement.{MODEL}"
    with wh.transaction(serialise=models.SERIALISE) as conn:
        conn.execute(models.builds_table_sql(wh))
        built = conn.execute(f"SELECT fingerprint FROM engagement._builds WHERE name = '{MODEL}'").fetchall()
        if built != [(fingerprint,)]:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"DELETE FROM engagement._builds WHERE name = '{MODEL}'")
            conn.execute(f"INSERT INTO engagement._builds VALUES ('{MODEL}', '{fingerprint}', current_timestamp)")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM (\n{select}\n) AS model WHERE 1 = 0")
        conn.execute(f"DELETE FROM {table}")
        conn.execute(f"INSERT INTO {table} SELECT * FROM (\n{select}\n) AS model")
        [(rows,)] = conn.execute(f"SELECT count(*) FROM {table}").fetchall()
    return rows


@dg.asset(
    key=dg.AssetKey(["engagement", MODEL]),
    deps=[staging_asset_key(BY_NAME[s]) for s in INPUT_STREAMS],
    group_name="engagement",
    description=(
        "Per day and cadence: the opportunities opened for people (or accounts) the cadence emailed or called"
        " in the prior SALESLOFT_ATTRIBUTION_DAYS days, their amount and won amount, first- and last-touch"
        " (`engagement.cadence_pipeline`; docs/metrics.md)."
    ),
    kinds={"sql", "table"},
    automation_condition=STAGING_AUTOMATION.with_label("staging_changed_since_requested"),
    metadata={"dagster/table_name": f"engagement.{MODEL}", "sql": f"sql/marts/{MODEL}.sql"},
    output_required=False,
)
def cadence_pipeline(context: dg.AssetExecutionContext, warehouse: WarehouseResource):  # type: ignore[no-untyped-def]
    wh = warehouse.open()
    wh.setup([])
    missing = missing_inputs(wh)
    if missing:
        context.log.info(
            f"engagement.{MODEL} waits for staging tables {', '.join(missing)}: they do not exist yet"
        )
        return
    rows = build_pipeline(wh)
    [(opportunities, amount)] = wh.query(
        f"SELECT COALESCE(sum(opportunities), 0), COALESCE(sum(pipeline_amount), 0)"
        f" FROM engagement.{MODEL} WHERE attribution = 'last_touch'"
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "attributed_opportunities": int(opportunities),
            "attributed_pipeline_amount": float(amount),
            "attribution_days": attribution_days(),
        }
    )
