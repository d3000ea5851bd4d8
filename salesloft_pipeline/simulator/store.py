"""The simulator's in-memory database: records kept as serialized JSON.

Records are stored as orjson bytes (a list page is then a join of bytes, which
keeps the server fast and its memory small) with a sorted index on
(`updated_at` as UTC microseconds, id). Other sort orders are built on first
use and dropped when the table changes.

A record is identified by its stream's key: `id`, or the name for account
types, which have no id (the key is the store's, never added to a record).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from sortedcontainers import SortedList

from .catalog import BY_NAME, STREAMS

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Sort keys that are instants (compared as such, whatever their offset); others compare as values.
_INSTANT_SORTS = frozenset({"updated_at", "created_at", "start_time", "occurred_at"})


def _serialize(record: dict[str, Any]) -> bytes:
    # orjson's result can sit in an allocation several times its length
    # (8 KiB for a 1 KB record); copying keeps the store's memory near the data.
    return memoryview(orjson.dumps(record)).tobytes()


def instant_us(timestamp: str | None) -> int:
    """An ISO-8601 timestamp (any offset) as microseconds since the epoch, UTC."""
    if not timestamp:
        return 0
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Change:
    """One change to a record; `kind` is created, updated, deleted or completed."""

    stream: str
    kind: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Query:
    updated_gt: int | None = None
    updated_gte: int | None = None
    updated_lt: int | None = None
    updated_lte: int | None = None
    ids: tuple[Any, ...] | None = None
    sort_by: str = "updated_at"
    descending: bool = True
    offset: int = 0
    limit: int = 25

    def has_updated_filter(self) -> bool:
        return any(
            bound is not None
            for bound in (self.updated_gt, self.updated_gte, self.updated_lt, self.updated_lte)
        )

    def lower_us(self) -> int | None:
        """The smallest admitted instant, or None for no lower bound."""
        candidates = [b for b in (self.updated_gte,) if b is not None]
        if self.updated_gt is not None:
            candidates.append(self.updated_gt + 1)
        return max(candidates) if candidates else None

    def upper_us(self) -> int | None:
        """The largest admitted instant, or None for no upper bound."""
        candidates = [b for b in (self.updated_lte,) if b is not None]
        if self.updated_lt is not None:
            candidates.append(self.updated_lt - 1)
        return min(candidates) if candidates else None


class Table:
    """One stream's records."""

    def __init__(self, name: str, records: Iterable[dict[str, Any]] = (), key: str = "id"):
        self.name = name
        self.key = key  # the field that identifies a record ("id", or "name" for account types)
        self.blobs: dict[Any, bytes] = {}
        self.updated_us: dict[Any, int] = {}
        self.deleted: dict[Any, bytes] = {}  # last version of each deleted record
        self._by_updated = SortedList()
        self._orders: dict[str, SortedList] = {}  # other sort orders, built on first use
        self.load(records)

    # -- writing ---------------------------------------------------------
    def load(self, records: Iterable[dict[str, Any]]) -> None:
        """Adds many records at once (one sort instead of one insert each)."""
        keys = []
        key = self.key
        for record in records:
            record_id = record[key]
            us = instant_us(record.get("updated_at"))
            if record_id in self.blobs:
                self._by_updated.remove((self.updated_us[record_id], record_id))
            self.blobs[record_id] = _serialize(record)
            self.updated_us[record_id] = us
            keys.append((us, record_id))
        if keys:
            self._by_updated.update(keys)
            self._invalidate()

    def put(self, record: dict[str, Any]) -> bool:
        """Inserts or replaces a record; True when it is new."""
        record_id = record[self.key]
        created = record_id not in self.blobs
        if not created:
            self._by_updated.remove((self.updated_us[record_id], record_id))
        us = instant_us(record.get("updated_at"))
        self.blobs[record_id] = _serialize(record)
        self.updated_us[record_id] = us
        self._by_updated.add((us, record_id))
        self.deleted.pop(record_id, None)
        self._invalidate()
        return created

    def delete(self, record_id: Any) -> dict[str, Any] | None:
        blob = self.blobs.pop(record_id, None)
        if blob is None:
            return None
        self._by_updated.remove((self.updated_us.pop(record_id), record_id))
        self.deleted[record_id] = blob
        self._invalidate()
        return orjson.loads(blob)

    def _invalidate(self) -> None:
        self._orders.clear()

    # -- reading ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.blobs)

    def get(self, record_id: Any) -> dict[str, Any] | None:
        blob = self.blobs.get(record_id)
        return None if blob is None else orjson.loads(blob)

    def coerce_id(self, raw: str) -> Any:
        """A request's id (always text) in the table's id type; None if it cannot be one."""
        sample = next(iter(self.blobs), None)
        if sample is None and self.deleted:
            sample = next(iter(self.deleted))
        if isinstance(sample, str):
            return raw
        try:
            return int(raw)
        except ValueError:
            return None

    def ids(self) -> list[Any]:
        return list(self.blobs)

    def query(self, q: Query) -> tuple[list[bytes], int]:
        """One page of records in the requested order, and the total that match."""
        if q.ids is not None:
            keys = self._keys_for_ids(q)
        elif q.sort_by == "updated_at":
            lo, hi = self._updated_range(q)
            total = max(0, hi - lo)
            if q.descending:
                start, stop = hi - q.offset - q.limit, hi - q.offset
                keys = list(self._by_updated.islice(max(start, lo), max(stop, lo)))[::-1]
            else:
                start = lo + q.offset
                keys = list(self._by_updated.islice(start, min(start + q.limit, hi)))
            return [self.blobs[k[-1]] for k in keys], total
        else:
            keys = self._other_order(q)
        total = len(keys)
        if q.descending:
            keys = keys[::-1]
        page = keys[q.offset : q.offset + q.limit]
        return [self.blobs[k[-1]] for k in page], total

    def _updated_range(self, q: Query) -> tuple[int, int]:
        lower, upper = q.lower_us(), q.upper_us()
        lo = 0 if lower is None else self._by_updated.bisect_left((lower,))
        hi = len(self._by_updated) if upper is None else self._by_updated.bisect_left((upper + 1,))
        return lo, hi

    def _admits(self, q: Query, record_id: Any) -> bool:
        lower, upper = q.lower_us(), q.upper_us()
        us = self.updated_us[record_id]
        return (lower is None or us >= lower) and (upper is None or us <= upper)

    def _sort_key(self, sort_by: str, record_id: Any) -> tuple[Any, ...]:
        if sort_by == "updated_at":
            return (self.updated_us[record_id], record_id)
        if sort_by in ("id", self.key):
            return (record_id,)
        value = orjson.loads(self.blobs[record_id]).get(sort_by)
        if sort_by in _INSTANT_SORTS:
            return (instant_us(value), record_id)
        # Nulls first, then the values (names, titles, durations), ties by key.
        return (0, 0, record_id) if value is None else (1, value, record_id)

    def _keys_for_ids(self, q: Query) -> list[tuple[Any, ...]]:
        wanted = {i for i in q.ids or () if i in self.blobs}
        if q.has_updated_filter():
            wanted = {i for i in wanted if self._admits(q, i)}
        return sorted(self._sort_key(q.sort_by, i) for i in wanted)

    def _other_order(self, q: Query) -> list[tuple[Any, ...]]:
        ordered = self._orders.get(q.sort_by)
        if ordered is None:
            ordered = self._orders[q.sort_by] = SortedList(self._sort_key(q.sort_by, i) for i in self.blobs)
        if q.has_updated_filter():
            return [k for k in ordered if self._admits(q, k[-1])]
        return list(ordered)


class Store:
    """All streams' tables, and the listeners told of every change."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {s.name: Table(s.name, key=s.key) for s in STREAMS}
        self.listeners: list[Callable[[Change], None]] = []
        # The server reads on its event loop while `--live` and tests write from
        # other threads: one lock keeps every read and write whole.
        self.lock = threading.RLock()
        self._next_ids: dict[str, int] = {}
        # The newest updated_at any change gave a record: later changes must
        # come after it, or an incremental reader past it would miss them.
        self.latest_change_us = 0

    def table(self, stream: str) -> Table:
        if stream not in BY_NAME:
            raise KeyError(f"unknown stream {stream!r}")
        return self.tables[stream]

    def load(self, stream: str, records: Iterable[dict[str, Any]]) -> None:
        """Bulk load of generated history; tells no listener."""
        with self.lock:
            self.table(stream).load(records)

    def next_id(self, stream: str) -> int:
        """A fresh integer id for a new record of the stream."""
        with self.lock:
            if stream not in self._next_ids:
                table = self.table(stream)
                known = [i for i in (*table.blobs, *table.deleted) if isinstance(i, int)]
                self._next_ids[stream] = max(known, default=1000) + 1
            self._next_ids[stream] += 1
            return self._next_ids[stream] - 1

    def put(self, stream: str, record: dict[str, Any], kind: str | None = None) -> Change:
        """Creates or updates a record and tells the listeners.

        `kind` overrides the change kind (e.g. "completed" for tasks)."""
        with self.lock:
            created = self.table(stream).put(record)
            self.latest_change_us = max(self.latest_change_us, instant_us(record.get("updated_at")))
            change = Change(stream, kind or ("created" if created else "updated"), record)
            self._notify(change)
            return change

    def delete(self, stream: str, record_id: Any) -> Change | None:
        with self.lock:
            record = self.table(stream).delete(record_id)
            if record is None:
                return None
            change = Change(stream, "deleted", record)
            self._notify(change)
            return change

    def get(self, stream: str, record_id: Any) -> dict[str, Any] | None:
        with self.lock:
            return self.table(stream).get(record_id)

    def _notify(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)
