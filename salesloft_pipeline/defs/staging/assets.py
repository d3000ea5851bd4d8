"""`staging/<stream>`: the latest live version of every record, built with SQL.

Each model is the shared `sql/staging/_latest_version.sql` for the stream,
with the columns listed in `sql/staging/<stream>.sql` added where that file
exists (typed fields the marts read, pulled out of `record`). Staging rebuilds
whenever its raw table changes (declarative automation), so late updates and
deletes reach the metrics without a manual run.
"""

import os
from pathlib import Path

import dagster as dg

from salesloft_pipeline.salesloft import STREAMS, Stream
from salesloft_pipeline.warehouse import Warehouse

from ..extract.assets import raw_asset_key
from ..extract.tables import raw_table
from ..resources import WarehouseResource

SQL_DIR = Path(os.environ.get("SALESLOFT_SQL_DIR") or Path(__file__).resolve().parents[3] / "sql")


def staging_sql(stream: Stream) -> str:
    """The stream's staging model: the shared latest-version SQL, plus the stream's own columns."""
    own = SQL_DIR / "staging" / f"{stream.name}.sql"
    columns = ",\n" + own.read_text() if own.exists() else ""
    template = (SQL_DIR / "staging" / "_latest_version.sql").read_text()
    return template.replace("{columns}", columns).replace("{stream}", stream.name)


# Postgres indexes on what the engagement SQL looks rows up by: the activity's
# time (one day's rows) and, for first touches, the person and cadence touched.
STAGING_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "emails": (("sent_at",), ("recipient_id", "cadence_id", "sent_at")),
    "calls": (("created_at",), ("called_person_id", "cadence_id", "created_at")),
    "cadence_memberships": (("added_at",), ("person_id", "cadence_id")),
    "meetings": (("created_at",),),
    "successes": (("succeeded_at",),),
}


def staging_indexes_sql(wh: Warehouse, stream: str) -> str:
    return wh.indexes_sql(f"staging.{stream}", STAGING_INDEXES.get(stream, ()), analyze=True)


def rebuild_staging(wh: Warehouse, stream: Stream) -> None:
    """Replaces staging.<stream> in one transaction; rebuilds of one stream queue, never interleave."""
    wh.execute_script(staging_sql(stream) + staging_indexes_sql(wh, stream.name), serialise=f"staging.{stream.name}")


def staging_asset_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["staging", stream.name])


def build_staging_asset(stream: Stream) -> dg.AssetsDefinition:
    table = raw_table(stream)

    @dg.asset(
        key=staging_asset_key(stream),
        deps=[raw_asset_key(stream)],
        group_name="staging",
        description=f"One row per live `{stream.name}` record, its latest version (`staging.{stream.name}`).",
        kinds={"sql", "table"},
        automation_condition=dg.AutomationCondition.eager(),
        metadata={"dagster/table_name": f"staging.{stream.name}"},
    )
    def staging(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.open()
        wh.setup([table])
        rebuild_staging(wh, stream)
        [(rows,)] = wh.query(f"SELECT count(*) FROM staging.{stream.name}")
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return staging


STAGING_ASSETS = [build_staging_asset(s) for s in STREAMS]
