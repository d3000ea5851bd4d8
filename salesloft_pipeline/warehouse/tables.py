"""What a raw table looks like, and how a SalesLoft record becomes a row of it.

Every raw table has the same frame: the record's id, typed columns pulled out
of the record (references as `<name>_id`, timestamps in UTC), the whole record
as JSON, the partition it was loaded into and when it was extracted. The
warehouse knows nothing of SalesLoft's streams: the Dagster definitions
describe each table with a `RawTable` built from the stream registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Literal

ColumnType = Literal["bigint", "text", "timestamp", "boolean", "double"]


@dataclass(frozen=True)
class Column:
    """A typed column read from `path` in the record (e.g. ("user", "id"))."""

    name: str
    type: ColumnType
    path: tuple[str, ...]


@dataclass(frozen=True)
class RawTable:
    name: str  # the stream's name: raw.<name>
    id_type: Literal["bigint", "text"] = "bigint"
    columns: tuple[Column, ...] = ()
    partitioned: bool = True  # daily partitions on updated_at; else full refresh

    @property
    def qualified(self) -> str:
        return f"raw.{self.name}"


# Columns every raw table has besides `id` and the typed ones, in order.
FRAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("record", "json"),
    ("_partition", "date"),
    ("_extracted_at", "timestamp"),
    ("_source", "text"),
)


def utc(value: Any) -> datetime | None:
    """A SalesLoft timestamp (any offset) as an aware UTC datetime; None if absent."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _dig(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _typed(value: Any, column: Column) -> Any:
    if value is None:
        return None
    if column.type == "timestamp":
        return utc(value)
    if column.type == "bigint":
        # An id that is not a number stays in the record's JSON; the column stays empty.
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if column.type == "double":
        return float(value)
    if column.type == "boolean":
        return bool(value)
    return str(value)


def to_row(
    table: RawTable,
    record: Mapping[str, Any],
    partition: date | None,
    extracted_at: datetime,
    source: str = "poll",
) -> tuple[Any, ...]:
    """The row of `table` for one record, in column order (see `column_names`)."""
    record_id = record["id"]
    return (
        str(record_id) if table.id_type == "text" else int(record_id),
        *(_typed(_dig(record, c.path), c) for c in table.columns),
        json.dumps(record, separators=(",", ":"), ensure_ascii=False),
        partition,
        extracted_at,
        source,
    )


def column_names(table: RawTable) -> list[str]:
    return ["id", *(c.name for c in table.columns), *(name for name, _ in FRAME_COLUMNS)]


def to_rows(
    table: RawTable,
    records: Iterable[Mapping[str, Any]],
    partition: date | None,
    extracted_at: datetime,
    source: str = "poll",
) -> list[tuple[Any, ...]]:
    return [to_row(table, r, partition, extracted_at, source) for r in records]
