"""One Dagster asset per stream of the registry: `salesloft/<stream>`, group `extract`.

Incremental streams are partitioned by UTC day on `updated_at` and backfill
in a single run per range (one ascending scan, committed day by day, each
committed day logged as that partition's materialization so progress shows
in the UI and survives a failure). Full-refresh streams are unpartitioned.
"""

from datetime import timedelta

import dagster as dg

from salesloft_pipeline.salesloft import STREAMS, SalesloftClient, Stream
from salesloft_pipeline.warehouse import RawTable

from ..partitions import DAILY
from ..resources import SalesloftResource, WarehouseResource
from .loading import DayLoad, load_days, load_snapshot
from .tables import all_raw_tables, raw_table

POOL = "salesloft_api"
# The schedule reads incremental streams every 15 minutes: a stream not
# updated for much longer than that is late.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=45))


class ExtractConfig(dg.Config):
    force: bool = False
    """Read every day of the range again, even days already complete in the warehouse."""


def raw_asset_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["salesloft", stream.name])


def column_schema(table: RawTable) -> dg.TableSchema:
    types = {"bigint": "bigint", "text": "text", "timestamp": "timestamp (UTC)", "boolean": "boolean", "double": "double"}
    return dg.TableSchema(
        columns=[
            dg.TableColumn("id", table.id_type, description="SalesLoft id"),
            *(dg.TableColumn(c.name, types[c.type], description=f"from {'.'.join(c.path)}") for c in table.columns),
            dg.TableColumn("record", "json", description="the whole record, unknown fields included"),
            dg.TableColumn("_partition", "date", description="UTC day of updated_at at extraction"),
            dg.TableColumn("_extracted_at", "timestamp (UTC)", description="when this version was first extracted"),
            dg.TableColumn("_source", "text", description="poll or webhook"),
        ]
    )


def _spend(client: SalesloftClient) -> dict[str, dg.MetadataValue]:
    stats = client.stats
    return {
        "api_requests": dg.MetadataValue.int(stats.requests),
        "api_cost": dg.MetadataValue.int(stats.cost),
        "api_429s": dg.MetadataValue.int(stats.rate_limited),
    }


def _description(stream: Stream) -> str:
    how = (
        "partitioned by UTC day of `updated_at`; a partition holds the records whose `updated_at`"
        " fell in that day when it was read"
        if stream.incremental
        else "a full refresh; records that disappear are marked deleted"
    )
    scope = f" Needs the `{stream.required_scope}` scope; skipped without it." if stream.required_scope else ""
    return f"SalesLoft `{stream.path}` loaded into `raw.{stream.name}`: {how}.{scope}"


def build_extract_asset(stream: Stream) -> dg.AssetsDefinition:
    table = raw_table(stream)
    common = dict(
        key=raw_asset_key(stream),
        group_name="extract",
        description=_description(stream),
        kinds={"salesloft", "table"},
        pool=POOL,
        metadata={"dagster/column_schema": column_schema(table), "dagster/table_name": table.qualified},
    )

    if stream.incremental:

        @dg.asset(
            **common,
            partitions_def=DAILY,
            backfill_policy=dg.BackfillPolicy.single_run(),
            freshness_policy=FRESHNESS,
            # Each day is materialized when it commits, with its own figures;
            # days skipped as complete are not marked again.
            output_required=False,
        )
        def incremental(
            context: dg.AssetExecutionContext,
            config: ExtractConfig,
            salesloft: SalesloftResource,
            warehouse: WarehouseResource,
        ):  # type: ignore[no-untyped-def]
            window = context.partition_time_window
            first, last = window.start.date(), window.end.date() - timedelta(days=1)
            days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            wh = warehouse.open()
            wh.setup([table])

            with salesloft.client() as client:

                def committed(load: DayLoad) -> None:
                    context.log.info(
                        f"{stream.name} {load.day}: {load.rows} records ({load.changed} changed),"
                        f" {load.rejected} rejected, API cost {load.api_usage['api_cost']}"
                    )
                    context.log_event(
                        dg.AssetMaterialization(
                            asset_key=context.asset_key,
                            partition=load.day.isoformat(),
                            metadata={
                                "dagster/partition_row_count": load.rows,
                                "changed_records": load.changed,
                                "rejected_records": load.rejected,
                                **{k: v for k, v in load.api_usage.items() if v is not None},
                            },
                        )
                    )

                result = load_days(client, wh, stream, table, days, force=config.force, on_commit=committed)
                stats = client.stats
            if result.missing_scope:
                context.log.warning(result.missing_scope)
            context.log.info(
                f"{len(result.loaded)} day(s) loaded ({result.rows} records, {result.rejected} rejected),"
                f" {len(result.skipped)} already complete and not read again;"
                f" API: {stats.requests} requests, cost {stats.cost}, {stats.rate_limited} 429s"
            )
            yield from ()  # no output of its own: the committed days are its materializations

        return incremental

    @dg.asset(**common)
    def snapshot(
        context: dg.AssetExecutionContext, salesloft: SalesloftResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.open()
        wh.setup([table])
        with salesloft.client() as client:
            rows, rejected, deleted, missing_scope = load_snapshot(client, wh, stream, table)
            spend = _spend(client)
        if missing_scope:
            context.log.warning(missing_scope)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "rejected_records": rejected,
                "marked_deleted": deleted,
                "skipped_missing_scope": missing_scope or "",
                **spend,
            }
        )

    return snapshot


EXTRACT_ASSETS = [build_extract_asset(s) for s in STREAMS]
INCREMENTAL_KEYS = [raw_asset_key(s) for s in STREAMS if s.incremental]
FULL_REFRESH_KEYS = [raw_asset_key(s) for s in STREAMS if not s.incremental]
RAW_TABLES = all_raw_tables()
