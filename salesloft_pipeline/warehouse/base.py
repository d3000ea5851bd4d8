"""The warehouse: one small interface over DuckDB (default) and Postgres.

Raw tables (`raw.<stream>`) hold every loaded version of every record; a load
of one partition replaces that partition in one transaction, so reruns and
overlapping backfills never duplicate. Staging and marts are SQL over them.
Side tables in `raw`:
- `_rejected`: records that failed validation, with the reason, by partition;
- `_tombstones`: ids deleted in SalesLoft (by webhook or missing from a full
  refresh), with the `updated_at` of the last version they hide;
- `_loads`: one row per committed partition load, so an interrupted backfill
  knows which days are done, with the API spend of reading it;
- `_changes`: the ids each write changed (a new, different or removed
  version, a tombstone set or lifted), queued for staging to merge. A reload
  that brings the same versions queues nothing, so nothing downstream redoes
  work for it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from .tables import FRAME_COLUMNS, RawTable, column_names, to_rows, utc

SCHEMAS = ("raw", "staging", "engagement")

Rejected = tuple[Mapping[str, Any] | str, str]  # (the record or its raw text, reason)

# What reading one partition cost, recorded in raw._loads beside it (None: not known).
API_USAGE_COLUMNS = ("api_requests", "api_cost", "api_429s", "api_budget_left")
ApiUsage = Mapping[str, int | None]


@dataclass(frozen=True)
class PartitionLoad:
    rows: int  # rows the day holds now
    changed: int  # ids whose versions in the day differ from the load before


class Warehouse(ABC):
    """Engine-specific parts are the connection, the types and the bulk insert."""

    TYPES: Mapping[str, str]

    # -- engine-specific ---------------------------------------------------
    @abstractmethod
    def connection(self) -> contextlib.AbstractContextManager[Any]:
        """A connection inside one transaction: committed on success, rolled back on error."""

    @abstractmethod
    def _insert_rows(self, conn: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        ...

    @abstractmethod
    def describe(self) -> str:
        """Where the warehouse is, with no secret in it."""

    # -- schema --------------------------------------------------------------
    def setup(self, tables: Iterable[RawTable]) -> None:
        """Creates schemas and tables, adding columns that new table specs name."""
        t = self.TYPES
        with self.connection() as conn:
            self._serialise(conn, "setup")  # CREATE ... IF NOT EXISTS races with itself on Postgres
            for schema in SCHEMAS:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS raw._rejected (stream {text} NOT NULL, _partition {date},"
                " _extracted_at {timestamp} NOT NULL, reason {text} NOT NULL, payload {text})".format(**t)
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS raw._tombstones (stream {text} NOT NULL, id {text} NOT NULL,"
                " hides_through {timestamp}, recorded_at {timestamp} NOT NULL, source {text} NOT NULL,"
                " PRIMARY KEY (stream, id))".format(**t)
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS raw._loads (stream {text} NOT NULL, _partition {date} NOT NULL,"
                " rows {bigint} NOT NULL, rejected {bigint} NOT NULL, loaded_at {timestamp} NOT NULL,"
                " PRIMARY KEY (stream, _partition))".format(**t)
            )
            for column in API_USAGE_COLUMNS:
                self._add_column(conn, "raw._loads", column, t["bigint"])
            conn.execute("CREATE TABLE IF NOT EXISTS raw._changes (stream {text} NOT NULL, id {text} NOT NULL)".format(**t))
            # Staging's own bookkeeping: what each table was built from, and the
            # ids it changed, queued for the models built on it.
            conn.execute(
                "CREATE TABLE IF NOT EXISTS staging._builds (stream {text} PRIMARY KEY, fingerprint {text} NOT NULL,"
                " built_at {timestamp} NOT NULL)".format(**t)
            )
            conn.execute("CREATE TABLE IF NOT EXISTS staging._changes (stream {text} NOT NULL, id {text} NOT NULL)".format(**t))
            for table in tables:
                self._create_raw_table(conn, table)

    def _create_raw_table(self, conn: Any, table: RawTable) -> None:
        t = self.TYPES
        columns = [f"id {t[table.id_type]} NOT NULL"]
        columns += [f"{c.name} {t[c.type]}" for c in table.columns]
        columns += [f"{name} {t[kind]}" for name, kind in FRAME_COLUMNS]
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table.qualified} ({', '.join(columns)})")
        for column in table.columns:  # a column added to the spec after the table was made
            self._add_column(conn, table.qualified, column.name, t[column.type])

    def _add_column(self, conn: Any, table: str, column: str, kind: str) -> None:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")

    # -- loads -------------------------------------------------------------
    def replace_partition(
        self,
        table: RawTable,
        partition: date,
        records: Sequence[Mapping[str, Any]],
        rejected: Sequence[Rejected] = (),
        extracted_at: datetime | None = None,
        api_usage: ApiUsage | None = None,
    ) -> PartitionLoad:
        """Replaces one day of `table` with `records`, all in one transaction,
        queueing the ids whose versions in that day changed."""
        extracted_at = extracted_at or datetime.now(timezone.utc)
        rows = to_rows(table, records, partition, extracted_at)
        p = self.PARAM
        in_day = f"SELECT id, record FROM {table.qualified} WHERE _partition = {p}"
        with self.connection() as conn:
            # Two loads of one day at once (a backfill and the schedule) would each
            # miss the other's uncommitted rows and both insert theirs.
            self._serialise(conn, f"{table.qualified}/{partition}")
            self._load_temp(conn, table, rows)
            changed = self._queue_changes(
                conn,
                table.name,
                f"SELECT id FROM (({in_day} EXCEPT SELECT id, record FROM _new)"
                f" UNION ALL (SELECT id, record FROM _new EXCEPT {in_day})) AS changed",
                [partition, partition],
            )
            # A version the day holds already stays as it is (and keeps the time it was
            # first extracted): only what changed is written, so staging need not look at it.
            conn.execute(
                f"DELETE FROM {table.qualified} WHERE _partition = {p} AND NOT EXISTS"
                f" (SELECT 1 FROM _new WHERE _new.id = {table.qualified}.id AND _new.record = {table.qualified}.record)",
                [partition],
            )
            conn.execute(
                f"INSERT INTO {table.qualified} SELECT * FROM _new WHERE NOT EXISTS (SELECT 1 FROM {table.qualified} AS old"
                f" WHERE old._partition = {p} AND old.id = _new.id AND old.record = _new.record)",
                [partition],
            )
            self._replace_rejected(conn, table.name, partition, rejected, extracted_at)
            self._record_load(conn, table.name, partition, len(rows), len(rejected), extracted_at, api_usage or {})
        return PartitionLoad(len(rows), changed)

    def replace_snapshot(
        self,
        table: RawTable,
        records: Sequence[Mapping[str, Any]],
        rejected: Sequence[Rejected] = (),
        extracted_at: datetime | None = None,
        listed_invalid: Iterable[Any] = (),
    ) -> tuple[int, int]:
        """Replaces a full-refresh table with `records`, in one transaction.

        An id missing from the list keeps its last version and gets a
        tombstone, so staging drops it but the warehouse remembers it.
        `listed_invalid` are ids the list did hold, in records that failed
        validation: they are present, so they keep their last good version
        and are never tombstoned. Returns (rows loaded, ids newly marked deleted)."""
        extracted_at = extracted_at or datetime.now(timezone.utc)
        rows = to_rows(table, records, None, extracted_at)
        valid = {str(r["id"]) for r in records}
        invalid = {str(i) for i in listed_invalid} - valid
        text, timestamp, p = self.TYPES["text"], self.TYPES["timestamp"], self.PARAM
        as_text = f"CAST({table.qualified}.id AS {text})"
        tombstoned = f"EXISTS (SELECT 1 FROM raw._tombstones x WHERE x.stream = {p} AND x.id = {as_text})"
        listed_valid = f"{as_text} IN (SELECT id FROM _present WHERE valid)"
        listed_but_invalid = f"{as_text} IN (SELECT id FROM _present WHERE NOT valid)"
        with self.connection() as conn:
            self._serialise(conn, f"deletions/{table.name}")
            previous = conn.execute(
                f"SELECT {as_text}, max(CAST(record ->> 'updated_at' AS {timestamp}))"
                f" FROM {table.qualified} WHERE NOT {tombstoned} GROUP BY id",
                [table.name],
            ).fetchall()
            vanished = [(i, hides) for i, hides in previous if i not in valid and i not in invalid]
            for record_id, hides in vanished:
                self._tombstone(conn, table.name, record_id, hides, extracted_at, "full_refresh")
            revived = self._untombstone(conn, table.name, valid | invalid)
            self.temp_table(conn, "_present", f"id {text}, valid {self.TYPES['boolean']}")
            self._insert_rows(conn, "_present", ["id", "valid"], [(i, True) for i in valid] + [(i, False) for i in invalid])
            self._load_temp(conn, table, rows)
            # What goes: every version of a listed id (its listed version replaces
            # them, even under a webhook's tombstone) and of a live id no longer
            # listed; what stays: the last versions of deleted ids, and of listed
            # ids whose record is invalid now.
            replaced = f"{listed_valid} OR NOT ({tombstoned} OR {listed_but_invalid})"
            in_table = f"SELECT id, record FROM {table.qualified} WHERE {replaced}"
            self._queue_changes(
                conn,
                table.name,
                f"SELECT id FROM (({in_table} EXCEPT SELECT id, record FROM _new)"
                f" UNION ALL (SELECT id, record FROM _new EXCEPT {in_table})) AS changed",
                [table.name, table.name],
            )
            self._queue_ids(conn, table.name, [i for i, _ in vanished] + revived)
            unchanged = f"EXISTS (SELECT 1 FROM _new WHERE _new.id = {table.qualified}.id AND _new.record = {table.qualified}.record)"
            conn.execute(f"DELETE FROM {table.qualified} WHERE ({replaced}) AND NOT {unchanged}", [table.name])
            conn.execute(
                f"INSERT INTO {table.qualified} SELECT * FROM _new WHERE NOT EXISTS (SELECT 1 FROM {table.qualified} AS old"
                " WHERE old._partition IS NULL AND old.id = _new.id AND old.record = _new.record)"
            )
            self._replace_rejected(conn, table.name, None, rejected, extracted_at)
        return len(rows), len(vanished)

    def upsert_records(
        self, table: RawTable, records: Sequence[Mapping[str, Any]], source: str = "webhook"
    ) -> int:
        """Adds record versions outside any partition (webhook events).

        Staging keeps the newest `updated_at` per id, so order does not matter;
        a version the table holds already (the same event applied twice) is
        not added again. Returns the versions added."""
        rows = to_rows(table, records, None, datetime.now(timezone.utc), source)
        with self.connection() as conn:
            # Two apply runs at once would each miss the other's uncommitted copy of a version.
            self._serialise(conn, f"{table.qualified}/webhook")
            self._load_temp(conn, table, rows)
            # The versions held of these ids first: found by id alone, a cheap column to scan,
            # before the records (large JSON) are compared.
            self.temp_table(
                conn, "_held", f"AS SELECT id, record FROM {table.qualified} WHERE id IN (SELECT id FROM _new)"
            )
            conn.execute(
                "DELETE FROM _new WHERE EXISTS (SELECT 1 FROM _held WHERE _held.id = _new.id AND _held.record = _new.record)"
            )
            added = self._queue_changes(conn, table.name, "SELECT id FROM _new")
            conn.execute(f"INSERT INTO {table.qualified} SELECT * FROM _new")
        return added

    def mark_deleted(
        self, stream: str, deletions: Iterable[tuple[Any, Any]], source: str = "webhook"
    ) -> int:
        """Tombstones (id, updated_at of the deleted version) pairs of one stream."""
        now = datetime.now(timezone.utc)
        ids = []
        with self.connection() as conn:
            self._serialise(conn, f"deletions/{stream}")
            for record_id, updated_at in deletions:
                self._tombstone(conn, stream, str(record_id), utc(updated_at), now, source)
                ids.append(str(record_id))
            self._queue_ids(conn, stream, ids)
        return len(ids)

    def loaded_partitions(self, stream: str) -> dict[date, tuple[int, datetime]]:
        """Days of `stream` whose load committed: (rows, extraction time) by day."""
        return self.loaded_partitions_by_stream([stream])[stream]

    def loaded_partitions_by_stream(self, streams: Sequence[str]) -> dict[str, dict[date, tuple[int, datetime]]]:
        """`loaded_partitions` of several streams in one query (none loaded before setup)."""
        loaded: dict[str, dict[date, tuple[int, datetime]]] = {stream: {} for stream in streams}
        if not streams or "_loads" not in self.tables("raw"):
            return loaded
        listed = ", ".join([self.PARAM] * len(streams))
        rows = self.query(
            f"SELECT stream, _partition, rows, loaded_at FROM raw._loads WHERE stream IN ({listed})", list(streams)
        )
        for stream, day, count, loaded_at in rows:
            loaded[stream][day] = (count, utc(loaded_at))
        return loaded

    def tables(self, schema: str) -> set[str]:
        """Names of the tables in `schema`."""
        rows = self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = {self.PARAM}", [schema]
        )
        return {name for (name,) in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    def execute_script(self, sql: str, serialise: str | None = None) -> None:
        """Runs SQL statements (a staging or mart model) in one transaction.

        Scripts given the same `serialise` name (the table they rebuild) run
        one after another, never interleaved."""
        with self.transaction(serialise) as conn:
            conn.execute(sql)  # both engines run several statements in one call

    @contextlib.contextmanager
    def transaction(self, serialise: str | None = None) -> Iterator[Any]:
        """A connection inside one transaction, as `connection()`; transactions given
        the same `serialise` name run one after another, never interleaved."""
        with self.connection() as conn:
            if serialise:
                self._serialise(conn, serialise)
            yield conn

    def indexes_sql(self, table: str, indexes: Sequence[Sequence[str]], analyze: bool = False) -> str:
        """SQL that gives `table` these indexes (column lists) if it lacks them, and
        with `analyze` fresh planner statistics. Postgres needs them to find one
        day's rows without scanning everything; DuckDB's zone maps do that
        already, and its indexes would slow every load, so there it is empty."""
        return ""

    # -- helpers -------------------------------------------------------------
    PARAM = "?"

    def _serialise(self, conn: Any, key: str) -> None:
        """Makes transactions that name the same `key` run one after another.

        Nothing to do where only one writer at a time can open the warehouse
        (DuckDB); Postgres takes a lock held until the transaction ends."""

    def _replace_rejected(
        self, conn: Any, stream: str, partition: date | None, rejected: Sequence[Rejected], at: datetime
    ) -> None:
        p = self.PARAM
        if partition is None:
            conn.execute(f"DELETE FROM raw._rejected WHERE stream = {p} AND _partition IS NULL", [stream])
        else:
            conn.execute(f"DELETE FROM raw._rejected WHERE stream = {p} AND _partition = {p}", [stream, partition])
        rows = [
            (stream, partition, at, reason, payload if isinstance(payload, str) else _json(payload))
            for payload, reason in rejected
        ]
        self._insert_rows(conn, "raw._rejected", ["stream", "_partition", "_extracted_at", "reason", "payload"], rows)

    def _record_load(
        self, conn: Any, stream: str, partition: date, rows: int, rejected: int, at: datetime, api_usage: ApiUsage
    ) -> None:
        p = self.PARAM
        conn.execute(f"DELETE FROM raw._loads WHERE stream = {p} AND _partition = {p}", [stream, partition])
        columns = ["stream", "_partition", "rows", "rejected", "loaded_at", *API_USAGE_COLUMNS]
        values = [stream, partition, rows, rejected, at, *(api_usage.get(c) for c in API_USAGE_COLUMNS)]
        conn.execute(
            f"INSERT INTO raw._loads ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})", values
        )

    def temp_table(self, conn: Any, name: str, definition: str, analyze: bool = False) -> None:
        """A temporary table gone with the transaction; `definition` is a column list or `AS SELECT ...`.
        `analyze`: give the planner the table's statistics (Postgres; queries joining it
        to large tables then look rows up by index instead of scanning)."""
        body = definition if definition.startswith("AS ") else f"({definition})"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} {body}")

    def _load_temp(self, conn: Any, table: RawTable, rows: list[tuple[Any, ...]]) -> None:
        """`_new`: a temporary copy of `table`'s layout holding `rows`, to compare before replacing."""
        self.temp_table(conn, "_new", f"AS SELECT * FROM {table.qualified} WHERE 1 = 0")
        self._insert_rows(conn, "_new", column_names(table), rows)

    def _queue_changes(self, conn: Any, stream: str, ids_sql: str, params: Sequence[Any] = ()) -> int:
        """Queues for staging the ids that `ids_sql` selects; returns how many distinct ids."""
        text, p = self.TYPES["text"], self.PARAM
        conn.execute(
            f"INSERT INTO raw._changes (stream, id) SELECT DISTINCT {p}, CAST(id AS {text}) FROM ({ids_sql}) AS ids",
            [stream, *params],
        )
        [(count,)] = conn.execute(
            f"SELECT count(DISTINCT id) FROM ({ids_sql}) AS ids", list(params)
        ).fetchall()
        return count

    def _queue_ids(self, conn: Any, stream: str, ids: Sequence[str]) -> None:
        self._insert_rows(conn, "raw._changes", ["stream", "id"], [(stream, i) for i in dict.fromkeys(ids)])

    def _tombstone(
        self, conn: Any, stream: str, record_id: str, hides: datetime | None, at: datetime, source: str
    ) -> None:
        p = self.PARAM
        conn.execute(f"DELETE FROM raw._tombstones WHERE stream = {p} AND id = {p}", [stream, record_id])
        conn.execute(
            f"INSERT INTO raw._tombstones VALUES ({p}, {p}, {p}, {p}, {p})",
            [stream, record_id, hides, at, source],
        )

    def _untombstone(self, conn: Any, stream: str, present: set[str]) -> list[str]:
        """Ids a full refresh sees again are live again; returns them."""
        p = self.PARAM
        tombstoned = conn.execute(
            f"SELECT id FROM raw._tombstones WHERE stream = {p} AND source = 'full_refresh'", [stream]
        ).fetchall()
        revived = [record_id for (record_id,) in tombstoned if record_id in present]
        for record_id in revived:
            conn.execute(f"DELETE FROM raw._tombstones WHERE stream = {p} AND id = {p}", [stream, record_id])
        return revived


def _json(record: Mapping[str, Any]) -> str:
    import json

    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
