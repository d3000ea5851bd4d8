"""Write-back survives lost answers and crashes between sending and recording: nothing is sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
import pytest

from salesloft_pipeline.defs.writeback.assets import writeback_cadence_enrollments, writeback_people
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline_tests.test_writeback import (
    by_email,
    fill,
    ledger_rows,
    pairs,
    reset_stats,
    sl,
    stats,
    truth,
    unique,
    writes_sent,
)
from salesloft_pipeline.defs.resources import WarehouseResource

CHILD = textwrap.dedent(
    """
    import os, sys
    import dagster as dg
    from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
    from salesloft_pipeline.defs.writeback.assets import writeback_cadence_enrollments, writeback_people

    asset = {"people": writeback_people, "enrollments": writeback_cadence_enrollments}[sys.argv[1]]
    instance = dg.DagsterInstance.local_temp(tempdir=os.environ["TEST_DAGSTER_HOME"])
    dg.materialize(
        [asset],
        instance=instance,
        resources={
            "salesloft": SalesloftResource(
                api_key=os.environ["TEST_API_KEY"], base_url=os.environ["TEST_BASE_URL"], window_seconds=1
            ),
            "warehouse": WarehouseResource(url=os.environ["TEST_WAREHOUSE"]),
        },
    )
    """
)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(seed=37, people=60, days=2, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


def materialize(sim: Simulator, url: str, asset: dg.AssetsDefinition, instance: dg.DagsterInstance | None = None):
    return dg.materialize(
        [asset],
        instance=instance,
        resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)},
        raise_on_error=False,
    )


def crash_midway(sim: Simulator, url: str, home: Path, which: str, applied: callable) -> None:
    """Runs the asset in a child process, slowed by a small rate limit, and kills it (SIGKILL)
    as soon as SalesLoft has applied some of its writes: their answers are not recorded yet."""
    httpx.post(f"{sim.url}/__sim/budget", json={"budget": 4, "window_seconds": 1}).raise_for_status()
    env = {
        **os.environ,
        "TEST_DAGSTER_HOME": str(home),
        "TEST_API_KEY": sim.api_key,
        "TEST_BASE_URL": sim.base_url,
        "TEST_WAREHOUSE": url,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, which], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while applied() < 2:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child applied nothing"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        httpx.post(f"{sim.url}/__sim/budget", json={"budget": 0, "window_seconds": 60}).raise_for_status()


def resume(sim: Simulator, url: str, home: Path, asset: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    """The rerun: refused while the dead run still looks alive, then done once it is marked failed."""
    instance = dg.DagsterInstance.local_temp(tempdir=str(home))
    [dead] = instance.get_runs()
    before = writes_sent(sim)
    blocked = materialize(sim, url, asset, instance)
    assert not blocked.success and "is writing back" in str(blocked.all_events)
    assert writes_sent(sim) == before  # the blocked run sent nothing
    instance.report_run_failed(dead)  # what Dagster's run monitoring does for a dead worker
    result = materialize(sim, url, asset, instance)
    assert result.success
    return result


def test_a_lost_answer_is_reconciled_not_resent(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    emails = [f"{unique('drop')}@example.com" for _ in range(3)]
    fill(url, [{"email_address": e, "title": "T"} for e in emails])
    # The first request (the email lookup) passes; the first POST is applied and its answer dropped.
    httpx.post(f"{sim.url}/__sim/faults", json={"next": ["slow", "drop"], "slow_seconds": 0}).raise_for_status()
    reset_stats(sim)
    first = materialize(sim, url, writeback_people)
    assert first.success
    rows = {r["row_key"]: r for r in ledger_rows(url, first.dagster_run.run_id)}
    assert sorted(r["status"] for r in rows.values()) == ["ok", "ok", "sent"]
    [lost] = [k for k, r in rows.items() if r["status"] == "sent"]
    assert len(by_email(sim)[lost]) == 1  # SalesLoft applied it

    second = materialize(sim, url, writeback_people)
    assert second.success
    assert stats(sim)["write_outcomes"] == {"person_created": 3}
    assert ledger_rows(url, second.dagster_run.run_id) == []
    settled = {r["row_key"]: r for r in ledger_rows(url)}[lost]
    assert settled["status"] == "ok" and settled["note"].startswith("reconciled")
    assert settled["resource_id"] == str(by_email(sim)[lost][0]["id"])


def test_crash_after_creating_people_creates_no_duplicate(sim: Simulator, tmp_path: Path) -> None:
    url, home = str(tmp_path / "warehouse.duckdb"), tmp_path / "dagster"
    home.mkdir()
    emails = [f"{unique('crash')}@example.com" for _ in range(20)]
    fill(url, [{"email_address": e, "first_name": "Crash"} for e in emails])
    reset_stats(sim)
    crash_midway(sim, url, home, "people", lambda: sum(1 for e in emails if e in by_email(sim)))

    left = [r for r in ledger_rows(url) if r["status"] == "pending"]
    created_unrecorded = [r for r in left if r["row_key"] in by_email(sim)]
    assert created_unrecorded, "the child was not killed between sending and recording"

    resume(sim, url, home, writeback_people)
    found = by_email(sim)
    assert all(len(found[e]) == 1 for e in emails)
    assert stats(sim)["write_outcomes"] == {"person_created": 20}
    assert stats(sim)["writes_refused"] == {}  # no create was tried twice
    rows = ledger_rows(url)
    assert {r["status"] for r in rows} <= {"ok", "skipped"}
    reconciled = [r for r in rows if (r["note"] or "").startswith("reconciled: the person is in SalesLoft")]
    assert {r["row_key"] for r in reconciled} >= {r["row_key"] for r in created_unrecorded}
    ok = {r["row_key"]: r["resource_id"] for r in rows if r["status"] == "ok"}
    assert ok == {e: str(found[e][0]["id"]) for e in emails}


def test_crash_after_enrolling_enrolls_no_one_twice(sim: Simulator, tmp_path: Path) -> None:
    url, home = str(tmp_path / "warehouse.duckdb"), tmp_path / "dagster"
    home.mkdir()
    cadence = sorted(truth(sim, "cadences").values(), key=lambda c: c["id"])[-1]
    on = pairs(sim)
    people = [
        p["id"]
        for p in sorted(truth(sim, "people").values(), key=lambda p: p["id"])
        if (p["id"], cadence["id"]) not in on
    ][:15]
    assert len(people) == 15
    fill(url, [], [{"person_id": p, "cadence_id": cadence["id"]} for p in people])
    reset_stats(sim)
    crash_midway(sim, url, home, "enrollments", lambda: sum(1 for p in people if (p, cadence["id"]) in pairs(sim)))
    assert any(
        r["status"] == "pending" and (r["request"]["person_id"], cadence["id"]) in pairs(sim) for r in ledger_rows(url)
    )

    resume(sim, url, home, writeback_cadence_enrollments)
    on = pairs(sim)
    assert all(len(on[(p, cadence["id"])]) == 1 for p in people)
    outcomes = stats(sim)["write_outcomes"]
    assert outcomes == {"membership_created": 15}
    assert stats(sim)["writes_refused"] == {}  # nobody was added twice ("already on this cadence")
    ok = [r for r in ledger_rows(url) if r["status"] == "ok"]
    assert sorted(int(r["request"]["person_id"]) for r in ok) == sorted(people)
