"""Building `staging.<stream>`: merge what changed, rebuild only when needed.

Every write to a raw table queues the ids whose versions it changed in
`raw._changes` (warehouse/base.py). A staging build takes that queue: it
deletes those ids from the staging table and inserts their latest live
version again, selected by the same SQL that builds the whole table, so the
result is always what a full rebuild would give, in one transaction, with the
table and its indexes in place (readers are never locked out for long). A
build with an empty queue does nothing.

The whole table is rebuilt (DROP + CREATE AS) when it does not exist yet, when
its model changed (the SQL files, or the raw table's columns: a fingerprint of
both is kept in `staging._builds`), when `force` is asked, or when so many ids
changed (a backfill) that rebuilding is cheaper than merging.

People, accounts and opportunities get a column per custom field
(custom_fields.py); the columns are part of the SQL and so of the fingerprint.

Streams the engagement metrics read pass the ids a build changed on, queued
in `staging._changes` (`*` after a full rebuild: anything may have changed),
so the metrics recompute the activity days those ids touch and no others.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from salesloft_pipeline.salesloft import Stream
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.tables import column_names

from ..extract.tables import raw_table
from . import custom_fields

SQL_DIR = Path(os.environ.get("SALESLOFT_SQL_DIR") or Path(__file__).resolve().parents[3] / "sql")

# The staging tables the engagement metrics are built from: their builds queue
# the ids they changed for the metrics (defs/engagement/changes.py).
ENGAGEMENT_INPUTS = ("emails", "calls", "meetings", "successes", "cadence_memberships", "users")
EVERYTHING = "*"  # queued after a full rebuild: every id may have changed

# Merging stops paying off when this many ids changed, or a quarter of the table.
FULL_REBUILD_MIN_IDS = 100_000

# Postgres indexes: the id (merges delete and look up changed ids) and what the
# engagement SQL looks rows up by: the activity's time (one day's rows) and,
# for first touches, the person and cadence touched.
STAGING_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "emails": (("sent_at",), ("recipient_id", "cadence_id", "sent_at")),
    "calls": (("created_at",), ("called_person_id", "cadence_id", "created_at")),
    "cadence_memberships": (("added_at",), ("person_id", "cadence_id")),
    "meetings": (("created_at",), ("booked_by_user_id",)),
    "successes": (("succeeded_at",),),
    # Pipeline attribution: an opportunity's people, linked or by account.
    "opportunities": (("account_id",),),
    "opportunity_people": (("opportunity_id",), ("person_id",)),
    "people": (("account_id",),),
}


def _own_columns(stream: Stream) -> str:
    own = SQL_DIR / "staging" / f"{stream.name}.sql"
    return own.read_text() if own.exists() else ""


def staging_select(stream: Stream, ids: str = "", custom: str = "") -> str:
    """The SELECT of the stream's staging rows: the shared latest-version SQL plus the
    stream's own columns and its `custom` field columns (custom_fields.select_sql);
    `ids`, a WHERE clause on raw, restricts it to some ids."""
    own = _own_columns(stream)
    columns = (",\n" + own if own else "") + custom
    template = (SQL_DIR / "staging" / "_latest_version.sql").read_text()
    return template.replace("{columns}", columns).replace("{stream}", stream.name).replace("{ids}", ids)


def builtin_columns(stream: Stream) -> set[str]:
    """The staging table's columns before custom fields: raw's and those its own SQL adds
    (every word after an AS, which takes a type name or two more than needed)."""
    aliases = re.findall(r"\bAS\s+(\w+)", _own_columns(stream), flags=re.IGNORECASE)
    return {*column_names(raw_table(stream)), *(a.lower() for a in aliases)}


def fingerprint(stream: Stream, custom: str = "") -> str:
    """What the table's rows are made from: its SQL and the raw table's columns."""
    model = staging_select(stream, custom=custom) + "\n" + ",".join(column_names(raw_table(stream)))
    return hashlib.sha256(model.encode()).hexdigest()[:32]


def staging_indexes_sql(wh: Warehouse, stream: str) -> str:
    return wh.indexes_sql(f"staging.{stream}", (("id",), *STAGING_INDEXES.get(stream, ())), analyze=True)


@dataclass(frozen=True)
class StagingBuild:
    stream: str
    mode: Literal["full", "merged", "unchanged"]
    ids: int  # ids merged (0 for a full rebuild or no change)
    reason: str  # why a full rebuild, or what was merged

    @property
    def changed(self) -> bool:
        return self.mode != "unchanged"


def build_staging(wh: Warehouse, stream: Stream, force: bool = False) -> StagingBuild:
    """Brings staging.<stream> up to date with its raw table, in one transaction.

    Builds of one stream queue, never interleave."""
    name, table = stream.name, f"staging.{stream.name}"
    p = wh.PARAM
    with wh.transaction(serialise=table) as conn:
        [(exists,)] = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'"
            f" AND table_name = {p}",
            [name],
        ).fetchall()
        built = conn.execute(f"SELECT fingerprint FROM staging._builds WHERE stream = {p}", [name]).fetchall()
        [(pending,)] = conn.execute(
            f"SELECT count(DISTINCT id) FROM raw._changes WHERE stream = {p}", [name]
        ).fetchall()
        observed_all = not exists or force
        custom = _custom_columns(wh, conn, stream, everything=observed_all)
        current = fingerprint(stream, custom)
        reason = (
            "first build" if not exists
            else "forced" if force
            else "its model changed" if not built or built[0][0] != current
            else f"{pending} ids changed" if pending > FULL_REBUILD_MIN_IDS and pending > _rows(conn, table) // 4
            else None
        )
        if reason is not None:
            if not observed_all:  # a rebuild's columns are those of all of raw, as a first build's
                custom = _custom_columns(wh, conn, stream, everything=True)
            _rebuild(wh, conn, stream, fingerprint(stream, custom), custom)
            return StagingBuild(name, "full", 0, reason)
        if pending == 0:
            return StagingBuild(name, "unchanged", 0, "no raw version changed")
        _merge(wh, conn, stream, custom)
        return StagingBuild(name, "merged", pending, f"{pending} changed ids merged")


def _custom_columns(wh: Warehouse, conn: Any, stream: Stream, everything: bool) -> str:
    """The custom field columns' SQL for the stream ("" for a stream without custom fields),
    after observing the keys of the records about to be built."""
    if stream.name not in custom_fields.FIELD_TYPES:
        return ""
    custom_fields.observe(wh, conn, stream.name, everything)
    return custom_fields.select_sql(wh, custom_fields.columns(wh, conn, stream.name, builtin_columns(stream)))


def _rows(conn: Any, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _rebuild(wh: Warehouse, conn: Any, stream: Stream, current: str, custom: str) -> None:
    name, p = stream.name, wh.PARAM
    # Every change queued so far is in the raw rows this build reads.
    conn.execute(f"DELETE FROM raw._changes WHERE stream = {p}", [name])
    conn.execute(
        f"DROP TABLE IF EXISTS staging.{name};\n"
        f"CREATE TABLE staging.{name} AS\n{staging_select(stream, custom=custom)};\n" + staging_indexes_sql(wh, name)
    )
    conn.execute(f"DELETE FROM staging._builds WHERE stream = {p}", [name])
    conn.execute(f"INSERT INTO staging._builds VALUES ({p}, {p}, current_timestamp)", [name, current])
    if name in ENGAGEMENT_INPUTS:
        conn.execute(f"INSERT INTO staging._changes VALUES ({p}, {p})", [name, EVERYTHING])


def _merge(wh: Warehouse, conn: Any, stream: Stream, custom: str) -> None:
    name, p = stream.name, wh.PARAM
    text, id_type = wh.TYPES["text"], wh.TYPES[raw_table(stream).id_type]
    wh.temp_table(
        conn, "_claimed", f"AS SELECT DISTINCT CAST(id AS {id_type}) AS id FROM raw._changes WHERE stream = '{name}'"
    )
    # Claimed before the merge reads raw: a change committed in between is in
    # what the merge reads if its queue row went, and still queued if not.
    conn.execute(
        f"DELETE FROM raw._changes WHERE stream = {p} AND id IN (SELECT CAST(id AS {text}) FROM _claimed)", [name]
    )
    if name in ENGAGEMENT_INPUTS:
        conn.execute(f"INSERT INTO staging._changes SELECT {p}, CAST(id AS {text}) FROM _claimed", [name])
    conn.execute(f"DELETE FROM staging.{name} WHERE id IN (SELECT id FROM _claimed)")
    conn.execute(
        f"INSERT INTO staging.{name}\n{staging_select(stream, 'WHERE id IN (SELECT id FROM _claimed)', custom)}"
    )
