"""One writer per write-back asset: the lease is taken atomically (two racers on Postgres: one wins),
renewed while the run waits on SalesLoft's rate limit, and a run that lost it stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
import pytest

from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.writeback.assets import writeback_people
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.warehouse.writeback import LEASES, LeaseHeld, Ledger
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_writeback import fill, ledger_rows, reset_stats, unique, writes_sent

ASSET = "writeback/people"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(seed=43, people=30, days=2, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


@contextmanager
def warehouse_url(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "duckdb":
        yield str(tmp_path / "warehouse.duckdb")
    else:
        with fresh_database("slp_wb_lease") as url:
            yield url


def holder(url: str) -> list[tuple[str]]:
    return open_warehouse(url).query(f"SELECT run_id FROM {LEASES} WHERE asset = '{ASSET}'")


# -- the lease itself ----------------------------------------------------------------------
def test_two_runs_racing_for_a_dead_runs_lease_on_postgres_one_wins() -> None:
    """Both read the lease of a run that ended, both hear from Dagster that it ended, both try to take it."""
    with fresh_database("slp_wb_race") as url:
        Ledger(open_warehouse(url)).setup()
        Ledger(open_warehouse(url)).acquire(ASSET, "dead-run", lambda run: None)
        barrier = threading.Barrier(2)

        def alive(run_id: str) -> bool:
            barrier.wait(timeout=30)  # both racers have read the lease row before either writes
            return False

        won: list[str] = []
        lost: list[Exception] = []

        def race(run_id: str) -> None:
            try:
                Ledger(open_warehouse(url)).acquire(ASSET, run_id, alive)
                won.append(run_id)
            except Exception as error:  # noqa: BLE001 - collected and checked below
                lost.append(error)

        threads = [threading.Thread(target=race, args=(run,)) for run in ("run-a", "run-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(won) == 1, (won, lost)
        [error] = lost
        assert isinstance(error, LeaseHeld)
        assert holder(url) == [(won[0],)]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_renewing_a_lease_taken_over_raises(engine: str, tmp_path: Path) -> None:
    with warehouse_url(engine, tmp_path) as url:
        ledger = Ledger(open_warehouse(url))
        ledger.setup()
        ledger.acquire(ASSET, "run-x", lambda run: None)
        ledger.renew(ASSET, "run-x")
        ledger.acquire(ASSET, "run-y", lambda run: True, stale_after=timedelta(0))  # run-x went unrenewed
        with pytest.raises(Exception) as raised:
            ledger.renew(ASSET, "run-x")
        assert type(raised.value).__name__ == "LeaseLost"
        assert "run run-y holds it now" in str(raised.value)
        assert holder(url) == [("run-y",)]
        ledger.renew(ASSET, "run-y")  # the holder's renewals carry on
        ledger.release(ASSET, "run-x")  # releasing a lost lease leaves the new holder's alone
        assert holder(url) == [("run-y",)]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_lease_judged_free_but_changed_meanwhile_is_not_taken(engine: str, tmp_path: Path) -> None:
    """Compare-and-set on one thread: while run-b asks Dagster about the holder, run-c takes the lease."""
    with warehouse_url(engine, tmp_path) as url:
        ledger = Ledger(open_warehouse(url))
        ledger.setup()
        ledger.acquire(ASSET, "run-a", lambda run: None)

        def alive(run_id: str) -> bool:
            Ledger(open_warehouse(url)).acquire(ASSET, "run-c", lambda run: False)
            return False

        with pytest.raises(LeaseHeld):
            ledger.acquire(ASSET, "run-b", alive)
        assert holder(url) == [("run-c",)]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_ledger_indexes(engine: str, tmp_path: Path) -> None:
    """Postgres gets indexes for the ledger's lookups, created once however often setup runs."""
    with warehouse_url(engine, tmp_path) as url:
        wh = open_warehouse(url)
        Ledger(wh).setup()
        Ledger(wh).setup()
        if engine == "duckdb":  # zone maps; an index would slow every write
            return
        found = wh.query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'writeback' AND tablename = 'ledger'")
        definitions = sorted(d.split(" USING btree ")[1] for (d,) in found)
        assert definitions == ["(asset, row_key)", "(asset, status)", "(id)", "(run_id, asset)"]


# -- a run keeps its lease while it waits, and stops when it lost it --------------------------------
def slow_run(sim: Simulator, url: str, lease_timeout: float) -> tuple[threading.Thread, list]:
    """writeback/people in a thread, paced to about one request a second by a budget of 2 per 1 s window."""
    httpx.post(f"{sim.url}/__sim/budget", json={"budget": 2, "window_seconds": 1}).raise_for_status()
    results: list = []

    def run() -> None:
        results.append(
            dg.materialize(
                [writeback_people],
                resources={
                    "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url, window_seconds=1),
                    "warehouse": WarehouseResource(url=url),
                },
                run_config={"ops": {"writeback__people": {"config": {"lease_timeout_seconds": lease_timeout}}}},
                raise_on_error=False,
            )
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def wait_for(condition: Callable[[], bool], thread: threading.Thread) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert thread.is_alive(), "the run ended first"
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def unlimited_after(sim: Simulator) -> Iterator[None]:
    yield
    httpx.post(f"{sim.url}/__sim/budget", json={"budget": 0, "window_seconds": 60}).raise_for_status()


def test_a_run_waiting_on_the_rate_limit_keeps_its_lease(sim: Simulator, unlimited_after: None) -> None:
    """The run spends most of its time in the client's pacer, waiting for the next window; its lease
    (timeout 2.5 s) never goes stale meanwhile, so another run trying all along never gets it."""
    emails = [f"{unique('wait')}@example.com" for _ in range(5)]
    with fresh_database("slp_wb_wait") as url:
        fill(url, [{"email_address": e, "title": "T"} for e in emails])
        reset_stats(sim)
        thread, results = slow_run(sim, url, lease_timeout=2.5)
        other = Ledger(open_warehouse(url))
        wait_for(lambda: bool(holder(url)), thread)
        taken = []

        def sending() -> bool:  # until every row is answered; then the run releases its lease
            return [r["status"] for r in ledger_rows(url)].count("ok") < len(emails)

        while sending():
            assert thread.is_alive()
            try:
                # A run this Dagster instance does not know: only staleness frees the lease.
                other.acquire(ASSET, "other-run", lambda run: None, stale_after=timedelta(seconds=2.5))
                taken.append(datetime.now(timezone.utc))
                other.release(ASSET, "other-run")
            except LeaseHeld:
                pass
            time.sleep(0.1)
        thread.join()
        assert taken == [], "the lease went stale while its run was waiting"
        [result] = results
        assert result.success
        assert sorted(r["status"] for r in ledger_rows(url, result.dagster_run.run_id)) == ["ok"] * 5


def test_a_run_that_lost_its_lease_stops_before_its_next_request(sim: Simulator, unlimited_after: None) -> None:
    emails = [f"{unique('lost')}@example.com" for _ in range(6)]
    with fresh_database("slp_wb_lost") as url:
        fill(url, [{"email_address": e, "title": "T"} for e in emails])
        reset_stats(sim)
        thread, results = slow_run(sim, url, lease_timeout=2.0)
        wait_for(lambda: writes_sent(sim).get("POST /v2/people", 0) >= 1, thread)
        # Taken over, as if the run had gone unrenewed for the lease timeout. The compare-and-set loses
        # (LeaseHeld) when the run renews between its read and its update: try again, as an operator would.
        other = Ledger(open_warehouse(url))
        for _ in range(50):
            try:
                other.acquire(ASSET, "other-run", lambda run: None, stale_after=timedelta(0))
                break
            except LeaseHeld:
                time.sleep(0.05)
        else:
            pytest.fail("the lease could not be taken over in 50 tries")
        thread.join(60)
        [result] = results
        assert not result.success
        assert "LeaseLost" in str(result.all_events)
        assert writes_sent(sim)["POST /v2/people"] < len(emails)  # it stopped
        assert holder(url) == [("other-run",)]  # and left the new holder's lease alone
        statuses = [r["status"] for r in ledger_rows(url, result.dagster_run.run_id)]
        assert "skipped" in statuses and set(statuses) <= {"ok", "pending", "skipped"}
