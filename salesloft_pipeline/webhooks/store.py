"""The event store: every accepted webhook delivery, durably, in arrival order.

One small interface over two engines:
- SQLite (default): `events.sqlite` under SALESLOFT_PIPELINE_HOME, in WAL mode
  with `synchronous=FULL`. The endpoint answers 2xx only after the commit,
  and SalesLoft never resends an acknowledged delivery, so an acknowledged
  event must survive a power cut, not only a crash of our process: FULL
  fsyncs the WAL at every commit (NORMAL would only survive process crashes).
  The cost of that fsync is shared by every delivery of a batch (group
  commit, see `GroupCommitter`), so durability does not cap throughput.
- Postgres when SALESLOFT_EVENTS_URL is `postgresql://...` (table
  `salesloft_webhook_events`), committed with the server's default
  `synchronous_commit=on`.

It is never the warehouse file: the endpoint keeps answering while a run
holds the warehouse.

Events get an increasing sequence number (`seq`); a sensor keeps the last
number it handed to a run as its cursor. Commits are serialised (SQLite has
one writer; on Postgres each commit takes an advisory lock first), so an event
becomes visible only after every event with a smaller `seq`: a reader that
saw `seq` N will never later find a new event below N.

A duplicate delivery (the same event type and the same raw bytes) is stored
once: its dedupe key is the SHA-256 of both. SalesLoft sends no delivery id.

Retention: `prune` deletes old events the caller knows were applied, in
batches (the endpoint's appends wait for one batch at most). Sequence numbers
are never reused (SQLite AUTOINCREMENT, a Postgres identity), and the latest
event is always kept, so `last_seq()` never goes back.

Applied through: the apply job calls `mark_applied(after, through)` when a run
of that range succeeded; ranges may finish in any order. The store keeps a
one-row marker, `applied_through`: the highest N such that every event with
seq <= N has been applied. It moves only over marked ranges and over numbers
that hold no event (a number a duplicate used up on Postgres, or an applied
event pruned since); marked ranges above a gap wait in a small table until the
gap is filled. So it never overstates, and `progress()` counts as unapplied
exactly the events no marked range covers. The metrics collector reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

EVENTS_URL_VARIABLE = "SALESLOFT_EVENTS_URL"
PG_TABLE = "salesloft_webhook_events"
PG_APPLIED = "salesloft_webhook_applied"  # one row: the applied-through marker
PG_APPLIED_RANGES = "salesloft_webhook_applied_ranges"  # marked ranges above it
# pg_advisory_xact_lock key that serialises commits across endpoint processes.
PG_COMMIT_LOCK = 0x5A1E5_10F7
# Rows deleted per prune transaction: a few tens of ms of writer lock on SQLite.
PRUNE_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class NewEvent:
    """A verified delivery, about to be stored."""

    event_type: str
    body: bytes
    known: bool  # False: an event type the pipeline does not apply (stored, flagged)
    received_at: float  # Unix seconds

    @property
    def dedupe_key(self) -> bytes:
        return dedupe_key(self.event_type, self.body)


def dedupe_key(event_type: str, body: bytes) -> bytes:
    return hashlib.sha256(event_type.encode() + b"\n" + body).digest()


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_type: str
    body: bytes
    known: bool
    received_at: datetime


@dataclass(frozen=True)
class Progress:
    """How far applying has come, read in one snapshot."""

    last_seq: int  # the highest sequence number stored (0: none yet)
    applied_through: int  # every event with seq <= this one is applied
    unapplied: int  # events stored that no marked range covers
    oldest_unapplied: datetime | None  # received_at of the oldest of those
    last_apply: datetime | None  # when a range was last marked applied


class EventStore(ABC):
    """Append (durably, deduplicated) and read events by sequence number."""

    @abstractmethod
    def setup(self) -> None:
        """Creates the table if needed."""

    @abstractmethod
    def append_many(self, events: Sequence[NewEvent]) -> list[bool]:
        """Stores `events` in one durable commit, in order. For each: True if new,
        False if a duplicate of an event already stored. Returns after the commit."""

    @abstractmethod
    def read(self, after_seq: int, through_seq: int | None = None, limit: int | None = None) -> list[StoredEvent]:
        """Events with after_seq < seq <= through_seq, in seq order."""

    @abstractmethod
    def last_seq(self) -> int:
        """The highest sequence number stored (0 when empty)."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def ping(self) -> None:
        """Raises if the store does not answer."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, with no password in it."""

    def exists(self) -> bool:
        return True

    def start(self) -> None:
        """Starts background upkeep, if the engine needs any (the endpoint calls this)."""

    def reset(self) -> None:
        """Drops cached connections (after an error); the next call reconnects."""

    def close(self) -> None:
        self.reset()

    def append(self, event: NewEvent) -> bool:
        return self.append_many([event])[0]

    def prune(
        self, through_seq: int, received_before: datetime, batch: int = PRUNE_BATCH_ROWS, max_rows: int | None = None
    ) -> int:
        """Deletes the events with seq <= through_seq received before `received_before`
        (timezone-aware), in transactions of at most `batch` rows, at most `max_rows`
        in all; returns how many. The caller must know every event up to `through_seq`
        was applied. The latest event stays, whatever `through_seq` says."""
        if received_before.tzinfo is None:
            raise ValueError("received_before must be timezone-aware")
        through_seq = min(through_seq, self.last_seq() - 1)
        total = 0
        while through_seq > 0 and (max_rows is None or total < max_rows):
            limit = batch if max_rows is None else min(batch, max_rows - total)
            deleted = self._delete_batch(through_seq, received_before, limit)
            total += deleted
            if deleted < limit:
                break
        return total

    @abstractmethod
    def _delete_batch(self, through_seq: int, received_before: datetime, limit: int) -> int:
        """One committed transaction of `prune`: deletes at most `limit` matching events."""

    # -- applied through (see the module doc) ------------------------------------------
    PARAM = "?"
    EVENTS_TABLE = "events"
    APPLIED_TABLE = "applied"
    RANGES_TABLE = "applied_ranges"
    LOCK_MARKER = ""  # what makes the marker's SELECT hold its row until the commit

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API cursor in one transaction that takes the write lock (committed at the end)."""

    @abstractmethod
    def _to_db_time(self, unix: float) -> Any: ...

    @abstractmethod
    def _from_db_time(self, value: Any) -> datetime: ...

    def mark_applied(self, after_seq: int, through_seq: int) -> int:
        """Records that the events with after_seq < seq <= through_seq are applied; returns
        the new applied-through marker. Idempotent; ranges may come in any order."""
        if through_seq < after_seq:
            raise ValueError(f"empty range: through_seq {through_seq} < after_seq {after_seq}")
        self.setup()  # a store made before the marker existed gets its tables here
        p, ranges = self.PARAM, self.RANGES_TABLE
        with self._transaction() as cursor:
            cursor.execute(f"SELECT through_seq FROM {self.APPLIED_TABLE} WHERE id = 1{self.LOCK_MARKER}")
            (marker,) = cursor.fetchone()
            if through_seq > marker:
                cursor.execute(
                    f"INSERT INTO {ranges} (after_seq, through_seq) VALUES ({p}, {p}) ON CONFLICT DO NOTHING",
                    [after_seq, through_seq],
                )
            while True:  # move over the ranges that start at or below the marker, or past a gap of no events
                cursor.execute(
                    f"SELECT after_seq, through_seq FROM {ranges} WHERE through_seq > {p} ORDER BY after_seq LIMIT 1",
                    [marker],
                )
                row = cursor.fetchone()
                if row is None:
                    break
                after, through = row
                if after > marker:
                    cursor.execute(
                        f"SELECT 1 FROM {self.EVENTS_TABLE} WHERE seq > {p} AND seq <= {p} LIMIT 1", [marker, after]
                    )
                    if cursor.fetchone() is not None:
                        break  # an event below this range is not applied yet
                marker = through
            cursor.execute(f"DELETE FROM {ranges} WHERE through_seq <= {p}", [marker])
            cursor.execute(
                f"UPDATE {self.APPLIED_TABLE} SET through_seq = {p}, last_apply = {p} WHERE id = 1",
                [marker, self._to_db_time(time.time())],
            )
        return int(marker)

    def progress(self) -> Progress:
        """Last sequence number, applied-through marker and what is left to apply, in one snapshot."""
        p = self.PARAM
        with self._snapshot() as cursor:
            cursor.execute(f"SELECT through_seq, last_apply FROM {self.APPLIED_TABLE} WHERE id = 1")
            row = cursor.fetchone()
            marker, last_apply = row if row is not None else (0, None)
            cursor.execute(f"SELECT coalesce(max(seq), 0) FROM {self.EVENTS_TABLE}")
            (last,) = cursor.fetchone()
            cursor.execute(
                f"SELECT count(*), min(received_at) FROM {self.EVENTS_TABLE} e WHERE seq > {p} AND NOT EXISTS"
                f" (SELECT 1 FROM {self.RANGES_TABLE} r WHERE e.seq > r.after_seq AND e.seq <= r.through_seq)",
                [marker],
            )
            unapplied, oldest = cursor.fetchone()
        return Progress(
            last_seq=int(last),
            applied_through=int(marker),
            unapplied=int(unapplied),
            oldest_unapplied=None if oldest is None else self._from_db_time(oldest),
            last_apply=None if last_apply is None else self._from_db_time(last_apply),
        )

    @abstractmethod
    def _snapshot(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API cursor in one read-only snapshot."""


class SQLiteEventStore(EventStore):
    """The embedded default. One writer connection (the endpoint's), readers open their own."""

    CHECKPOINT_SECONDS = 1.0

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Checkpoints the WAL from a thread of its own, every second.

        Left to SQLite alone, the commit that crosses the WAL size limit
        copies the whole WAL into the database and fsyncs it before it
        returns: every few seconds a batch of deliveries would wait for that.
        A PASSIVE checkpoint here copies most of it beside the commits; the
        writer's own automatic checkpoint then has little left to do, and
        still lets the WAL restart so it stays small under sustained load."""
        if self._checkpointer is None:
            self._stopping.clear()
            self._checkpointer = threading.Thread(target=self._checkpoint, name="event-store-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint(self) -> None:
        conn = None
        while not self._stopping.wait(self.CHECKPOINT_SECONDS):
            try:
                conn = conn or self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
            self._checkpointer = None
        self.reset()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def setup(self) -> None:
        with self._reader() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " dedupe_key BLOB NOT NULL UNIQUE,"
                " event_type TEXT NOT NULL,"
                " known INTEGER NOT NULL,"
                " received_at REAL NOT NULL,"
                " body BLOB NOT NULL)"
            )
            # For `prune`: it finds old events without scanning the recent ones.
            conn.execute("CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS applied (id INTEGER PRIMARY KEY CHECK (id = 1),"
                " through_seq INTEGER NOT NULL, last_apply REAL)"
            )
            conn.execute("INSERT INTO applied (id, through_seq) VALUES (1, 0) ON CONFLICT DO NOTHING")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS applied_ranges (after_seq INTEGER NOT NULL,"
                " through_seq INTEGER NOT NULL, PRIMARY KEY (after_seq, through_seq))"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._reader() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn.cursor()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Cursor]:
        with self._reader() as conn:
            conn.execute("BEGIN")  # deferred: a read snapshot that takes no write lock
            try:
                yield conn.cursor()
            finally:
                conn.execute("ROLLBACK")

    def _to_db_time(self, unix: float) -> float:
        return unix

    def _from_db_time(self, value: float) -> datetime:
        return datetime.fromtimestamp(value, timezone.utc)

    def append_many(self, events: Sequence[NewEvent]) -> list[bool]:
        with self._lock:
            if self._writer is None:
                self._writer = self._connect()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                inserted = []
                for event in events:
                    cursor = conn.execute(
                        "INSERT INTO events (dedupe_key, event_type, known, received_at, body)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                        (event.dedupe_key, event.event_type, int(event.known), event.received_at, event.body),
                    )
                    inserted.append(cursor.rowcount == 1)
                conn.execute("COMMIT")
                return inserted
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise

    def read(self, after_seq: int, through_seq: int | None = None, limit: int | None = None) -> list[StoredEvent]:
        sql = "SELECT seq, event_type, body, known, received_at FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if through_seq is not None:
            sql += " AND seq <= ?"
            params.append(through_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            StoredEvent(seq, kind, bytes(body), bool(known), datetime.fromtimestamp(at, timezone.utc))
            for seq, kind, body, known, at in rows
        ]

    def last_seq(self) -> int:
        with self._reader() as conn:
            (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(last)

    def _delete_batch(self, through_seq: int, received_before: datetime, limit: int) -> int:
        with self._reader() as conn:  # autocommit: the statement is its own transaction
            cursor = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? AND received_at < ? LIMIT ?)",
                (through_seq, received_before.timestamp(), limit),
            )
            return cursor.rowcount

    def count(self) -> int:
        with self._reader() as conn:
            (n,) = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(n)

    def ping(self) -> None:
        with self._reader() as conn:
            conn.execute("SELECT 1 FROM events LIMIT 1").fetchall()

    def reset(self) -> None:
        with self._lock:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()
                self._writer = None


class PostgresEventStore(EventStore):
    """The team store: a table in Postgres."""

    PARAM = "%s"
    EVENTS_TABLE = PG_TABLE
    APPLIED_TABLE = PG_APPLIED
    RANGES_TABLE = PG_APPLIED_RANGES
    LOCK_MARKER = " FOR UPDATE"  # concurrent apply runs mark one after another

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def _connect(self) -> Any:
        import psycopg2
        from sqlalchemy.engine import make_url

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            return psycopg2.connect(dsn, connect_timeout=10, options="-c timezone=UTC")
        except psycopg2.ProgrammingError:  # an invalid DSN: libpq's message quotes it, password included
            raise ValueError(f"SALESLOFT_EVENTS_URL is not a valid Postgres URL: {self.describe()}") from None

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        conn = self._connect()
        try:
            with conn, conn.cursor() as cursor:
                yield cursor
        finally:
            conn.close()

    def setup(self) -> None:
        with self._reader() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_COMMIT_LOCK])
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PG_TABLE} ("
                " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " dedupe_key BYTEA NOT NULL UNIQUE,"
                " event_type TEXT NOT NULL,"
                " known BOOLEAN NOT NULL,"
                " received_at TIMESTAMPTZ NOT NULL,"
                " body BYTEA NOT NULL)"
            )
            # For `prune`: it finds old events without scanning the recent ones.
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {PG_TABLE}_received_at ON {PG_TABLE} (received_at)")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PG_APPLIED} (id INTEGER PRIMARY KEY CHECK (id = 1),"
                " through_seq BIGINT NOT NULL, last_apply TIMESTAMPTZ)"
            )
            cursor.execute(f"INSERT INTO {PG_APPLIED} (id, through_seq) VALUES (1, 0) ON CONFLICT DO NOTHING")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PG_APPLIED_RANGES} (after_seq BIGINT NOT NULL,"
                " through_seq BIGINT NOT NULL, PRIMARY KEY (after_seq, through_seq))"
            )

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self._reader()  # one transaction, committed on success; the marker's FOR UPDATE serialises

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Any]:
        with self._reader() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cursor

    def _to_db_time(self, unix: float) -> datetime:
        return datetime.fromtimestamp(unix, timezone.utc)

    def _from_db_time(self, value: datetime) -> datetime:
        return value

    def append_many(self, events: Sequence[NewEvent]) -> list[bool]:
        import psycopg2.extras

        with self._lock:
            if self._writer is None:
                self._writer = self._connect()
            conn = self._writer
            try:
                with conn.cursor() as cursor:
                    # Serialises commits, so seq order is commit order (see the module doc).
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_COMMIT_LOCK])
                    rows = [
                        (
                            e.dedupe_key,
                            e.event_type,
                            e.known,
                            datetime.fromtimestamp(e.received_at, timezone.utc),
                            e.body,
                        )
                        for e in events
                    ]
                    returned = psycopg2.extras.execute_values(
                        cursor,
                        f"INSERT INTO {PG_TABLE} (dedupe_key, event_type, known, received_at, body)"
                        " VALUES %s ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
                        rows,
                        page_size=max(len(rows), 1),
                        fetch=True,
                    )
                conn.commit()
            except BaseException:
                self._writer = None
                with contextlib.suppress(Exception):
                    conn.close()
                raise
        new = {bytes(key) for (key,) in returned}
        inserted = []
        for event in events:  # the first of two identical events in one batch is the new one
            key = event.dedupe_key
            inserted.append(key in new)
            new.discard(key)
        return inserted

    def read(self, after_seq: int, through_seq: int | None = None, limit: int | None = None) -> list[StoredEvent]:
        sql = f"SELECT seq, event_type, body, known, received_at FROM {PG_TABLE} WHERE seq > %s"
        params: list[Any] = [after_seq]
        if through_seq is not None:
            sql += " AND seq <= %s"
            params.append(through_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        with self._reader() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [StoredEvent(seq, kind, bytes(body), known, at) for seq, kind, body, known, at in rows]

    def last_seq(self) -> int:
        with self._reader() as cursor:
            cursor.execute(f"SELECT coalesce(max(seq), 0) FROM {PG_TABLE}")
            (last,) = cursor.fetchone()
        return int(last)

    def _delete_batch(self, through_seq: int, received_before: datetime, limit: int) -> int:
        # No commit lock: deletes never change which seq the next insert gets.
        with self._reader() as cursor:
            cursor.execute(
                f"DELETE FROM {PG_TABLE} WHERE seq IN"
                f" (SELECT seq FROM {PG_TABLE} WHERE seq <= %s AND received_at < %s LIMIT %s)",
                [through_seq, received_before, limit],
            )
            return int(cursor.rowcount)

    def count(self) -> int:
        with self._reader() as cursor:
            cursor.execute(f"SELECT count(*) FROM {PG_TABLE}")
            (n,) = cursor.fetchone()
        return int(n)

    def ping(self) -> None:
        with self._reader() as cursor:
            cursor.execute(f"SELECT 1 FROM {PG_TABLE} LIMIT 1")
            cursor.fetchall()

    def reset(self) -> None:
        with self._lock:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()
                self._writer = None


def open_event_store(url: str | None = None) -> EventStore:
    """The store at `url` (SALESLOFT_EVENTS_URL's format).

    `postgresql://...` is Postgres; `sqlite:///relative.db`, `sqlite:////abs.db`
    or a plain file path is SQLite. With no `url`, SALESLOFT_EVENTS_URL is read;
    unset, it means `events.sqlite` under SALESLOFT_PIPELINE_HOME."""
    url = url or os.environ.get(EVENTS_URL_VARIABLE)
    if not url:
        from salesloft_pipeline.warehouse import default_home

        return SQLiteEventStore(default_home() / "events.sqlite")
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        return PostgresEventStore(url)
    if url.startswith("sqlite:///"):
        url = url.removeprefix("sqlite:///")
    if "://" in url:
        raise ValueError(
            f"{EVENTS_URL_VARIABLE} must be postgresql://..., sqlite:///path or a file path,"
            f" not {url.split('://')[0]}://..."
        )
    if url.endswith((".duckdb", ".ddb")):
        raise ValueError(f"{EVENTS_URL_VARIABLE} points at a DuckDB file: the event store is never the warehouse")
    return SQLiteEventStore(url)


_STOP = object()


class GroupCommitter:
    """Stores events from many concurrent requests with one commit per batch.

    Requests queue their event; one writer thread takes everything queued
    (up to `max_batch`), commits it in one transaction, then wakes every
    request of the batch. Each request still answers only after its own event
    is committed, and the fsync is shared by the batch.
    """

    def __init__(self, store: EventStore, max_batch: int = 1000) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
        self.batches = 0

    def start(self) -> None:
        self.store.start()
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self.store.close()

    async def append(self, event: NewEvent) -> bool:
        """True when stored now, False for a duplicate; raises what the store raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((event, future, loop))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            try:
                outcome: Any = self.store.append_many([event for event, _, _ in batch])
            except Exception as error:  # answered as 503; SalesLoft retries
                self.store.reset()
                outcome = error
            self.batches += 1
            by_loop: dict[Any, list[tuple[Any, Any]]] = {}
            for index, (_, future, loop) in enumerate(batch):
                result = outcome if isinstance(outcome, Exception) else outcome[index]
                by_loop.setdefault(loop, []).append((future, result))
            for loop, items in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[asyncio.Future[bool], Any]]) -> None:
    for future, result in items:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, Exception):
            future.set_exception(StoreUnavailable(type(result).__name__))
        else:
            future.set_result(result)


class StoreUnavailable(RuntimeError):
    """The event store refused a commit (its own error type only, never its message)."""


def now() -> float:
    return time.time()
