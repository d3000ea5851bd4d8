"""The extraction schedules in a long-running deployment: incomplete days are read again, a daily
look-back re-reads the last days, and no stream gets a second run while one is queued or running.

On a real DuckDB file; the end-to-end case reads the simulator over loopback HTTP."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from salesloft_pipeline.defs.extract import schedules
from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, INCREMENTAL_KEYS, raw_asset_key
from salesloft_pipeline.defs.extract.loading import day_start
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse

NOW = datetime(2026, 3, 20, 8, 15, tzinfo=timezone.utc)
TODAY = NOW.date()
EMAILS, CALLS = BY_NAME["emails"], BY_NAME["calls"]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent instance, as a schedule's context needs (runs are looked up in it)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


def tick(url: str, instance: dg.DagsterInstance, when: datetime = NOW):  # type: ignore[no-untyped-def]
    # A context with resources holds them open until it is closed (see conftest.py).
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"warehouse": WarehouseResource(url=url)}
    ) as context:
        return schedules.salesloft_incremental_schedule(context)


def load(url: str, stream, day: date, read_at: datetime) -> None:  # type: ignore[no-untyped-def]
    wh = open_warehouse(url)
    wh.setup([raw_table(stream)])
    wh.replace_partition(raw_table(stream), day, [], extracted_at=read_at)


def days_back(n: int) -> date:
    return TODAY - timedelta(days=n)


def test_a_day_loaded_too_early_or_missed_in_an_outage_is_asked_for_again(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    url = str(tmp_path / "w.duckdb")
    # Emails: loaded from 10 days ago; the day 6 days ago was last read 10 minutes after it ended
    # (then the daemon was down), days 5 and 4 ago were never read; the rest are complete.
    for n in range(10, 0, -1):
        if n in (5, 4):
            continue
        ended = day_start(days_back(n) + timedelta(days=1))
        load(url, EMAILS, days_back(n), ended + (timedelta(minutes=10) if n == 6 else timedelta(hours=2)))
    request = tick(url, instance)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (days_back(6).isoformat(), TODAY.isoformat())
    assert set(request.asset_selection) == set(INCREMENTAL_KEYS)


def test_days_before_a_streams_first_load_or_past_the_catch_up_window_are_not_asked_for(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    url = str(tmp_path / "w.duckdb")
    # Calls: only the last 3 days were backfilled, all complete: nothing older is wanted.
    for n in (3, 2):
        load(url, CALLS, days_back(n), day_start(days_back(n - 1)) + timedelta(hours=3))
    request = tick(url, instance)
    assert request.tags[RANGE_START_TAG] == days_back(1).isoformat()
    # An incomplete day older than the catch-up window is left to a backfill.
    old = days_back(schedules.CATCHUP_DAYS + 5)
    load(url, EMAILS, old, day_start(old) + timedelta(hours=1))
    load(url, EMAILS, days_back(2), NOW)
    assert tick(url, instance).tags[RANGE_START_TAG] == days_back(schedules.CATCHUP_DAYS).isoformat()


def test_no_second_run_for_a_stream_with_one_queued_or_running(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    url = str(tmp_path / "w.duckdb")
    from salesloft_pipeline.definitions import defs

    job = defs.get_job_def(schedules.incremental_job.name)
    instance.create_run_for_job(job, asset_selection=frozenset({raw_asset_key(EMAILS)}))  # a backfill of emails
    request = tick(url, instance)
    assert raw_asset_key(EMAILS) not in request.asset_selection
    assert len(request.asset_selection) == len(INCREMENTAL_KEYS) - 1
    # The previous tick's run for every stream still waits for the API pool: skip.
    instance.create_run_for_job(job)
    assert isinstance(tick(url, instance), dg.SkipReason)
    # The daily look-back asks anyway: once a day cannot pile up, and skipping would lose that day's look-back.
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=NOW)
    assert isinstance(schedules.salesloft_lookback_schedule(context), dg.RunRequest)


def test_the_look_back_reads_the_last_days_again_even_when_complete(instance: dg.DagsterInstance) -> None:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=NOW)
    request = schedules.salesloft_lookback_schedule(context)
    first = TODAY - timedelta(days=schedules.LOOKBACK_DAYS)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (first.isoformat(), days_back(1).isoformat())
    ops = request.run_config["ops"]
    assert request.asset_selection is None  # the whole job: every incremental stream
    assert set(ops) == {"__".join(k.path) for k in INCREMENTAL_KEYS}
    assert all(op == {"config": {"force": True}} for op in ops.values())
    from salesloft_pipeline.definitions import defs

    dg.validate_run_config(defs.get_job_def(schedules.incremental_job.name), request.run_config)


def _hold(path: str, held: multiprocessing.Event, release: multiprocessing.Event) -> None:
    import duckdb

    conn = duckdb.connect(path)
    held.set()
    release.wait(60)
    conn.close()


def test_a_busy_duckdb_file_falls_back_to_yesterday_and_today(tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "w.duckdb")
    load(url, EMAILS, days_back(6), day_start(days_back(5)) + timedelta(minutes=10))  # incomplete
    monkeypatch.setattr(schedules, "WAREHOUSE_WAIT_SECONDS", 0.5)
    held, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(url, held, release))
    holder.start()
    try:
        assert held.wait(30)
        request = tick(url, instance)
        assert request.tags[RANGE_START_TAG] == days_back(1).isoformat()
    finally:
        release.set()
        holder.join(30)
    assert tick(url, instance).tags[RANGE_START_TAG] == days_back(6).isoformat()


def test_the_schedules_run_reads_a_day_that_was_loaded_too_early(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    url = str(tmp_path / "w.duckdb")
    now = datetime.now(timezone.utc)
    anchor = now.replace(minute=0, second=0, microsecond=0)
    config = SimulatorConfig(seed=3, people=60, days=5, anchor=anchor, budget=0)
    with Simulator(config).serve() as sim:
        resources = {
            "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
            "warehouse": WarehouseResource(url=url),
        }
        [emails] = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(EMAILS)]
        early = now.date() - timedelta(days=3)
        # The day was read 5 minutes after it ended, and what SalesLoft listed later never was.
        load(url, EMAILS, early, day_start(early + timedelta(days=1)) + timedelta(minutes=5))
        load(url, EMAILS, early - timedelta(days=1), now)
        request = tick(url, instance, when=now)
        assert request.tags[RANGE_START_TAG] == early.isoformat()
        result = dg.materialize([emails], resources=resources, tags=request.tags)
        assert result.success
        days = {e.materialization.partition for e in result.get_asset_materialization_events()}
        assert early.isoformat() in days and (early - timedelta(days=1)).isoformat() not in days
        rows, loaded_at = open_warehouse(url).loaded_partitions("emails")[early]
        assert rows > 0 and loaded_at > day_start(early + timedelta(days=1)) + timedelta(hours=1)
