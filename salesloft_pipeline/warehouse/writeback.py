"""The `writeback` schema: input tables users fill, and the ledger of writes to SalesLoft.

- `writeback.people` and `writeback.cadence_enrollments` say what SalesLoft
  should contain. They are created empty if missing; users replace their
  contents with SQL models of their own (examples in `sql/writeback/`).
- `writeback.ledger` has one row per change planned, sent or refused, with
  SalesLoft's answer. A row is written `pending` (durably) before its request
  leaves, and rewritten with the answer after, so a crash leaves `pending`
  rows that the next run reconciles before it sends anything.
- `writeback._leases` lets one run at a time write back each asset: taking
  and renewing it are compare-and-set updates, so two runs racing for it on
  Postgres cannot both win.

The warehouse knows the storage only; what the rows mean is in
`salesloft_pipeline.defs.writeback`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from .base import Warehouse
from .tables import utc

SCHEMA = "writeback"
LEDGER = f"{SCHEMA}.ledger"
LEASES = f"{SCHEMA}._leases"

# Input tables: (column, type, description). NULL in a field means "leave it alone".
PEOPLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("email_address", "text", "the person's email: the key people are matched by (case-insensitive)"),
    ("first_name", "text", ""),
    ("last_name", "text", ""),
    ("title", "text", "job title"),
    ("phone", "text", ""),
    ("mobile_phone", "text", ""),
    ("linkedin_url", "text", ""),
    ("city", "text", ""),
    ("state", "text", ""),
    ("country", "text", ""),
    ("job_seniority", "text", ""),
    ("tags", "json", "JSON array of strings: the person's whole tag list"),
    ("custom_fields", "json", "JSON object: these custom fields are set, others are kept"),
    ("owner_id", "bigint", "SalesLoft user id of the owner"),
    ("account_id", "bigint", "SalesLoft account id"),
    ("person_stage_id", "bigint", "SalesLoft person stage id"),
    ("do_not_contact", "boolean", ""),
)
ENROLLMENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("person_email", "text", "the person, by email (case-insensitive); or person_id"),
    ("person_id", "bigint", "the person, by SalesLoft id"),
    ("cadence_id", "bigint", "the cadence, by SalesLoft id; or cadence_name"),
    ("cadence_name", "text", "the cadence, by exact name (one live cadence must have it)"),
    ("user_id", "bigint", "optional: the user whose cadence step tasks the person gets"),
    ("user_email", "text", "optional: that user by email"),
)
INPUT_TABLES = {"people": PEOPLE_COLUMNS, "cadence_enrollments": ENROLLMENT_COLUMNS}

STATUSES = ("pending", "sent", "ok", "rejected", "unresolved", "skipped", "dry_run")
OPEN_STATUSES = ("pending", "sent")  # the answer is not known: reconcile before sending again
ANSWERS = ("ok", "rejected")  # what SalesLoft said about a row (the other statuses are ours)
# For the lookups the code makes: by id (each write), open rows and answers by asset, a run's counts.
LEDGER_INDEXES = (("id",), ("asset", "status"), ("asset", "row_key"), ("run_id", "asset"))


@dataclass
class Entry:
    """One ledger row: a change for one row key, and what became of it."""

    run_id: str
    asset: str
    row_key: str
    action: str  # create, update, enroll
    status: str
    method: str | None = None
    path: str | None = None
    request: dict[str, Any] | None = None  # the JSON body sent; never holds a secret
    http_status: int | None = None
    errors: Any = None  # SalesLoft's errors (JSON)
    resource_id: str | None = None
    resource_updated_at: datetime | None = None
    bulk_job_id: str | None = None
    note: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    answered_at: datetime | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def answer(self, status: str, **values: Any) -> None:
        self.status = status
        self.answered_at = datetime.now(timezone.utc)
        for name, value in values.items():
            setattr(self, name, value)


COLUMNS = [f.name for f in fields(Entry)]
_JSON_COLUMNS = {"request", "errors"}
_TYPES = {
    "request": "json",
    "errors": "json",
    "http_status": "bigint",
    "resource_updated_at": "timestamp",
    "created_at": "timestamp",
    "answered_at": "timestamp",
}


class LeaseHeld(RuntimeError):
    """Another run is writing back the same asset."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it went unrenewed too long): it must stop writing."""


def _loads(value: Any) -> Any:
    """JSON columns come back as text from DuckDB and decoded from Postgres."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Ledger:
    """The `writeback` schema of one warehouse."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse
        self.p = warehouse.PARAM

    def setup(self) -> None:
        t = self.wh.TYPES
        with self.wh.connection() as conn:
            self.wh._serialise(conn, "writeback setup")  # CREATE ... IF NOT EXISTS races with itself on Postgres
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            for name, columns in INPUT_TABLES.items():
                spec = ", ".join(f"{column} {t[kind]}" for column, kind, _ in columns)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{name} ({spec})")
            spec = ", ".join(f"{name} {t[_TYPES.get(name, 'text')]}" for name in COLUMNS)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER} ({spec})")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {LEASES} (asset {t['text']} PRIMARY KEY, run_id {t['text']} NOT NULL,"
                f" heartbeat_at {t['timestamp']} NOT NULL)"
            )
            indexes = self.wh.indexes_sql(LEDGER, LEDGER_INDEXES)  # Postgres only: empty on DuckDB
            if indexes:
                conn.execute(indexes)

    # -- rows --------------------------------------------------------------
    def write(self, entries: Sequence[Entry]) -> None:
        """Writes `entries` (new or rewritten, by id) in one transaction."""
        if not entries:
            return
        rows = [tuple(_dumps(getattr(e, c)) if c in _JSON_COLUMNS else getattr(e, c) for c in COLUMNS) for e in entries]
        with self.wh.connection() as conn:
            for start in range(0, len(entries), 500):
                ids = [e.id for e in entries[start : start + 500]]
                conn.execute(f"DELETE FROM {LEDGER} WHERE id IN ({', '.join([self.p] * len(ids))})", ids)
            self.wh._insert_rows(conn, LEDGER, COLUMNS, rows)

    def select(self, where: str, params: Sequence[Any] = ()) -> list[Entry]:
        rows = self.wh.query(f"SELECT {', '.join(COLUMNS)} FROM {LEDGER} WHERE {where}", params)
        entries = []
        for row in rows:
            values = dict(zip(COLUMNS, row))
            for name in _JSON_COLUMNS:
                values[name] = _loads(values[name])
            for name in ("created_at", "answered_at", "resource_updated_at"):
                values[name] = utc(values[name])
            entries.append(Entry(**values))
        return entries

    def open_entries(self, asset: str) -> list[Entry]:
        """Rows of `asset` whose answer is unknown (a run stopped between intent and answer)."""
        statuses = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
        return self.select(f"asset = {self.p} AND status IN ({statuses}) ORDER BY created_at", [asset])

    def last_answers(self, asset: str) -> dict[str, Entry]:
        """SalesLoft's most recent answer (ok or rejected) for each row key of `asset`."""
        answers = ", ".join(f"'{s}'" for s in ANSWERS)
        last: dict[str, Entry] = {}
        for entry in self.select(
            f"asset = {self.p} AND status IN ({answers}) ORDER BY coalesce(answered_at, created_at), created_at",
            [asset],
        ):
            last[entry.row_key] = entry
        return last

    def counts(self, run_id: str, asset: str) -> dict[str, int]:
        rows = self.wh.query(
            f"SELECT status, count(*) FROM {LEDGER} WHERE run_id = {self.p} AND asset = {self.p} GROUP BY status",
            [run_id, asset],
        )
        return {status: int(n) for status, n in rows}

    # -- one writer per asset ---------------------------------------------------
    def acquire(
        self,
        asset: str,
        run_id: str,
        holder_alive: Callable[[str], bool | None],
        stale_after: timedelta = timedelta(minutes=15),
    ) -> None:
        """Takes the asset's lease for `run_id`, or raises LeaseHeld.

        A lease is free when its holder's run is known to have ended
        (`holder_alive` answers False), or when it has not been renewed for
        `stale_after` (its process died without Dagster noticing).

        Compare-and-set, the same on both engines: the lease row is read, judged
        (no transaction stays open while Dagster is asked), then taken by an
        UPDATE that only matches the holder and heartbeat that were judged (or
        an INSERT that only succeeds if there was no row). Of two runs racing,
        the second's statement matches nothing (on Postgres it waits for the
        first's row lock, then re-reads the row): it loses."""
        p = self.p
        held = self.wh.query(f"SELECT run_id, heartbeat_at FROM {LEASES} WHERE asset = {p}", [asset])
        now = datetime.now(timezone.utc)
        if held:
            holder, beat = held[0]
            self._check_free(asset, run_id, holder, utc(beat), now, holder_alive, stale_after)
            take = f"UPDATE {LEASES} SET run_id = {p}, heartbeat_at = {p} WHERE asset = {p} AND run_id = {p}"
            take, params = f"{take} AND heartbeat_at = {p} RETURNING run_id", [run_id, now, asset, holder, beat]
        else:
            take = f"INSERT INTO {LEASES} VALUES ({p}, {p}, {p}) ON CONFLICT (asset) DO NOTHING RETURNING run_id"
            params = [asset, run_id, now]
        with self.wh.connection() as conn:
            won = conn.execute(take, params).fetchall()
        if not won:
            raise LeaseHeld(f"another run took the lease of {asset} at the same moment as run {run_id}; try again.")

    @staticmethod
    def _check_free(
        asset: str,
        run_id: str,
        holder: str,
        beat: datetime | None,
        now: datetime,
        holder_alive: Callable[[str], bool | None],
        stale_after: timedelta,
    ) -> None:
        if holder == run_id or beat is None or now - beat >= stale_after or holder_alive(holder) is False:
            return
        raise LeaseHeld(
            f"run {holder} is writing back {asset} (lease renewed {beat:%Y-%m-%d %H:%M:%S} UTC);"
            f" wait for it to end, or for {int(stale_after.total_seconds())} s without renewal."
        )

    def renew(self, asset: str, run_id: str) -> None:
        """Records that `run_id` is alive and still writing; raises LeaseLost if it no longer holds the lease."""
        p = self.p
        with self.wh.connection() as conn:
            renewed = conn.execute(
                f"UPDATE {LEASES} SET heartbeat_at = {p} WHERE asset = {p} AND run_id = {p} RETURNING run_id",
                [datetime.now(timezone.utc), asset, run_id],
            ).fetchall()
            holder = (
                [] if renewed else conn.execute(f"SELECT run_id FROM {LEASES} WHERE asset = {p}", [asset]).fetchall()
            )
        if not renewed:
            by = f"run {holder[0][0]} holds it now" if holder else "nobody holds it now"
            raise LeaseLost(
                f"run {run_id} lost the lease of {asset} ({by}): it was taken over, as Dagster reported this run"
                " ended or it went unrenewed for longer than the lease timeout. It sends nothing more; the next"
                " run settles what this one left pending."
            )

    def release(self, asset: str, run_id: str) -> None:
        p = self.p
        with self.wh.connection() as conn:
            conn.execute(f"DELETE FROM {LEASES} WHERE asset = {p} AND run_id = {p}", [asset, run_id])


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
