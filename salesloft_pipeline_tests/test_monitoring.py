"""The pipeline's health on /metrics: scraped over loopback HTTP and parsed, on real stores.

SQLite event store + DuckDB warehouse files, and both on the test Postgres;
a warehouse held by another process, sources that refuse or never answer,
passwords that must not leak into the scrape or the logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from salesloft_pipeline.monitoring import PipelineCollector, WarehouseReader
from salesloft_pipeline.serving import serve_in_thread
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline.webhooks import EventStore, NewEvent, Secrets, open_event_store, sign
from salesloft_pipeline.webhooks.app import PATH, create_app

from .rawhttp import logged_errors
from .test_webhooks_apply import urls  # noqa: F401 - fixture

SECRET = "monitoring-secret"
NOW = time.time()
API_COLUMNS = ("api_requests", "api_cost", "api_429s", "api_budget_left")
# (stream, day, rows, rejected, seconds ago, requests, cost, 429s, budget left); None: not recorded
LOADS = [
    ("people", date(2026, 1, 1), 100, 1, 3 * 3600, 2, 2, 0, 500),
    ("people", date(2026, 1, 2), 50, 0, 600, 1, 1, 1, 420),
    ("emails", date(2026, 1, 2), 30, 0, 7200, 3, 4, 2, None),
    ("calls", date(2026, 1, 2), 5, 0, 100, None, None, None, None),  # loaded before the columns existed
]


# -- scraping ----------------------------------------------------------------------------
@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    help: dict[str, str]  # family name -> HELP
    types: dict[str, str]
    text: str

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(sample_name == name for sample_name, _ in self.samples)

    def labels(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for sample_name, labels in self.samples if sample_name == name}


def scrape(base_url: str, timeout: float = 30.0) -> Scrape:
    answer = httpx.get(f"{base_url}/metrics", timeout=timeout)
    assert answer.status_code == 200, answer.text[:500]
    samples, helps, types = {}, {}, {}
    for family in text_string_to_metric_families(answer.text):
        helps[family.name] = family.documentation
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, helps, types, answer.text)


@contextlib.contextmanager
def endpoint(collector: PipelineCollector, tmp_path: Path) -> Iterator[str]:
    """The webhook endpoint (its own SQLite store) on loopback, with `collector` on its /metrics."""
    app = create_app(open_event_store(str(tmp_path / "endpoint-events.sqlite")), Secrets(SECRET), collectors=[collector])
    with serve_in_thread(app, name="webhook endpoint") as url:
        yield url


# -- populated stores ------------------------------------------------------------------
def populate_store(store: EventStore) -> list[int]:
    """Ten events received 10..1 minutes ago; (5, 10] then (0, 3] applied, so 4 and 5 are not."""
    store.setup()
    store.append_many([
        NewEvent("person_updated", b'{"id": %d}' % i, True, NOW - (10 - i) * 60) for i in range(10)
    ])
    seqs = [e.seq for e in store.read(0)]
    before = seqs[0] - 1
    store.mark_applied(seqs[4], seqs[9])
    store.mark_applied(before, seqs[2])
    return seqs


def populate_warehouse(wh: Warehouse, api_columns: bool = True) -> None:
    wh.setup([])
    p = wh.PARAM
    with wh.connection() as conn:
        if not api_columns:  # raw._loads as a warehouse made before the API columns has it
            for column in API_COLUMNS:
                conn.execute(f"ALTER TABLE raw._loads DROP COLUMN IF EXISTS {column}")
        for stream, day, rows, rejected, ago, *api in LOADS:
            loaded_at = datetime.fromtimestamp(NOW - ago, timezone.utc)
            if api_columns:
                conn.execute(
                    f"INSERT INTO raw._loads (stream, _partition, rows, rejected, loaded_at, {', '.join(API_COLUMNS)})"
                    f" VALUES ({', '.join([p] * 9)})",
                    [stream, day, rows, rejected, loaded_at, *api],
                )
            else:
                conn.execute(
                    f"INSERT INTO raw._loads (stream, _partition, rows, rejected, loaded_at) VALUES ({p}, {p}, {p}, {p}, {p})",
                    [stream, day, rows, rejected, loaded_at],
                )


# -- what a scrape shows ---------------------------------------------------------------
def test_a_scrape_reports_webhook_lag_and_warehouse_loads(urls: tuple[str, str], tmp_path: Path) -> None:  # noqa: F811
    warehouse_url, events_url = urls  # DuckDB and SQLite files, or two fresh Postgres databases
    store = open_event_store(events_url)
    seqs = populate_store(store)
    populate_warehouse(open_warehouse(warehouse_url))
    collector = PipelineCollector(store, WarehouseReader(warehouse_url))
    with endpoint(collector, tmp_path) as url:
        body = b'{"id": 1}'
        httpx.post(f"{url}{PATH}", content=body, headers={"x-salesloft-event": "person_updated",
                                                           "x-salesloft-signature": sign(body, SECRET)})
        m = scrape(url)
    assert m.value("salesloft_pipeline_source_up", source="events") == 1
    assert m.value("salesloft_pipeline_source_up", source="warehouse") == 1
    # Webhooks: the marker stops below the gap (4 and 5), whatever was applied above it.
    assert m.value("salesloft_pipeline_webhook_last_seq") == seqs[9]
    assert m.value("salesloft_pipeline_webhook_applied_through_seq") == seqs[2]
    assert m.value("salesloft_pipeline_webhook_unapplied_events") == 2
    assert m.value("salesloft_pipeline_webhook_oldest_unapplied_age_seconds") == pytest.approx(
        time.time() - (NOW - 7 * 60), abs=30)
    assert m.value("salesloft_pipeline_webhook_last_apply_timestamp_seconds") == pytest.approx(time.time(), abs=60)
    # Warehouse: by stream.
    assert m.value("salesloft_pipeline_stream_records", stream="people") == 150
    assert m.value("salesloft_pipeline_stream_rejected_records", stream="people") == 1
    assert m.value("salesloft_pipeline_stream_loaded_days", stream="people") == 2
    assert m.value("salesloft_pipeline_stream_records", stream="calls") == 5
    for stream, ago in (("people", 600), ("emails", 7200), ("calls", 100)):
        assert m.value("salesloft_pipeline_stream_last_load_age_seconds", stream=stream) == pytest.approx(
            time.time() - (NOW - ago), abs=30)
        assert m.value("salesloft_pipeline_stream_last_load_timestamp_seconds", stream=stream) == pytest.approx(NOW - ago, abs=1)
    assert m.value("salesloft_pipeline_api_requests", stream="people") == 3
    assert m.value("salesloft_pipeline_api_cost", stream="emails") == 4
    assert m.value("salesloft_pipeline_api_429_responses", stream="people") == 1
    assert m.value("salesloft_pipeline_api_429_responses", stream="emails") == 2
    assert m.labels("salesloft_pipeline_api_cost", "stream") == {"people", "emails"}  # calls recorded none
    # The budget seen last, whichever stream saw it.
    assert m.value("salesloft_pipeline_api_budget_left") == 420
    assert m.value("salesloft_pipeline_api_budget_left_timestamp_seconds") == pytest.approx(NOW - 600, abs=1)
    # The endpoint's own metrics are still there, and every family explains itself.
    assert m.value("salesloft_webhook_events_received_total", event_type="person_updated") == 1
    assert all(m.help[name] for name in m.help), [name for name in m.help if not m.help[name]]
    assert m.types["salesloft_pipeline_source_errors"] == "counter"


def test_without_the_api_columns_their_series_are_omitted(tmp_path: Path) -> None:
    store = open_event_store(str(tmp_path / "events.sqlite"))
    store.setup()
    populate_warehouse(open_warehouse(str(tmp_path / "warehouse.duckdb")), api_columns=False)
    with endpoint(PipelineCollector(store, WarehouseReader(str(tmp_path / "warehouse.duckdb"))), tmp_path) as url:
        m = scrape(url)
    assert m.value("salesloft_pipeline_source_up", source="warehouse") == 1
    assert m.value("salesloft_pipeline_stream_records", stream="emails") == 30
    assert not [name for name in m.help if name.startswith("salesloft_pipeline_api_")]
    # An empty store: nothing to apply, no apply yet.
    assert m.value("salesloft_pipeline_webhook_last_seq") == 0
    assert m.value("salesloft_pipeline_webhook_unapplied_events") == 0
    assert m.value("salesloft_pipeline_webhook_oldest_unapplied_age_seconds") == 0
    assert not m.has("salesloft_pipeline_webhook_last_apply_timestamp_seconds")


def test_a_warehouse_with_nothing_loaded_yet(tmp_path: Path) -> None:
    """No file yet: the source is down (and says why); an empty warehouse: up, no stream series."""
    path = tmp_path / "warehouse.duckdb"
    collector = PipelineCollector(None, WarehouseReader(str(path)))
    with endpoint(collector, tmp_path) as url, logged_errors() as errors:
        assert scrape(url).value("salesloft_pipeline_source_up", source="warehouse") == 0
        assert not path.exists()  # a scrape creates nothing
        open_warehouse(str(path)).setup([])
        m = scrape(url)
    assert m.value("salesloft_pipeline_source_up", source="warehouse") == 1
    assert not m.has("salesloft_pipeline_stream_records")
    assert errors == []


# -- a busy, missing or silent source ---------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])  # read-write: the one writer DuckDB allows
    conn.execute("BEGIN TRANSACTION")
    print("holding", flush=True)
    time.sleep(120)
""")


def test_a_warehouse_held_by_another_process_does_not_hang_the_scrape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "warehouse.duckdb"
    populate_warehouse(open_warehouse(str(path)))
    store = open_event_store(str(tmp_path / "events.sqlite"))
    populate_store(store)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with endpoint(PipelineCollector(store, WarehouseReader(str(path))), tmp_path) as url:
            caplog.set_level(logging.INFO, logger="salesloft_pipeline.monitoring")
            for _ in range(2):
                started = time.monotonic()
                m = scrape(url)
                assert time.monotonic() - started < 5  # a short wait for the lock, then up 0
                assert m.value("salesloft_pipeline_source_up", source="warehouse") == 0
                assert m.value("salesloft_pipeline_source_up", source="events") == 1  # the other source still reported
                assert m.value("salesloft_pipeline_webhook_unapplied_events") == 2
                assert not m.has("salesloft_pipeline_stream_records")
            assert m.value("salesloft_pipeline_source_errors_total", source="warehouse", error="WarehouseBusy") == 2
            busy = [r for r in caplog.records if "cannot read the warehouse" in r.getMessage()]
            assert len(busy) == 1 and "held by a writer" in busy[0].getMessage()  # one line per outage
            holder.kill()
            holder.wait(30)
            m = scrape(url)
            assert m.value("salesloft_pipeline_source_up", source="warehouse") == 1
            assert m.value("salesloft_pipeline_stream_records", stream="people") == 150
            assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        holder.kill()
        holder.wait(30)


WRITE = textwrap.dedent("""
    import sys, time
    from datetime import date, timedelta
    from salesloft_pipeline.defs.extract.tables import raw_table
    from salesloft_pipeline.salesloft import BY_NAME
    from salesloft_pipeline.warehouse import DuckDBWarehouse
    wh = DuckDBWarehouse(sys.argv[1], lock_timeout=30)
    table = raw_table(BY_NAME["notes"])
    wh.setup([table])
    print("ready", flush=True)
    slowest = 0.0
    for i in range(40):
        started = time.monotonic()
        wh.replace_partition(table, date(2026, 1, 1) + timedelta(days=i),
                             [{"id": i, "updated_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z"}])
        slowest = max(slowest, time.monotonic() - started)
    print(f"slowest {slowest}", flush=True)
""")


def test_scrapes_do_not_keep_warehouse_writers_out(tmp_path: Path) -> None:
    """A scrape holds the DuckDB file for milliseconds: a writer in another process, taking
    turns with scrapes in a loop, commits every day load with little waiting."""
    path = tmp_path / "warehouse.duckdb"
    # Without the API columns: today's _record_load inserts five values, positionally.
    populate_warehouse(open_warehouse(str(path)), api_columns=False)
    root = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen([sys.executable, "-c", WRITE, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)})
    up: list[float] = []
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        with endpoint(PipelineCollector(None, WarehouseReader(str(path))), tmp_path) as url:
            while writer.poll() is None:
                up.append(scrape(url).value("salesloft_pipeline_source_up", source="warehouse"))
            last = scrape(url)
        out = writer.stdout.read()
        assert writer.returncode == 0, out
    finally:
        writer.kill()
        writer.wait(30)
    slowest = float(out.split()[-1])
    assert slowest < 5, f"a write waited {slowest:.1f} s for scrapes"
    assert len(up) >= 5 and sum(up) >= 1  # scrapes ran meanwhile, and some got through
    assert last.value("salesloft_pipeline_stream_loaded_days", stream="notes") == 40


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port on loopback that accepts connections and never answers (a hung database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_source_that_never_answers_neither_hangs_the_scrape_nor_delays_deliveries(tmp_path: Path) -> None:
    with silent_server() as port:
        hung = f"postgresql://pipeline:pw@127.0.0.1:{port}/db"
        # Each source hangs for its whole timeout: a delivery waiting for the scrape would take 2.5 s.
        collector = PipelineCollector(open_event_store(hung), WarehouseReader(hung), timeout=1.5)
        with endpoint(collector, tmp_path) as url:
            scraping = threading.Thread(target=scrape, args=(url,))
            scraping.start()
            time.sleep(0.5)  # the scrape is now waiting on the first source
            body = b'{"id": 5}'
            started = time.monotonic()
            answer = httpx.post(f"{url}{PATH}", content=body, timeout=10, headers={
                "x-salesloft-event": "person_updated", "x-salesloft-signature": sign(body, SECRET)})
            assert answer.status_code == 200 and time.monotonic() - started < 1.5
            scraping.join(30)
            started = time.monotonic()
            m = scrape(url)
            # The reads of the first scrape still hang: this one reports both down without waiting.
            assert time.monotonic() - started < 1.5
    assert m.value("salesloft_pipeline_source_up", source="events") == 0
    assert m.value("salesloft_pipeline_source_up", source="warehouse") == 0
    assert m.value("salesloft_pipeline_source_errors_total", source="warehouse", error="SourceUnavailable") == 2


PASSWORD = "s3cr3t-Pw%40x"  # percent-encoded in the URL: "s3cr3t-Pw@x" once decoded


@pytest.mark.parametrize("where", ["refused", "no_such_database", "invalid_url"])
def test_no_password_reaches_the_scrape_or_the_logs_when_a_source_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    url = {
        "refused": f"postgresql://pipeline:{PASSWORD}@127.0.0.1:1/events",  # nothing listens on port 1
        "no_such_database": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/slp_no_such_database",
        "invalid_url": f"postgresql://pipeline:{PASSWORD}@[bad/events",  # libpq would quote it whole
    }[where]
    caplog.set_level(logging.DEBUG)
    collector = PipelineCollector(open_event_store(url), WarehouseReader(url))
    with endpoint(collector, tmp_path) as endpoint_url:
        m = scrape(endpoint_url)
    assert m.value("salesloft_pipeline_source_up", source="events") == 0
    assert m.value("salesloft_pipeline_source_up", source="warehouse") == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "cannot read the webhook event store" in logged and "cannot read the warehouse" in logged
    for secret in (PASSWORD, "s3cr3t-Pw@x", "s3cr3t"):
        assert secret not in m.text
        assert secret not in logged


def test_mark_applied_tells_a_store_from_before_the_marker_how_far_the_sensor_came(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from salesloft_pipeline.webhooks.cli import webhooks_group

    path = tmp_path / "events.sqlite"
    store = open_event_store(str(path))
    store.setup()
    store.append_many([NewEvent("person_updated", b'{"id": %d}' % i, True, NOW) for i in range(5)])
    runner = CliRunner()
    env = {"SALESLOFT_EVENTS_URL": str(path)}
    past = runner.invoke(webhooks_group, ["mark-applied", "--through", "6"], env=env)
    assert past.exit_code == 2 and "past the last event stored (5)" in past.output
    assert store.progress().applied_through == 0
    done = runner.invoke(webhooks_group, ["mark-applied", "--through", "3"], env=env)
    assert done.exit_code == 0, done.output
    assert "every event up to 3 is applied" in done.output
    assert (store.progress().applied_through, store.progress().unapplied) == (3, 2)


def test_webhooks_serve_reports_the_stores_named_by_the_environment(tmp_path: Path) -> None:
    from .test_webhooks_crash import free_port

    root = Path(__file__).resolve().parents[1]
    populate_warehouse(open_warehouse(str(tmp_path / "wh.duckdb")))
    populate_store(open_event_store(str(tmp_path / "events.sqlite")))
    env = {**os.environ, "PYTHONPATH": str(root), "SALESLOFT_WEBHOOK_SECRET": SECRET,
           "SALESLOFT_EVENTS_URL": str(tmp_path / "events.sqlite"),
           "SALESLOFT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'wh.duckdb'}"}
    bad = subprocess.run([sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", "0"],
                         env={**env, "SALESLOFT_WAREHOUSE_URL": "mysql://h/db"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "SALESLOFT_WAREHOUSE_URL" in bad.stderr
    for options, warehouse in (([], True), (["--no-warehouse-metrics"], False)):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", str(port),
                                   *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None and time.monotonic() < deadline, "the endpoint did not start"
                try:
                    m = scrape(f"http://127.0.0.1:{port}")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(30)
        assert m.value("salesloft_pipeline_source_up", source="events") == 1
        assert m.value("salesloft_pipeline_webhook_unapplied_events") == 2
        if warehouse:
            assert m.value("salesloft_pipeline_stream_records", stream="people") == 150
        else:
            assert m.labels("salesloft_pipeline_source_up", "source") == {"events"}
            assert not m.has("salesloft_pipeline_stream_records")
