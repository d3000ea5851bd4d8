"""Storage for the pipeline: DuckDB by default, Postgres for teams."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Warehouse
from .duckdb import DuckDBWarehouse, WarehouseBusy
from .postgres import PostgresWarehouse
from .tables import Column, RawTable

__all__ = [
    "Column",
    "DuckDBWarehouse",
    "PostgresWarehouse",
    "RawTable",
    "Warehouse",
    "WarehouseBusy",
    "default_home",
    "open_warehouse",
]


def default_home() -> Path:
    """SALESLOFT_PIPELINE_HOME, or `.salesloft_pipeline` in the working directory."""
    return Path(os.environ.get("SALESLOFT_PIPELINE_HOME") or ".salesloft_pipeline").resolve()


def open_warehouse(url: str | None = None, lock_timeout: float | None = None) -> Warehouse:
    """The warehouse at `url` (SALESLOFT_WAREHOUSE_URL's format).

    `postgresql://...` is Postgres; a plain file path, or `duckdb:///PATH` as
    SQLAlchemy writes it (`duckdb:////abs/file.duckdb` for an absolute path), is
    a DuckDB file. With no `url`, SALESLOFT_WAREHOUSE_URL is read; unset, it means
    `warehouse.duckdb` under the home folder. `lock_timeout`: how long a DuckDB
    operation waits for another process to let go of the file (default 600 s)."""
    wait = {} if lock_timeout is None else {"lock_timeout": lock_timeout}
    url = url or os.environ.get("SALESLOFT_WAREHOUSE_URL")
    if not url:
        return DuckDBWarehouse(default_home() / "warehouse.duckdb", **wait)
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        return PostgresWarehouse(url)
    if url.startswith("duckdb:///"):
        url = url.removeprefix("duckdb:///")
    if "://" in url:
        raise ValueError(
            f"SALESLOFT_WAREHOUSE_URL must be postgresql://..., duckdb:///path or a file path, not {url.split('://')[0]}://..."
        )
    return DuckDBWarehouse(url, **wait)
