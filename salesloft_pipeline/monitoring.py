"""The pipeline's own health for Prometheus, read fresh at every scrape.

A custom collector (registered on the webhook endpoint's `/metrics`) reads two
sources each scrape:
- the webhook event store: last sequence number, the apply job's
  applied-through marker, how many events are not applied and how old the
  oldest of them is;
- the warehouse's `raw._loads` (one row per committed day load): records and
  the newest load per stream, and, where the columns exist, the API requests,
  cost and 429s those loads spent and the rate-limit budget seen last.

A source that cannot be read is `salesloft_pipeline_source_up{source} 0`, a
counted error and one log line when it goes down, never a failed scrape. Each
read runs in a thread of its own and is given up after `timeout` seconds, so
a hung database cannot hang the scrape. The warehouse is opened read-only and
closed at once: on DuckDB a reader keeps writers (other processes) out while
it holds the file, so a scrape holds it for milliseconds, and gives up after a
short wait when a writer holds it. DuckDB also refuses a read-only and a
read-write connection to one file within one process: register the collector
only in a process that does not write the warehouse (`webhooks serve` does
not). The delivery path never touches the
warehouse; only scrapes do. Error texts are scrubbed of the URL and password
before they are logged, and never reach the scrape output.

See docs/monitoring.md for every metric and example alert rules.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from salesloft_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse, WarehouseBusy, open_warehouse
from salesloft_pipeline.webhooks import EventStore, Progress

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3.0  # per source and scrape; Prometheus' default scrape timeout is 10 s
DUCKDB_LOCK_WAIT_SECONDS = 1.0  # how long a scrape waits for a DuckDB writer to let go
DUCKDB_LOCK_MESSAGE = "Could not set lock on file"
# The API spend extraction records with each day in raw._loads; exported when present
# (a warehouse made by an older version lacks them until its next setup).
API_COLUMNS = {"api_requests": "requests", "api_cost": "cost", "api_429s": "429s"}
BUDGET_COLUMN = "api_budget_left"

T = TypeVar("T")
SOURCE_NAMES = {"events": "webhook event store", "warehouse": "warehouse"}  # for log lines


class SourceUnavailable(RuntimeError):
    """A source could not be read (its message is safe to log)."""


# -- reading the sources -----------------------------------------------------------------
@dataclass(frozen=True)
class StreamLoads:
    stream: str
    days: int
    records: int
    rejected: int
    newest_load: float  # Unix seconds of the newest committed load
    api: dict[str, float] = field(default_factory=dict)  # "requests", "cost", "429s" when recorded


@dataclass(frozen=True)
class WarehouseLoads:
    streams: list[StreamLoads]
    api_columns: frozenset[str]  # which of API_COLUMNS raw._loads has
    budget_left: tuple[float, float] | None  # (value, Unix seconds it was seen), when recorded


class WarehouseReader:
    """Reads raw._loads of the warehouse at SALESLOFT_WAREHOUSE_URL's format, read-only and briefly."""

    def __init__(self, url: str | None = None, lock_wait: float = DUCKDB_LOCK_WAIT_SECONDS) -> None:
        self.warehouse: Warehouse = open_warehouse(url)  # parses the URL; connects to nothing
        self.lock_wait = lock_wait

    def describe(self) -> str:
        return self.warehouse.describe()

    def secrets(self) -> list[str]:
        """What must never be logged: the URL and its password, as given and as percent-decoded."""
        if not isinstance(self.warehouse, PostgresWarehouse):
            return []
        return _url_secrets(self.warehouse.url)

    def read(self) -> WarehouseLoads:
        if isinstance(self.warehouse, DuckDBWarehouse):
            conn = self._duckdb()
            try:
                return _read_loads(lambda sql: conn.execute(sql).fetchall())
            finally:
                conn.close()
        if isinstance(self.warehouse, PostgresWarehouse):
            conn = self._postgres()
            try:
                with conn.cursor() as cursor:

                    def query(sql: str) -> list[tuple[Any, ...]]:
                        cursor.execute(sql)
                        return cursor.fetchall()

                    return _read_loads(query)
            finally:
                conn.close()
        raise SourceUnavailable(f"no metrics reader for {type(self.warehouse).__name__}")

    def _duckdb(self) -> Any:
        import duckdb

        assert isinstance(self.warehouse, DuckDBWarehouse)
        path = self.warehouse.path
        if not path.exists():  # read-only cannot create it, and a scrape must not
            raise SourceUnavailable(f"{path} does not exist yet (nothing was loaded)")
        deadline = time.monotonic() + self.lock_wait
        delay = 0.02
        while True:
            try:
                conn = duckdb.connect(str(path), read_only=True)
                conn.execute("SET TimeZone = 'UTC'")
                return conn
            except duckdb.IOException as error:
                if DUCKDB_LOCK_MESSAGE not in str(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusy(f"{path} is held by a writer (waited {self.lock_wait:g} s)") from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.25)

    def _postgres(self) -> Any:
        import psycopg2
        from sqlalchemy.engine import make_url

        assert isinstance(self.warehouse, PostgresWarehouse)
        dsn = make_url(self.warehouse.url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = psycopg2.connect(
                dsn,
                connect_timeout=max(2, int(TIMEOUT_SECONDS)),
                # Never wait behind a lock (an ALTER TABLE of raw._loads) nor write anything.
                options="-c statement_timeout=2000 -c lock_timeout=1000"
                " -c default_transaction_read_only=on -c timezone=UTC",
                application_name="salesloft_pipeline metrics",
            )
        except psycopg2.ProgrammingError:  # an invalid DSN: libpq's message quotes it, password included
            raise SourceUnavailable(f"not a valid Postgres URL: {self.describe()}") from None
        conn.autocommit = True  # each SELECT on its own: nothing held between them
        return conn


def _read_loads(query: Callable[[str], list[tuple[Any, ...]]]) -> WarehouseLoads:
    """raw._loads by stream, with the optional API columns it has (same SQL on DuckDB and Postgres)."""
    columns = {
        name
        for (name,) in query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = '_loads'"
        )
    }
    if not columns:  # no load committed yet: nothing to report, the source is still up
        return WarehouseLoads([], frozenset(), None)
    api = [name for name in API_COLUMNS if name in columns]
    sums = "".join(f", sum({name})" for name in api)
    rows = query(
        "SELECT stream, count(*), sum(rows), sum(rejected), extract(epoch FROM max(loaded_at))"
        f"{sums} FROM raw._loads GROUP BY stream ORDER BY stream"
    )
    streams = []
    for stream, days, records, rejected, newest, *spent in rows:
        figures = {API_COLUMNS[name]: float(value) for name, value in zip(api, spent) if value is not None}
        streams.append(StreamLoads(str(stream), int(days), int(records or 0), int(rejected or 0), float(newest), figures))
    budget = None
    if BUDGET_COLUMN in columns:
        latest = query(
            f"SELECT {BUDGET_COLUMN}, extract(epoch FROM loaded_at) FROM raw._loads"
            f" WHERE {BUDGET_COLUMN} IS NOT NULL ORDER BY loaded_at DESC LIMIT 1"
        )
        if latest:
            budget = (float(latest[0][0]), float(latest[0][1]))
    return WarehouseLoads(streams, frozenset(api), budget)


def _url_secrets(url: str) -> list[str]:
    from sqlalchemy.engine import make_url

    found = {url, unquote(url)}
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL: hide it whole, as above
        password = None
    if password:
        found |= {str(password), quote(str(password), safe="")}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)  # longest first


def _store_secrets(store: EventStore) -> list[str]:
    url = getattr(store, "url", None)
    return _url_secrets(url) if isinstance(url, str) else []


class _Bounded:
    """Runs a source's reads in a daemon thread, waiting at most `timeout` for each.

    A read that outlives its wait keeps its thread; until it ends, later scrapes
    report the source down at once instead of piling up threads behind it."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._straggler: threading.Thread | None = None

    def __call__(self, read: Callable[[], T]) -> T:
        if self._straggler is not None and self._straggler.is_alive():
            raise SourceUnavailable(f"a read started by an earlier scrape is still running (over {self.timeout:g} s)")
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = read()
            except BaseException as error:  # noqa: BLE001 - re-raised in the scraping thread
                outcome["error"] = error

        thread = threading.Thread(target=run, name=f"metrics-{self.name}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            self._straggler = thread
            raise SourceUnavailable(f"no answer within {self.timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]


# -- the collector -----------------------------------------------------------------------
class PipelineCollector(Collector):
    """Reads the event store and the warehouse at each scrape (see the module doc)."""

    def __init__(
        self,
        store: EventStore | None,
        warehouse: WarehouseReader | None,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.warehouse = warehouse
        self.clock = clock
        self._lock = threading.Lock()  # concurrent scrapes read one after another
        self._bounded = {"events": _Bounded("events", timeout), "warehouse": _Bounded("warehouse", timeout)}
        self._errors: dict[tuple[str, str], int] = {}
        self._down: dict[str, str] = {}  # source -> error type, while it is down (one log line per outage)

    @classmethod
    def from_env(cls, store: EventStore | None, warehouse: bool = True) -> PipelineCollector:
        """The endpoint's store, and the warehouse at SALESLOFT_WAREHOUSE_URL (ValueError if malformed)."""
        return cls(store, WarehouseReader() if warehouse else None)

    def describe(self) -> list[Metric]:
        return []  # otherwise registering would read both sources

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            up = GaugeMetricFamily(
                "salesloft_pipeline_source_up",
                "1 when the last scrape read the source (events: the webhook event store; warehouse: raw._loads), else 0.",
                labels=["source"],
            )
            seconds = GaugeMetricFamily(
                "salesloft_pipeline_source_read_seconds", "Time the last scrape spent reading the source.", labels=["source"]
            )
            families: list[Metric] = []
            if self.store is not None:
                families += self._source("events", self.store.describe(), _store_secrets(self.store),
                                         self.store.progress, self._events, up, seconds)
            if self.warehouse is not None:
                families += self._source("warehouse", self.warehouse.describe(), self.warehouse.secrets(),
                                         self.warehouse.read, self._warehouse, up, seconds)
            errors = CounterMetricFamily(
                "salesloft_pipeline_source_errors",
                "Scrapes that could not read the source, by error type.",
                labels=["source", "error"],
            )
            for (source, error), count in sorted(self._errors.items()):
                errors.add_metric([source, error], count)
            yield up
            yield seconds
            yield errors
            yield from families

    def _source(
        self,
        source: str,
        where: str,
        secrets: list[str],
        read: Callable[[], T],
        families: Callable[[T], list[Metric]],
        up: GaugeMetricFamily,
        seconds: GaugeMetricFamily,
    ) -> list[Metric]:
        started = time.perf_counter()
        try:
            value = self._bounded[source](read)
        except Exception as error:  # noqa: BLE001 - any failure is the finding, reported as metrics
            seconds.add_metric([source], time.perf_counter() - started)
            up.add_metric([source], 0)
            kind = type(error).__name__
            self._errors[(source, kind)] = self._errors.get((source, kind), 0) + 1
            if self._down.get(source) != kind:
                self._down[source] = kind
                log.warning("metrics: cannot read the %s (%s): %s", SOURCE_NAMES[source], where,
                            _scrub(_first_line(error), secrets))
            return []
        seconds.add_metric([source], time.perf_counter() - started)
        up.add_metric([source], 1)
        if self._down.pop(source, None) is not None:
            log.info("metrics: the %s (%s) answers again", SOURCE_NAMES[source], where)
        return families(value)

    def _events(self, progress: Progress) -> list[Metric]:
        now = self.clock()
        oldest = progress.oldest_unapplied
        families = [
            GaugeMetricFamily(
                "salesloft_pipeline_webhook_last_seq",
                "Highest sequence number in the webhook event store; each delivery stored takes the next"
                " (never reused, never goes back).",
                value=progress.last_seq,
            ),
            GaugeMetricFamily(
                "salesloft_pipeline_webhook_applied_through_seq",
                "Highest sequence number at or below which every webhook event has been applied"
                " (the apply job's marker; never ahead of the truth).",
                value=progress.applied_through,
            ),
            GaugeMetricFamily(
                "salesloft_pipeline_webhook_unapplied_events",
                "Webhook events stored that no successful apply run has covered yet.",
                value=progress.unapplied,
            ),
            GaugeMetricFamily(
                "salesloft_pipeline_webhook_oldest_unapplied_age_seconds",
                "Age of the oldest webhook event not yet applied; 0 when every stored event is applied.",
                value=0.0 if oldest is None else max(0.0, now - oldest.timestamp()),
            ),
        ]
        if progress.last_apply is not None:
            families.append(
                GaugeMetricFamily(
                    "salesloft_pipeline_webhook_last_apply_timestamp_seconds",
                    "When an apply run last succeeded (Unix time); absent before the first.",
                    value=progress.last_apply.timestamp(),
                )
            )
        return families

    def _warehouse(self, loads: WarehouseLoads) -> list[Metric]:
        now = self.clock()

        def per_stream(name: str, help_text: str, value: Callable[[StreamLoads], float]) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, help_text, labels=["stream"])
            for s in loads.streams:
                family.add_metric([s.stream], value(s))
            return family

        families: list[Metric] = [
            per_stream("salesloft_pipeline_stream_records",
                       "Records in the stream's committed day loads (raw._loads; a day loaded again counts its"
                       " latest load).", lambda s: s.records),
            per_stream("salesloft_pipeline_stream_rejected_records",
                       "Records of the stream's committed day loads that failed validation (raw._rejected).",
                       lambda s: s.rejected),
            per_stream("salesloft_pipeline_stream_loaded_days", "Days of the stream with a committed load.",
                       lambda s: s.days),
            per_stream("salesloft_pipeline_stream_last_load_timestamp_seconds",
                       "When the stream's newest committed day load was extracted (Unix time).",
                       lambda s: s.newest_load),
            per_stream("salesloft_pipeline_stream_last_load_age_seconds",
                       "Age of the stream's newest committed day load.", lambda s: max(0.0, now - s.newest_load)),
        ]
        api_help = {
            "requests": ("salesloft_pipeline_api_requests",
                         "SalesLoft API requests the stream's committed day loads made (the latest load of each day)."),
            "cost": ("salesloft_pipeline_api_cost",
                     "SalesLoft API cost (x-ratelimit-endpoint-cost) the stream's committed day loads spent"
                     " (the latest load of each day)."),
            "429s": ("salesloft_pipeline_api_429_responses",
                     "429 answers the stream's committed day loads got (the latest load of each day)."),
        }
        for column, key in API_COLUMNS.items():
            if column in loads.api_columns:
                name, help_text = api_help[key]
                family = GaugeMetricFamily(name, help_text, labels=["stream"])
                for s in loads.streams:
                    if key in s.api:
                        family.add_metric([s.stream], s.api[key])
                families.append(family)
        if loads.budget_left is not None:
            value, seen = loads.budget_left
            families.append(GaugeMetricFamily(
                "salesloft_pipeline_api_budget_left",
                "x-ratelimit-remaining-minute at the end of the newest committed load that recorded it"
                " (the team's budget, shared by every stream and integration).",
                value=value,
            ))
            families.append(GaugeMetricFamily(
                "salesloft_pipeline_api_budget_left_timestamp_seconds",
                "When salesloft_pipeline_api_budget_left was seen (that load's extraction time, Unix time).",
                value=seen,
            ))
        return families


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
