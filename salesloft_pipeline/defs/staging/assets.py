"""`staging/<stream>`: the latest live version of every record, built with SQL.

Each model is the shared `sql/staging/_latest_version.sql` for the stream,
with the columns listed in `sql/staging/<stream>.sql` added where that file
exists (typed fields the marts read, pulled out of `record`), and for people,
accounts and opportunities a column per custom field (custom_fields.py),
which is why those also depend on the `custom_fields` stream. Staging is
requested whenever its raw table was materialized (declarative automation)
and merges the ids whose raw versions changed (build.py); when none did, it
does nothing and records no materialization, so nothing downstream reruns.
"""

import dagster as dg

from salesloft_pipeline.salesloft import BY_NAME, STREAMS, Stream

from ..extract.assets import raw_asset_key
from ..extract.tables import raw_table
from ..resources import WarehouseResource
from . import custom_fields
from .build import build_staging

# Eager, with two differences. No `any_deps_missing`: a raw table partitioned
# by day is never loaded for every day since SALESLOFT_START_DATE, and staging
# must follow the days that are. And a raw update is handled only once staging
# is *requested* after it, not when staging is materialized by another run (a
# webhook apply merging the stream while the extraction commits): that run may
# have merged before the update, which would then wait for the next one.
STAGING_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since(
        dg.AutomationCondition.newly_requested() | dg.AutomationCondition.initial_evaluation()
    )
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("raw_changed_since_requested")


class StagingConfig(dg.Config):
    force: bool = False
    """Rebuild the whole table from raw, even if nothing changed."""


def staging_asset_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["staging", stream.name])


def build_staging_asset(stream: Stream) -> dg.AssetsDefinition:
    table = raw_table(stream)

    @dg.asset(
        key=staging_asset_key(stream),
        deps=[raw_asset_key(stream)] + (
            [raw_asset_key(BY_NAME["custom_fields"])] if stream.name in custom_fields.FIELD_TYPES else []
        ),
        group_name="staging",
        description=f"One row per live `{stream.name}` record, its latest version (`staging.{stream.name}`).",
        kinds={"sql", "table"},
        automation_condition=STAGING_AUTOMATION,
        metadata={"dagster/table_name": f"staging.{stream.name}"},
        output_required=False,
    )
    def staging(context: dg.AssetExecutionContext, config: StagingConfig, warehouse: WarehouseResource):  # type: ignore[no-untyped-def]
        wh = warehouse.open()
        wh.setup([table])
        build = build_staging(wh, stream, force=config.force)
        if not build.changed:
            context.log.info(f"staging.{stream.name} is up to date: no raw version changed since it was built")
            return
        [(rows,)] = wh.query(f"SELECT count(*) FROM staging.{stream.name}")
        context.log.info(f"staging.{stream.name}: {build.mode} ({build.reason}), {rows} rows")
        yield dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "build": build.mode, "reason": build.reason, "ids_merged": build.ids}
        )

    return staging


STAGING_ASSETS = [build_staging_asset(s) for s in STREAMS]
