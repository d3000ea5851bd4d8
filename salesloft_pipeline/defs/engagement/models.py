"""The engagement models: plain SQL in `sql/marts/`, run for a set of activity days.

Each model file is one SELECT whose rows carry `activity_day` (a date in the
reporting time zone), restricted to the days it is built for by two
placeholders: `{during_days(column)}` (a timestamp column falls in one of
those days) and `{on_days(column)}` (a date column is one of them). Building
some days of a model replaces exactly those days of `engagement.<model>` in
one transaction (DELETE the days, INSERT the SELECT), so a rerun never
double-counts, a full recompute is simply every day, and days scattered over
years are built in one pass.

`engagement.activity_facts` (one row per activity) is built from staging;
every mart aggregates it. Facts and marts are always built together, in one
transaction, so a mart never disagrees with the facts. Which days to rebuild
after staging changed is changes.py's business; `stale_days` is the slow,
exhaustive way (recompute the facts from staging, compare each day's row
count and sum of row hashes), used when anything may have changed.
"""

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from salesloft_pipeline.reporting import UTC, reporting_timezone
from salesloft_pipeline.warehouse import PostgresWarehouse, Warehouse

from ..staging.build import ENGAGEMENT_INPUTS, SQL_DIR

MARTS_DIR: Path = SQL_DIR / "marts"
FACTS = "activity_facts"
MARTS = (
    "daily_engagement",
    "daily_engagement_by_user",
    "daily_engagement_by_cadence",
    "cadence_step_funnel",
    "call_outcomes",
)
MODELS = (FACTS, *MARTS)
# Staging tables the facts read (all of them must exist before a build).
INPUT_STREAMS = ENGAGEMENT_INPUTS
# Columns that identify one row of each model: no two rows of a day may share them.
GRAIN: dict[str, tuple[str, ...]] = {
    FACTS: ("activity", "source_id"),
    "daily_engagement": ("activity_day",),
    "daily_engagement_by_user": ("activity_day", "user_id"),
    "daily_engagement_by_cadence": ("activity_day", "cadence_id"),
    "cadence_step_funnel": ("activity_day", "cadence_id", "step_id"),
    "call_outcomes": ("activity_day", "user_id", "cadence_id", "disposition", "sentiment"),
}
RATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "daily_engagement": ("open_rate", "click_rate", "reply_rate", "bounce_rate", "connect_rate"),
    "daily_engagement_by_user": ("open_rate", "click_rate", "reply_rate", "bounce_rate", "connect_rate"),
    "daily_engagement_by_cadence": ("open_rate", "click_rate", "reply_rate", "bounce_rate", "connect_rate"),
    "cadence_step_funnel": ("reply_rate",),
}


# The three daily marts share one aggregation (sql/marts/_daily_engagement.sql)
# and differ by their grouping key.
DAILY_GROUPINGS: dict[str, str | None] = {
    "daily_engagement": None,
    "daily_engagement_by_user": "user_id",
    "daily_engagement_by_cadence": "cadence_id",
}


def model_sql(name: str) -> str:
    """The model's SQL: its file, or for the daily marts its file's header over the shared aggregation."""
    own = (MARTS_DIR / f"{name}.sql").read_text()
    if name not in DAILY_GROUPINGS:
        return own
    key = DAILY_GROUPINGS[name]
    shared = (MARTS_DIR / "_daily_engagement.sql").read_text()
    body = shared[shared.index("WITH facts AS"):]
    if key is None:
        body = body.replace("{by}", "").replace("{by_column}", "").replace("{by_join}", "")
    else:
        body = (
            body.replace("{by}", f", {key}")
            .replace("{by_column}", f"\n    totals.{key},")
            .replace("{by_join}", f" AND COALESCE(people.{key}, -1) = COALESCE(totals.{key}, -1)")
        )
    return own + body


CONNECTED_VARIABLE = "SALESLOFT_CONNECTED_DISPOSITIONS"
DEFAULT_CONNECTED = "Connected"


def connected_dispositions() -> tuple[str, ...]:
    """The call dispositions that count as a conversation (case-insensitive).

    SalesLoft's built-in one is "Connected"; teams add their own ("Meeting
    Booked", "Spoke - Not Interested"...): list them all, comma-separated."""
    raw = os.environ.get(CONNECTED_VARIABLE) or DEFAULT_CONNECTED
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    if not names:
        raise ValueError(f"{CONNECTED_VARIABLE} names no disposition: {raw!r}")
    return names


def sql_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_quoted(v) for v in values) + ")"


Days = Sequence[tuple[date, date]]  # (first, last) ranges of activity days, inclusive
DURING_DAYS = re.compile(r"\{during_days\(([^)]+)\)\}")
ON_DAYS = re.compile(r"\{on_days\(([^)]+)\)\}")


def _instant(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(timezone.utc).isoformat()}'"


def day_start(day: date, zone: str) -> datetime:
    """The first instant of `day` in `zone` (a DST day is 23 or 25 hours long)."""
    return datetime.combine(day, time(), ZoneInfo(zone))


# How far the instant bounds of a day are widened on each side when the zone is
# not UTC: the exact test is the day of the instant as the engine takes it in
# that zone, so a database whose time zone rules differ from Python's by up to
# this much still counts every activity on exactly one day.
BOUNDS_SLACK = timedelta(hours=2)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _date(day: date) -> str:
    return f"DATE '{day.isoformat()}'"


def day_of(column: str, zone: str | None = None) -> str:
    """SQL for the activity day of a timestamp column: its date in the reporting zone."""
    return f"CAST({column} AT TIME ZONE {_quoted(zone or reporting_timezone())} AS DATE)"


def render(sql: str, days: Days, wh: Warehouse | None = None, zone: str | None = None) -> str:
    """The model's SELECT for the given ranges of activity days, for `wh`'s engine.

    Activity days are dates in the reporting time zone (`zone`, by default
    salesloft_pipeline.reporting's): `{zone}` is its quoted name.
    `{during_days(column)}` is true when a timestamp column falls in one of the
    days, `{on_days(column)}` when a date column is one of them: one range test
    a range, so that many scattered days are built in one pass (outside UTC,
    the range is widened a little and the column's day tested exactly).
    `{inline}` marks CTEs read more than once: Postgres would otherwise compute
    them whole (every email, every call) before filtering to the days built;
    DuckDB is faster with its default (computing them once)."""
    zone = zone or reporting_timezone()
    slack = timedelta(0) if zone == UTC else BOUNDS_SLACK

    def during(column: str) -> str:
        tests = []
        for first, last in days:
            lower = _instant(day_start(first, zone) - slack)
            upper = _instant(day_start(last + timedelta(days=1), zone) + slack)
            exact = "" if zone == UTC else f" AND {day_of(column, zone)} BETWEEN {_date(first)} AND {_date(last)}"
            tests.append(f"({column} >= {lower} AND {column} < {upper}{exact})")
        return f"({' OR '.join(tests)})"

    def on(column: str) -> str:
        return "(" + " OR ".join(f"({column} BETWEEN {_date(first)} AND {_date(last)})" for first, last in days) + ")"

    sql = DURING_DAYS.sub(lambda match: during(match.group(1)), sql)
    sql = ON_DAYS.sub(lambda match: on(match.group(1)), sql)
    return (
        sql.replace("{inline}", "NOT MATERIALIZED" if isinstance(wh, PostgresWarehouse) else "")
        .replace("{connected_dispositions}", sql_list(connected_dispositions()))
        .replace("{zone}", _quoted(zone))
    )


def build_script(name: str, days: Days, rebuild: bool = False, wh: Warehouse | None = None) -> str:
    """SQL that replaces those days of engagement.<name> (one transaction when run as one script).

    On Postgres the table gets an index on activity_day, so that a day's rows
    are found (and deleted) without reading every day's."""
    select = render(model_sql(name), days, wh)
    table = f"engagement.{name}"
    drop = f"DROP TABLE IF EXISTS {table};\n" if rebuild else ""
    return (
        f"{drop}"
        f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM (\n{select}\n) AS model WHERE 1 = 0;\n"
        f"DELETE FROM {table} WHERE {render('{on_days(activity_day)}', days)};\n"
        f"INSERT INTO {table} SELECT * FROM (\n{select}\n) AS model;\n"
        + (wh.indexes_sql(table, INDEXES.get(name, [("activity_day",)])) if wh is not None else "")
    )


# Postgres indexes: every model's rows are found by day; change detection
# looks facts up by the record they came from and by person, cadence and activity.
INDEXES = {FACTS: [("activity_day",), ("activity", "source_id"), ("person_id", "cadence_id", "activity")]}


def missing_inputs(wh: Warehouse) -> list[str]:
    """Staging tables the facts need that do not exist yet."""
    present = wh.tables("staging")
    return [s for s in INPUT_STREAMS if s not in present]


def build(wh: Warehouse, names: Iterable[str], first: date, last: date, rebuild: bool = False) -> None:
    """Builds days first..last of each model, in order, all in one transaction.

    Builds queue one behind the other: two at once (a backfill and the late
    updates sensor's run) would each miss the other's rows of a shared day."""
    script = "".join(build_script(name, [(first, last)], rebuild, wh) for name in names)
    if rebuild or not table_exists(wh, FACTS):  # every day built from the current models
        script += record_fingerprint_sql(wh)
    wh.execute_script(script, serialise=SERIALISE)


SERIALISE = "engagement"  # every transaction that writes the engagement tables


def days_script(wh: Warehouse, days: Days, rebuild: bool = False) -> str:
    """SQL that rebuilds every model for those days, each model in one pass over them."""
    return "".join(build_script(name, days, rebuild, wh) for name in MODELS)


def settings() -> str:
    """The settings the models render with (the environment's): the reporting zone and the connected dispositions."""
    return f"{reporting_timezone()};{','.join(connected_dispositions())}"


def fingerprint() -> str:
    """What the engagement tables are built from: every model's SQL and the settings it renders with.
    Stored with each full build; when it changes, the next update rebuilds every day."""
    parts = [model_sql(name) for name in MODELS] + [settings()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def builds_table_sql(wh: Warehouse) -> str:
    t = wh.TYPES
    return (
        "CREATE TABLE IF NOT EXISTS engagement._builds (name {text} PRIMARY KEY, fingerprint {text} NOT NULL,"
        " built_at {timestamp} NOT NULL);\n".format(**t)
    )


def record_fingerprint_sql(wh: Warehouse) -> str:
    """SQL that records the current fingerprint as the one the tables were built with."""
    return (
        builds_table_sql(wh)
        + "DELETE FROM engagement._builds WHERE name = 'models';\n"
        + f"INSERT INTO engagement._builds VALUES ('models', '{fingerprint()}', current_timestamp);\n"
    )


def built_with_other_settings(wh: Warehouse) -> bool:
    """True when the facts exist but were built with other models or settings (`fingerprint`)."""
    if not table_exists(wh, FACTS):
        return False
    if "_builds" not in wh.tables("engagement"):
        return True
    return wh.query("SELECT fingerprint FROM engagement._builds WHERE name = 'models'") != [(fingerprint(),)]


def table_exists(wh: Warehouse, name: str) -> bool:
    return name in wh.tables("engagement")


FACT_COLUMNS = (
    "activity_day", "activity", "source_id", "occurred_at", "user_id", "cadence_id", "step_id", "person_id",
    "bounced", "opened", "clicked", "replied", "connected", "duration_seconds", "disposition", "sentiment",
    "canceled", "no_show", "seconds_to_first_touch",
)


def _row_hash(wh: Warehouse) -> str:
    """A 64-bit hash of a whole facts row: the one dialect difference (DuckDB `hash`, Postgres `hashtextextended`)."""
    image = "CONCAT_WS('|', " + ", ".join(f"COALESCE(CAST({c} AS VARCHAR), '~')" for c in FACT_COLUMNS) + ")"
    if isinstance(wh, PostgresWarehouse):
        return f"hashtextextended({image}, 0)"
    return f"CAST(hash({image}) AS DECIMAL(20, 0))"


def stale_days(wh: Warehouse, first: date, last: date, conn: Any = None) -> list[date]:
    """Activity days in first..last whose facts, recomputed from staging now, differ from the stored ones.

    A day is stale when an activity of it changed (a late reply, open, click
    or bounce; a meeting cancelled or marked no-show), appeared (newly loaded)
    or disappeared (deleted), or when its first touches changed; days never
    built are stale if they have activity. Each day is compared by its row
    count and the sum of a 64-bit hash of every whole row, so a day that did
    not change is never rebuilt and a change is missed only on a hash
    collision."""
    def query(sql: str) -> list[tuple[Any, ...]]:  # in the caller's transaction if it gave one
        return conn.execute(sql).fetchall() if conn is not None else wh.query(sql)

    current = render(model_sql(FACTS), [(first, last)], wh)
    row_hash = _row_hash(wh)
    digest = f"SELECT activity_day, count(*) AS n, sum({row_hash}) AS h FROM {{rows}} AS f GROUP BY activity_day"
    current_digest = digest.replace("{rows}", f"(\n{current}\n)")
    [(facts_built,)] = query(
        "SELECT count(*) FROM information_schema.tables"
        f" WHERE table_schema = 'engagement' AND table_name = '{FACTS}'"
    )
    if not facts_built:
        rows = query(f"SELECT activity_day FROM ({current_digest}) AS d")
        return sorted(day for (day,) in rows)
    stored = (
        f"(SELECT * FROM engagement.{FACTS}"
        f" WHERE activity_day BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}')"
    )
    sql = (
        f"SELECT COALESCE(now_.activity_day, built.activity_day)\n"
        f"FROM ({current_digest}) AS now_\n"
        f"FULL OUTER JOIN ({digest.replace('{rows}', stored)}) AS built ON built.activity_day = now_.activity_day\n"
        "WHERE now_.n IS NULL OR built.n IS NULL OR now_.n <> built.n OR now_.h <> built.h"
    )
    return sorted(day for (day,) in query(sql))


def day_ranges(days: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into (first, last) ranges."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges
