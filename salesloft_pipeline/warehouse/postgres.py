"""The team warehouse: Postgres."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy.engine import make_url

from .base import Warehouse


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

    def _insert_rows(self, conn: _Cursor, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        psycopg2.extras.execute_values(
            conn.cursor, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s", rows, page_size=1000
        )
