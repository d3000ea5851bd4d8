"""The embedded default: one DuckDB file.

DuckDB lets one process at a time open a file for writing. Each operation
opens the file, does its work in one transaction and closes it, and waits
(with backoff) while another process holds it, so a backfill, the schedule and
a webhook apply can run at once: they take turns instead of failing.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .base import Warehouse

LOCK_MESSAGE = "Could not set lock on file"


class WarehouseBusy(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


class DuckDBWarehouse(Warehouse):
    TYPES = {
        "bigint": "BIGINT",
        "text": "VARCHAR",
        "timestamp": "TIMESTAMPTZ",
        "boolean": "BOOLEAN",
        "double": "DOUBLE",
        "json": "JSON",
        "date": "DATE",
    }

    def __init__(self, path: str | Path, lock_timeout: float = 600.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(str(self.path))
                conn.execute("SET TimeZone = 'UTC'")
                return conn
            except duckdb.IOException as error:
                if LOCK_MESSAGE not in str(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusy(
                        f"{self.path} was held by another process for over {self.lock_timeout:.0f} s"
                    ) from error
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 2.0)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN TRANSACTION")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def _insert_rows(self, conn: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        # Registered on this connection rather than found by DuckDB's replacement
        # scan of Python variables, which can fail when another thread of the
        # process has the same file open.
        conn.register("_rows", pd.DataFrame.from_records(rows, columns=columns))
        try:
            names = ", ".join(columns)
            conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _rows")
        finally:
            conn.unregister("_rows")
