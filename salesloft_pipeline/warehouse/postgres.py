"""The team warehouse: Postgres.

Several runs write at once here (a backfill, the schedule, webhook applies),
each in its own process. Writers of the same thing (one day of one table,
one stream's tombstones, one staging table, the schema) take a transaction
advisory lock on its name first, so they queue instead of interleaving.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy.engine import make_url

from .base import Warehouse
from .tables import RawTable


# Raw tables are looked up by day (loads replace one) and by id (staging merges the changed ones).
RAW_INDEXES = (("id",), ("_partition",))


def index_name(table: str, columns: Sequence[str]) -> str:
    return f"{table.split('.')[-1]}__{'_'.join(columns)}"


class _Cursor:
    """Gives a psycopg2 cursor DuckDB's `execute(...).fetchall()` shape."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        self.cursor.execute(sql, params or None)
        return self.cursor


class PostgresWarehouse(Warehouse):
    TYPES = {
        "bigint": "BIGINT",
        "text": "TEXT",
        "timestamp": "TIMESTAMPTZ",
        "boolean": "BOOLEAN",
        "double": "DOUBLE PRECISION",
        "json": "JSONB",
        "date": "DATE",
    }
    PARAM = "%s"

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def connection(self) -> Iterator[_Cursor]:
        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = psycopg2.connect(dsn, options="-c timezone=UTC")
        except psycopg2.ProgrammingError:  # an invalid DSN: libpq's message quotes it, password included
            raise ValueError(f"SALESLOFT_WAREHOUSE_URL is not a valid Postgres URL: {self.describe()}") from None
        try:
            with conn, conn.cursor() as cursor:  # commits on success, rolls back on error
                yield _Cursor(cursor)
        finally:
            conn.close()

    def _serialise(self, conn: _Cursor, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"salesloft_pipeline:{key}"])

    def _columns(self, conn: _Cursor, table: str) -> set[str]:
        schema, name = table.split(".")
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, name],
        ).fetchall()
        return {column for (column,) in rows}

    def _create_raw_table(self, conn: _Cursor, table: RawTable) -> None:
        """As on DuckDB, but only when the table or a column is really missing, and with
        indexes on what loads and staging merges look rows up by (the day, the id).

        ALTER TABLE and CREATE INDEX take locks even when there is nothing to do,
        which would make every run's setup wait for (and block) every reader of the table."""
        present = self._columns(conn, table.qualified)
        if not (present and all(c.name in present for c in table.columns)):
            super()._create_raw_table(conn, table)
        schema, name = table.qualified.split(".")
        indexed = {
            index
            for (index,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", [schema, name]
            ).fetchall()
        }
        missing = [columns for columns in RAW_INDEXES if index_name(table.qualified, columns) not in indexed]
        if missing:
            conn.execute(self.indexes_sql(table.qualified, missing))

    def _add_column(self, conn: _Cursor, table: str, column: str, kind: str) -> None:
        if column not in self._columns(conn, table):
            super()._add_column(conn, table, column, kind)

    def temp_table(self, conn: _Cursor, name: str, definition: str, analyze: bool = False) -> None:
        conn.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        if definition.startswith("AS "):
            conn.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP {definition}")
        else:
            conn.execute(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
        if analyze:  # autovacuum never analyzes temporary tables
            conn.execute(f"ANALYZE {name}")

    def indexes_sql(self, table: str, indexes: Sequence[Sequence[str]], analyze: bool = False) -> str:
        statements = [
            f"CREATE INDEX IF NOT EXISTS {index_name(table, columns)} ON {table} ({', '.join(columns)});\n"
            for columns in indexes
        ]
        if analyze:  # CREATE TABLE AS leaves the planner without statistics until autovacuum comes by
            statements.append(f"ANALYZE {table};\n")
        return "".join(statements)

    def _insert_rows(self, conn: _Cursor, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        psycopg2.extras.execute_values(
            conn.cursor, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s", rows, page_size=1000
        )
