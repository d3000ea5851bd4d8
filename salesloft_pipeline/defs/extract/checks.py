"""Asset checks on what extraction produced.

- staging primary keys are unique and not null (error);
- references to people and users resolve in staging (warning: SalesLoft
  keeps activities of deleted people).
Freshness of the incremental streams is a `FreshnessPolicy` on their assets.
"""

import dagster as dg

from salesloft_pipeline.salesloft import STREAMS, Stream

from ..resources import WarehouseResource
from ..staging.assets import staging_asset_key
from .tables import raw_table

# Reference columns that point at people or users, by the table they point at.
REFERENCE_TARGETS = {
    "people": ("person_id", "recipient_id", "called_person_id"),
    "users": ("user_id", "owner_id", "creator_id"),
}


def build_primary_key_check(stream: Stream) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=staging_asset_key(stream),
        name="primary_key_unique_and_not_null",
        description=f"Every row of staging.{stream.name} has an id, and no id appears twice.",
        blocking=True,
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        [(rows, distinct, nulls)] = warehouse.open().query(
            f"SELECT count(*), count(DISTINCT id), count(*) - count(id) FROM staging.{stream.name}"
        )
        return dg.AssetCheckResult(
            passed=rows == distinct and nulls == 0,
            metadata={"rows": rows, "duplicate_ids": rows - distinct - nulls, "null_ids": nulls},
        )

    return check


def build_reference_check(stream: Stream, columns: list[tuple[str, str]]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=staging_asset_key(stream),
        name="references_resolve",
        description=f"References from staging.{stream.name} to people and users exist in staging.",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.open()
        missing = sorted({target for _, target in columns} - wh.tables("staging"))
        if missing:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not checked yet: staging.{', staging.'.join(missing)} not built",
            )
        dangling = {}
        for column, target in columns:
            [(count,)] = wh.query(
                f"SELECT count(*) FROM staging.{stream.name} AS s WHERE s.{column} IS NOT NULL"
                f" AND NOT EXISTS (SELECT 1 FROM staging.{target} AS t WHERE t.id = s.{column})"
            )
            dangling[column] = count
        return dg.AssetCheckResult(
            passed=not any(dangling.values()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={f"dangling_{column}": count for column, count in dangling.items()},
        )

    return check


def _reference_columns(stream: Stream) -> list[tuple[str, str]]:
    names = {c.name for c in raw_table(stream).columns}
    return [(c, target) for target, cols in REFERENCE_TARGETS.items() for c in cols if c in names and stream.name != target]


PRIMARY_KEY_CHECKS = [build_primary_key_check(s) for s in STREAMS]
REFERENCE_CHECKS = [build_reference_check(s, cols) for s in STREAMS if (cols := _reference_columns(s))]
EXTRACT_CHECKS = [*PRIMARY_KEY_CHECKS, *REFERENCE_CHECKS]
