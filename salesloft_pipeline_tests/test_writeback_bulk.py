"""Bulk upsert jobs across a stopped run: a job left open is abandoned and its rows sent again, one that
was started is awaited and its results recorded, one that ended in another state than `done` (the
simulator's `/__sim/bulk_jobs` makes it fail) is not waited on and its rows are settled one by one.
Against the simulator over loopback, on DuckDB files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from salesloft_pipeline.defs.resources import WarehouseResource
from salesloft_pipeline.defs.writeback import people
from salesloft_pipeline.defs.writeback.assets import writeback_people
from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.warehouse.writeback import Ledger
from salesloft_pipeline_tests.conftest import poll
from salesloft_pipeline_tests.test_writeback import (
    by_email,
    fill,
    ledger_rows,
    reset_stats,
    sl,
    stats,
    unique,
    writes_sent,
)

BULK = {"bulk_threshold": 3}
ROWS = 6


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(seed=47, people=30, days=2, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


def materialize(sim: Simulator, url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [writeback_people],
        resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)},
        run_config={"ops": {"writeback__people": {"config": BULK}}},
        raise_on_error=False,
    )


def job(sim: Simulator, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{sim.base_url}/bulk_jobs/{job_id}", headers={"Authorization": f"Bearer {sim.api_key}"})
    return answer.raise_for_status().json()["data"]


def stopped_run(sim: Simulator, url: str, fault: str) -> tuple[list[str], str]:
    """A bulk run whose `PUT bulk_jobs/{id}` (mark ready) gets `fault`, so the run stops there."""
    emails = [f"{unique('bulk')}-{i}@example.com" for i in range(ROWS)]
    fill(url, [{"email_address": e, "title": "Bulk"} for e in emails])
    reset_stats(sim)
    # The email lookup, POST bulk_jobs and POST job_data pass (slow by 0 s); the PUT gets the fault.
    upcoming = ["slow", "slow", "slow", fault]
    httpx.post(f"{sim.url}/__sim/faults", json={"next": upcoming, "slow_seconds": 0}).raise_for_status()
    first = materialize(sim, url)
    assert not first.success
    rows = ledger_rows(url, first.dagster_run.run_id)
    assert [r["status"] for r in rows] == ["pending"] * ROWS
    [job_id] = {r["bulk_job_id"] for r in rows}
    return emails, job_id


def test_a_job_never_marked_ready_is_abandoned_and_its_rows_sent_again(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    emails, first_job = stopped_run(sim, url, "400")  # refused before it was applied: the job stays open
    assert job(sim, first_job)["state"] == "open" and stats(sim)["write_outcomes"] == {}

    second = materialize(sim, url)
    assert second.success
    rows = ledger_rows(url)
    abandoned = [r for r in rows if r["bulk_job_id"] == first_job]
    assert {r["status"] for r in abandoned} == {"skipped"} and len(abandoned) == ROWS
    assert all("never started" in r["note"] for r in abandoned)
    resent = ledger_rows(url, second.dagster_run.run_id)
    assert [r["status"] for r in resent] == ["ok"] * ROWS
    [second_job] = {r["bulk_job_id"] for r in resent}
    assert second_job != first_job
    assert job(sim, first_job)["state"] == "open"  # never run
    found = by_email(sim)
    assert all(len(found[e]) == 1 for e in emails)
    assert stats(sim)["write_outcomes"] == {"person_created": ROWS}


def test_a_started_job_is_awaited_and_its_results_recorded(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    # The PUT is applied and its answer lost; the client resends it (a PUT is idempotent) and gets
    # 422 "job is not open": the run stops with the job executing and its rows pending.
    emails, first_job = stopped_run(sim, url, "drop")
    assert job(sim, first_job)["state"] in ("executing", "done")

    reset_stats(sim)
    second = materialize(sim, url)
    assert second.success
    assert writes_sent(sim) == {}  # no second job, no single writes
    assert ledger_rows(url, second.dagster_run.run_id) == []
    settled = [r for r in ledger_rows(url) if r["bulk_job_id"] == first_job]
    assert [r["status"] for r in settled] == ["ok"] * ROWS
    found = by_email(sim)
    assert {r["row_key"]: r["resource_id"] for r in settled} == {e: str(found[e][0]["id"]) for e in emails}
    assert all(len(found[e]) == 1 for e in emails)


def bulk_job_reads(sim: Simulator) -> int:
    """`/v2` requests since the stats were reset that read a bulk job: those of no stream and no write."""
    counted = stats(sim)
    return counted["requests"] - sum(counted["by_stream"].values()) - sum(counted["writes_by_endpoint"].values())


def test_a_job_in_another_state_is_not_waited_on(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    # SalesLoft ends the next job in state `failed` after applying half its records.
    applied = ROWS // 2
    settings = {"fail_next": 1, "state": "failed", "applied": applied}
    httpx.post(f"{sim.url}/__sim/bulk_jobs", json=settings).raise_for_status()
    try:
        emails, first_job = stopped_run(sim, url, "drop")  # the PUT was applied: the job ran and failed
    finally:
        httpx.post(f"{sim.url}/__sim/bulk_jobs", json={}).raise_for_status()  # no later job fails

    def ended() -> dict[str, Any] | None:
        shown = job(sim, first_job)
        return shown if shown["state"] != "executing" else None

    shown = poll(ended, what=f"bulk job {first_job} to end")
    assert (shown["state"], shown["total"], shown["processed"]) == ("failed", ROWS, applied)

    ledger = Ledger(open_warehouse(url))
    reset_stats(sim)
    with SalesloftClient(sim.api_key, sim.base_url) as client:
        with pytest.raises(people.BulkJobFailed) as raised:
            people.wait_for_job(client, first_job, lambda: None, timeout=3)
        assert "'failed'" in str(raised.value)
        assert stats(sim)["requests"] == bulk_job_reads(sim) == 1, "one poll, no waiting"

        # The next run's reconciliation settles its rows one by one by email, without waiting.
        settled = people.reconcile(client, ledger, lambda: None, timeout=3)
    assert bulk_job_reads(sim) == 2 and writes_sent(sim) == {}
    assert {e.row_key for e in settled} == set(emails)
    rows = {r["row_key"]: r for r in ledger_rows(url) if r["bulk_job_id"] == first_job}
    # The job applied its first records, in the order it was sent them: those are reconciled as in SalesLoft.
    results = httpx.get(
        f"{sim.base_url}/bulk_jobs/{first_job}/results", headers={"Authorization": f"Bearer {sim.api_key}"}
    ).json()["data"]
    reached = {r["record"]["email_address"] for r in results}
    assert len(reached) == applied and reached < set(emails)
    found = by_email(sim)
    for email in emails:
        if email in reached:
            assert (rows[email]["status"], rows[email]["note"]) == ("ok", "reconciled: the person is in SalesLoft")
            assert rows[email]["resource_id"] == str(found[email][0]["id"])
        else:
            assert rows[email]["status"] == "skipped" and email not in found
            assert rows[email]["note"] == "reconciled: not in SalesLoft, never applied; planned again"
