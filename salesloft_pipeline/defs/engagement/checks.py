"""Asset checks on the engagement models.

- `rates_between_0_and_1` (error): every rate of a mart is NULL or within [0, 1].
- `no_day_double_counted` (error): no two rows share a model's grain (an
  activity appears on one day only in activity_facts; one row per day and key
  in a mart), so a rerun or an overlapping backfill never counts a day twice.
- `reconciles_with_staging` (warning): for every day a mart holds, its totals
  equal counts taken straight from staging with separate SQL (emails sent,
  bounced and replied, calls and connects, meetings booked, successes). A
  mismatch right after staging changed is expected until the sensor rebuilds
  the day, hence a warning; the days that differ are in the metadata.
"""

from collections.abc import Mapping

import dagster as dg

from ..resources import WarehouseResource
from . import models
from .assets import engagement_asset_key

SENT = "sent_at IS NOT NULL AND status IN ('sent', 'sent_from_gmail', 'sent_from_external')"
NOT_CANCELED = "canceled_at IS NULL AND COALESCE(LOWER(status) NOT IN ('canceled', 'cancelled'), TRUE)"
CONNECTED = "(LOWER(disposition) IN {connected_dispositions} OR connected IS TRUE)"  # filled when checked


# Counts per activity day straight from staging: (table, time column, condition).
STAGED: dict[str, tuple[str, str, str]] = {
    "emails_sent": ("emails", "sent_at", SENT),
    "emails_bounced": ("emails", "sent_at", f"{SENT} AND bounced IS TRUE"),
    "emails_replied": ("emails", "sent_at", f"{SENT} AND bounced IS NOT TRUE AND replies > 0"),
    "calls": ("calls", "created_at", "created_at IS NOT NULL"),
    "calls_connected": ("calls", "created_at", CONNECTED),
    "meetings_booked": ("meetings", "created_at", NOT_CANCELED),
    "successes": ("successes", "succeeded_at", "succeeded_at IS NOT NULL"),
    "step_emails_sent": ("emails", "sent_at", f"{SENT} AND step_id IS NOT NULL"),
    "step_replies": ("emails", "sent_at", f"{SENT} AND step_id IS NOT NULL AND bounced IS NOT TRUE AND replies > 0"),
    "step_meetings_booked": ("meetings", "created_at", f"{NOT_CANCELED} AND step_id IS NOT NULL"),
}
DAILY_MEASURES = {m: m for m in ("emails_sent", "emails_bounced", "emails_replied", "calls", "calls_connected", "meetings_booked", "successes")}
# mart -> {mart column: staged count}
RECONCILED: dict[str, Mapping[str, str]] = {
    "daily_engagement": DAILY_MEASURES,
    "daily_engagement_by_user": DAILY_MEASURES,
    "daily_engagement_by_cadence": DAILY_MEASURES,
    "cadence_step_funnel": {"emails_sent": "step_emails_sent", "replies": "step_replies", "meetings_booked": "step_meetings_booked"},
    "call_outcomes": {"calls": "calls", "calls_connected": "calls_connected"},
}


def reconciliation_sql(model: str) -> str:
    """Days of the mart whose totals differ from staging: (day, column, mart, staging)."""
    measures = RECONCILED[model]
    parts = []
    for column, staged in measures.items():
        table, time_column, condition = STAGED[staged]
        condition = condition.replace("{connected_dispositions}", models.sql_list(models.connected_dispositions()))
        parts.append(
            f"SELECT mart.activity_day, '{column}' AS measure, mart.total AS mart_total,"
            f" COALESCE(staged.total, 0) AS staging_total\n"
            f"FROM (SELECT activity_day, SUM({column}) AS total FROM engagement.{model} GROUP BY activity_day) AS mart\n"
            f"LEFT JOIN (SELECT {models.day_of(time_column)} AS activity_day, COUNT(*) AS total FROM staging.{table}"
            f" WHERE {condition} GROUP BY 1) AS staged ON staged.activity_day = mart.activity_day\n"
            f"WHERE mart.total <> COALESCE(staged.total, 0)"
        )
    return "\nUNION ALL\n".join(parts) + "\nORDER BY 1, 2"


def build_rates_check(model: str) -> dg.AssetChecksDefinition:
    rates = models.RATE_COLUMNS[model]

    @dg.asset_check(
        asset=engagement_asset_key(model),
        name="rates_between_0_and_1",
        description=f"{', '.join(rates)} are NULL or between 0 and 1.",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        outside = " OR ".join(f"{r} < 0 OR {r} > 1" for r in rates)
        [(bad,)] = warehouse.open().query(f"SELECT count(*) FROM engagement.{model} WHERE {outside}")
        return dg.AssetCheckResult(passed=bad == 0, metadata={"rows_with_a_rate_outside_0_1": bad})

    return check


def build_grain_check(model: str) -> dg.AssetChecksDefinition:
    grain = ", ".join(models.GRAIN[model])

    @dg.asset_check(
        asset=engagement_asset_key(model),
        name="no_day_double_counted",
        description=f"No two rows of engagement.{model} share ({grain}).",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        [(duplicated,)] = warehouse.open().query(
            f"SELECT count(*) FROM (SELECT {grain} FROM engagement.{model} GROUP BY {grain} HAVING count(*) > 1) AS d"
        )
        return dg.AssetCheckResult(passed=duplicated == 0, metadata={"duplicated_keys": duplicated})

    return check


def build_reconciliation_check(model: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=engagement_asset_key(model),
        name="reconciles_with_staging",
        description=f"Per day, totals of engagement.{model} equal the counts in staging"
        f" ({', '.join(RECONCILED[model])}).",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.open()
        differences = wh.query(reconciliation_sql(model))
        [(days,)] = wh.query(f"SELECT count(DISTINCT activity_day) FROM engagement.{model}")
        shown = [f"{day} {measure}: mart {mart} vs staging {staged}" for day, measure, mart, staged in differences[:20]]
        return dg.AssetCheckResult(
            passed=not differences,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "days_checked": days,
                "differences": len(differences),
                "first_differences": dg.MetadataValue.md("\n".join(f"- {s}" for s in shown) or "none"),
            },
        )

    return check


ENGAGEMENT_CHECKS = [
    *(build_rates_check(m) for m in models.RATE_COLUMNS),
    *(build_grain_check(m) for m in models.MODELS),
    *(build_reconciliation_check(m) for m in RECONCILED),
]
