"""The daily partitions of the partitioned assets, and how a run asks for a range of them.

Extraction partitions by UTC day of `updated_at` (DAILY): what SalesLoft
lists by is an instant, and UTC days never change length. The engagement
models partition by activity day in the reporting time zone
(ENGAGEMENT_DAILY; salesloft_pipeline/reporting.py), the days a team reads
its metrics in; their day keys are dates like the extraction's.
"""

import os
from datetime import date

import dagster as dg

from salesloft_pipeline.reporting import reporting_timezone

START_DATE_VARIABLE = "SALESLOFT_START_DATE"
DEFAULT_START_DATE = "2025-01-01"

# The run tags Dagster documents for a single run over a partition range (what
# `dagster asset materialize --partition-range` and single-run backfills set).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def start_date() -> str:
    value = os.environ.get(START_DATE_VARIABLE) or DEFAULT_START_DATE
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{START_DATE_VARIABLE} must be a date like 2025-01-01, not {value!r}") from None
    return value


# Today's partition exists too (end_offset=1), so the schedule keeps it fresh.
DAILY = dg.DailyPartitionsDefinition(start_date=start_date(), timezone="UTC", end_offset=1)
ENGAGEMENT_DAILY = dg.DailyPartitionsDefinition(start_date=start_date(), timezone=reporting_timezone(), end_offset=1)


def range_tags(first: date | str, last: date | str) -> dict[str, str]:
    """Tags of a run over the days first..last (inclusive)."""
    return {RANGE_START_TAG: str(first), RANGE_END_TAG: str(last)}
