"""The webhook sensor through a six-hour warehouse outage: no run storm, nothing lost.

Runs are recorded in a real Dagster instance and looked up the way the sensor
does; ticks come every 15 s of a simulated clock, with events arriving all
the while, every apply run failing until the warehouse comes back.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from salesloft_pipeline.defs.webhooks import sensors
from salesloft_pipeline.defs.webhooks.jobs import BATCH_TAG, webhook_apply_job

TICK_SECONDS = 15
EVENTS_PER_TICK = 20


def test_six_hours_of_failing_applies_cost_a_few_runs_and_lose_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    ended_at: dict[str, float] = {}  # run id -> simulated time its run ended
    monkeypatch.setattr(sensors, "_finished_at", lambda instance, run: ended_at[run.run_id])
    start = 1_800_000_000.0
    with dg.instance_for_test() as instance:
        cursor: str | None = None
        last_seq = 0
        launched: list[dg.DagsterRun] = []

        def tick(now: float, outcome: dg.DagsterRunStatus) -> None:
            nonlocal cursor
            requests, cursor, _ = sensors.evaluate(instance, last_seq, cursor, now=now)
            for request in requests:
                run = instance.create_run_for_job(webhook_apply_job, run_config=request.run_config, tags=request.tags)
                launched.append(run)
                ended_at[run.run_id] = now + 5  # a run takes a few seconds to start and fail
                if outcome == dg.DagsterRunStatus.FAILURE:
                    instance.report_run_failed(run)
                else:
                    instance.handle_run_event(run.run_id, _success_event(run))

        outage_ticks = 6 * 3600 // TICK_SECONDS
        for n in range(outage_ticks):
            last_seq += EVENTS_PER_TICK
            tick(start + n * TICK_SECONDS, dg.DagsterRunStatus.FAILURE)
        state = json.loads(cursor)
        assert len(launched) <= 30, f"{len(launched)} runs in 6 hours"  # was one per range per tick: thousands
        assert len(state["outstanding"]) == 1
        # The warehouse is back: the retry and the ranges after it succeed, and catch up.
        recovered = len(launched)
        now = start + outage_ticks * TICK_SECONDS
        for n in range(200):
            tick(now + n * TICK_SECONDS, dg.DagsterRunStatus.SUCCESS)
            state = json.loads(cursor)
            if state["requested_through"] == last_seq and not state["outstanding"]:
                break
        assert state == {"requested_through": last_seq, "outstanding": {}}
        # Every event is in a range whose run succeeded.
        applied = [
            tuple(int(x) for x in run.tags[BATCH_TAG].split("-")) for run in launched[recovered:]
            if instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
        ]
        covered = set()
        for after, through in applied:
            covered |= set(range(after + 1, through + 1))
        assert covered == set(range(1, last_seq + 1))


def _success_event(run: dg.DagsterRun):  # type: ignore[no-untyped-def]
    from dagster._core.events import DagsterEvent, DagsterEventType

    return DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name, message="applied")
