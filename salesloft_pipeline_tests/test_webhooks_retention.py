"""Retention of the event store: the sensor deletes old events, never one whose run has not succeeded.

The sensor runs for real (ticks built as the daemon would, runs executed in process) against the
SQLite and the Postgres event store; the warehouse is a DuckDB file."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from salesloft_pipeline.defs.webhooks.jobs import webhook_apply_job
from salesloft_pipeline.defs.webhooks.sensors import (
    RETENTION_VARIABLE,
    applied_through,
    evaluate,
)
from salesloft_pipeline.webhooks import EventStore, NewEvent, open_event_store
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_webhooks_apply import resources, run_sensor

OLD = time.time() - 40 * 86400  # past the default retention of 30 days


@pytest.fixture(params=["sqlite", "postgres"])
def events_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_database("slp_retention_events") as url:
            yield url
    else:
        yield str(tmp_path / "events.sqlite")


def _append(store: EventStore, first_id: int, n: int, received_at: float = OLD) -> None:
    store.setup()
    store.append_many(
        [
            NewEvent(
                "note_updated", json.dumps({"id": i, "updated_at": "2026-01-01T10:00:00Z"}).encode(), True, received_at
            )
            for i in range(first_id, first_id + n)
        ]
    )


def _seqs(store: EventStore) -> list[int]:
    return [e.seq for e in store.read(0)]


class Logs(logging.Handler):
    """The tick's log lines (the sensor's logger does not propagate to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


def test_applied_through_is_below_the_lowest_outstanding_range() -> None:
    assert applied_through(json.dumps({"requested_through": 9, "outstanding": {}})) == 9
    assert applied_through(json.dumps({"requested_through": 9, "outstanding": {"6-9": [1, 0], "2-4": [2, 0]}})) == 2


def test_the_sensor_prunes_old_applied_events_only(
    events_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RETENTION_VARIABLE, raising=False)  # the default: 30 days
    wh, logs = str(tmp_path / "wh.duckdb"), Logs()
    store = open_event_store(events_url)
    _append(store, 1, 3)
    _append(store, 4, 2, received_at=time.time())
    seqs = _seqs(store)
    instance = dg.DagsterInstance.ephemeral()
    cursor, runs = run_sensor(instance, None, wh, events_url)
    # Requested in this tick, not yet applied: all kept.
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] and _seqs(store) == seqs
    cursor, runs = run_sensor(instance, cursor, wh, events_url, logs=logs)
    assert runs == [] and json.loads(cursor) == {"requested_through": seqs[-1], "outstanding": {}}
    assert _seqs(store) == seqs[3:]  # the three old ones went; the recent ones stay
    assert logs.matching("pruned") == ["pruned 3 applied webhook events received over 30 days ago"]
    # New events still come after, numbered above everything handed out.
    _append(store, 10, 1)
    cursor, runs = run_sensor(instance, cursor, wh, events_url)
    assert [r.tags["salesloft/webhook_batch"] for r in runs] == [f"{seqs[-1]}-{seqs[-1] + 1}"]


def test_a_range_whose_run_has_not_succeeded_keeps_its_events_however_old(
    events_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETENTION_VARIABLE, "30")
    wh = str(tmp_path / "wh.duckdb")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    unreachable = str(blocker / "wh.duckdb")  # a file in place of a folder: the run fails
    store = open_event_store(events_url)
    instance = dg.DagsterInstance.ephemeral()
    _append(store, 1, 2)
    cursor, runs = run_sensor(instance, None, wh, events_url)  # range a: applied
    _append(store, 3, 2)
    cursor, runs = run_sensor(instance, cursor, wh, events_url, warehouse_url=unreachable)  # range b: fails
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE]
    _append(store, 5, 2)
    cursor, runs = run_sensor(instance, cursor, wh, events_url)  # b waits for its backoff; the new events with it
    assert runs == []
    # Sequence numbers 1..6 (a fresh store): range a is 0-2, b 2-4.
    assert json.loads(cursor) == {
        "requested_through": 4,
        "outstanding": {"2-4": [1, pytest.approx(time.time(), abs=60)]},
    }
    # Only range a went: b's events failed to apply, the rest lie above b.
    assert _seqs(store) == [3, 4, 5, 6]

    # The failed range and the new events succeed at the next attempt; the next tick prunes all but the latest event.
    requests, cursor, _ = evaluate(instance, store.last_seq(), cursor, now=time.time() + 3600)
    [retry] = requests
    assert retry.tags["salesloft/webhook_batch"] == "2-6"
    assert webhook_apply_job.execute_in_process(
        run_config=retry.run_config, instance=instance, tags=retry.tags, resources=resources(wh, events_url)
    ).success
    cursor, runs = run_sensor(instance, cursor, wh, events_url)
    assert runs == [] and json.loads(cursor) == {"requested_through": 6, "outstanding": {}}
    assert _seqs(store) == [6]


@pytest.mark.parametrize("setting", ["0", "", " 0 ", "thirty", "-1"])
def test_retention_0_empty_or_invalid_keeps_every_event(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETENTION_VARIABLE, setting)
    events_url, wh, logs = str(tmp_path / "events.sqlite"), str(tmp_path / "wh.duckdb"), Logs()
    store = open_event_store(events_url)
    _append(store, 1, 3, received_at=time.time() - 3650 * 86400)
    instance = dg.DagsterInstance.ephemeral()
    cursor, runs = run_sensor(instance, None, wh, events_url)
    cursor, _ = run_sensor(instance, cursor, wh, events_url, logs=logs)
    assert json.loads(cursor) == {"requested_through": 3, "outstanding": {}}
    assert store.count() == 3 and logs.matching("pruned") == []
    assert bool(logs.matching(RETENTION_VARIABLE)) == (setting.strip() not in ("0", ""))


def test_a_failing_prune_warns_and_the_tick_still_requests_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RETENTION_VARIABLE, raising=False)
    events_url, wh = str(tmp_path / "events.sqlite"), str(tmp_path / "wh.duckdb")
    store = open_event_store(events_url)
    _append(store, 1, 3)
    instance = dg.DagsterInstance.ephemeral()
    cursor, _ = run_sensor(instance, None, wh, events_url)
    # The store now refuses deletes (a real database error, raised inside the prune).
    with store._reader() as conn:
        conn.execute("CREATE TRIGGER no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'no'); END")
    _append(store, 4, 1)
    logs = Logs()
    cursor, runs = run_sensor(instance, cursor, wh, events_url, logs=logs)
    assert [r.tags["salesloft/webhook_batch"] for r in runs] == ["3-4"]
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    assert json.loads(cursor)["requested_through"] == 4 and sorted(json.loads(cursor)["outstanding"]) == ["3-4"]
    assert store.count() == 4
    assert logs.matching("pruning the event store failed (IntegrityError)")
