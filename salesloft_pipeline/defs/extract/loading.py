"""Loading streams into the warehouse, day by day.

A range of days is read as one ascending `updated_at` scan (so only the last
page is partial) and committed one UTC day at a time, as soon as the scan
passes the day's end. A day whose load started at least `COMPLETE_AFTER`
after the day ended is complete: a rerun skips it, so an interrupted backfill
resumes where it stopped and a rerun of a finished one costs nothing. Days
still open (today, yesterday within the margin) are always read again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from salesloft_pipeline.salesloft import Extraction, Record, SalesloftClient, Stream, dump_record, extract
from salesloft_pipeline.warehouse import RawTable, Warehouse
from salesloft_pipeline.warehouse.base import ApiUsage

log = logging.getLogger(__name__)

# SalesLoft's lists can lag writes by a little; a day read this long after its
# end is taken to be final.
COMPLETE_AFTER = timedelta(hours=1)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


@dataclass(frozen=True)
class DayLoad:
    day: date
    rows: int
    rejected: int
    changed: int  # ids whose versions in the day differ from the previous load's
    api_usage: ApiUsage  # what reading this day cost


class _Spend:
    """The client's spend since the last call, for each committed day."""

    def __init__(self, client: SalesloftClient) -> None:
        self.client = client
        self.seen = (0, 0, 0)

    def __call__(self) -> ApiUsage:
        stats = self.client.stats
        now = (stats.requests, stats.cost, stats.rate_limited)
        requests, cost, limited = (a - b for a, b in zip(now, self.seen))
        self.seen = now
        return {"api_requests": requests, "api_cost": cost, "api_429s": limited, "api_budget_left": stats.budget_left}


@dataclass
class RangeLoad:
    """What one run of `load_days` did."""

    loaded: list[DayLoad] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)  # complete already
    missing_scope: str | None = None  # the stream needs a scope the token lacks

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.loaded)

    @property
    def rejected(self) -> int:
        return sum(d.rejected for d in self.loaded)


def complete_days(loaded: Mapping[date, tuple[int, datetime]]) -> set[date]:
    """Of the committed loads (`Warehouse.loaded_partitions`), the days whose load began
    `COMPLETE_AFTER` or more after the day ended."""
    return {
        day for day, (_, loaded_at) in loaded.items() if loaded_at >= day_start(day + timedelta(days=1)) + COMPLETE_AFTER
    }


def contiguous_runs(days: Iterable[date]) -> list[list[date]]:
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


class _DayByDay:
    """Takes one ascending scan's records and commits each day once the scan has passed it."""

    def __init__(
        self,
        warehouse: Warehouse,
        table: RawTable,
        extraction: Extraction,
        first_day: date,
        extracted_at: datetime,
        committed: Callable[[DayLoad], None],
        spend: _Spend,
    ) -> None:
        self.warehouse, self.table, self.extraction = warehouse, table, extraction
        self.day, self.extracted_at, self.committed, self.spend = first_day, extracted_at, committed, spend
        self.rows: list[dict] = []
        self.invalid_seen = 0

    def add(self, record: Record) -> None:
        record_day = record.updated_at.date() if record.updated_at else self.day
        while record_day > self.day:
            self._commit()
        if record_day < self.day:
            log.warning("%s %s: updated_at %s is before the day being read", self.table.name, record.id, record.updated_at)
        self.rows.append(dump_record(record))

    def finish(self, last_day: date) -> None:
        while self.day <= last_day:
            self._commit()

    def _commit(self) -> None:
        # Invalid records come in scan order too: those met since the last
        # commit belong to this day.
        invalid = self.extraction.invalid[self.invalid_seen :]
        self.invalid_seen += len(invalid)
        rejected = [(i.record, i.reason) for i in invalid]
        usage = self.spend()
        load = self.warehouse.replace_partition(self.table, self.day, self.rows, rejected, self.extracted_at, usage)
        self.committed(DayLoad(self.day, load.rows, len(rejected), load.changed, usage))
        self.rows = []
        self.day += timedelta(days=1)


def load_days(
    client: SalesloftClient,
    warehouse: Warehouse,
    stream: Stream,
    table: RawTable,
    days: list[date],
    *,
    force: bool = False,
    on_commit: Callable[[DayLoad], None] = lambda _: None,
) -> RangeLoad:
    """Loads the given days of an incremental stream, skipping complete ones unless `force`."""
    started = datetime.now(timezone.utc)
    result = RangeLoad()
    complete = set() if force else complete_days(warehouse.loaded_partitions(stream.name))
    result.skipped = [d for d in days if d in complete]

    def committed(load: DayLoad) -> None:
        result.loaded.append(load)
        on_commit(load)

    spend = _Spend(client)
    for run in contiguous_runs(d for d in days if d not in complete):
        extraction = extract(client, stream, since=day_start(run[0]), until=day_start(run[-1] + timedelta(days=1)))
        writer = _DayByDay(warehouse, table, extraction, run[0], started, committed, spend)
        for record in extraction:
            writer.add(record)
        if extraction.skipped:
            result.missing_scope = extraction.skipped
            break
        writer.finish(run[-1])
    return result


def load_snapshot(
    client: SalesloftClient, warehouse: Warehouse, stream: Stream, table: RawTable
) -> tuple[int, int, int, str | None]:
    """Reads a full-refresh stream whole and replaces its table.

    Returns (rows, rejected, ids newly marked deleted, missing scope message)."""
    extraction = extract(client, stream)
    records = [dump_record(r) for r in extraction]
    if extraction.skipped:
        return 0, 0, 0, extraction.skipped
    rejected = [(i.record, i.reason) for i in extraction.invalid]
    # A record that failed validation was still listed: its id is present, not deleted.
    listed = [i.record["id"] for i in extraction.invalid if isinstance(i.record, dict) and i.record.get("id") is not None]
    rows, deleted = warehouse.replace_snapshot(table, records, rejected, listed_invalid=listed)
    return rows, len(rejected), deleted, None
