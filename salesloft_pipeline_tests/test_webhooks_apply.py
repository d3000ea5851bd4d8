"""The sensor and the apply job: webhook events reach raw tables and staging, deletes included.

On DuckDB with the SQLite event store (the defaults) and on Postgres for both (a team's setup)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import uvicorn
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.defs.webhooks.jobs import ATTEMPT_TAG, BATCH_TAG, webhook_apply_job
from salesloft_pipeline.defs.webhooks.resources import EventStoreResource
from salesloft_pipeline.defs.webhooks.sensors import LOST_RUN_SECONDS, evaluate, salesloft_webhooks_sensor
from salesloft_pipeline.salesloft import BY_NAME, SalesloftClient
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.webhooks import APPLIED_EVENT_TYPES, EventStore, NewEvent, Secrets, open_event_store
from salesloft_pipeline.webhooks.app import PATH, create_app
from salesloft_pipeline.webhooks.subscriptions import list_subscriptions, subscribe, unsubscribe
from salesloft_pipeline_tests.postgres import fresh_database

SECRET = "apply-test-secret"
POLLED = ["people", "accounts", "notes", "tasks", "emails", "cadence_memberships"]
WEBHOOK_ONLY = ["calls", "meetings"]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(timezone.utc)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(
        seed=23, people=80, days=3, anchor=anchor, budget=0, webhook_retry_seconds=0.2, webhook_duplicate_rate=0.05
    )
    with Simulator(config).serve() as simulator:
        yield simulator


@pytest.fixture(params=["duckdb+sqlite", "postgres"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(warehouse, event store) of one test: DuckDB and SQLite files, or two fresh Postgres databases."""
    if request.param == "postgres":
        with fresh_database("slp_webhooks_wh") as warehouse, fresh_database("slp_webhooks_events") as events:
            yield warehouse, events
    else:
        yield str(tmp_path / "warehouse.duckdb"), str(tmp_path / "events.sqlite")


class Endpoint:
    """The real ASGI app under uvicorn, on loopback, in a thread."""

    def __init__(self, store: EventStore) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(store, Secrets(SECRET)), host="127.0.0.1", port=0, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "endpoint did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{PATH}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def truth(sim: Simulator, stream: str) -> dict[Any, datetime | None]:
    answer = httpx.get(f"{sim.url}/__sim/truth/{stream}", timeout=60).json()
    return {r["id"]: _utc(r["updated_at"]) for r in answer["records"]}


def staging(wh_path: str, stream: str) -> dict[Any, datetime | None]:
    rows = open_warehouse(str(wh_path)).query(f"SELECT id, updated_at FROM staging.{stream}")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), f"staging.{stream} has duplicate ids"
    return {record_id: _utc(updated_at) for record_id, updated_at in rows}


def resources(wh_path: str, events_path: str) -> dict[str, Any]:
    return {"warehouse": WarehouseResource(url=str(wh_path)), "events": EventStoreResource(url=str(events_path))}


def run_sensor(instance: dg.DagsterInstance, cursor: str | None, wh_path: str, events_path: str,
               warehouse_url: str | None = None, logs: logging.Handler | None = None,
               ) -> tuple[str | None, list[dg.DagsterRun]]:
    """One sensor tick, then every run it asked for, executed in process as the daemon would.
    `logs` receives the tick's log lines (the sensor's logger does not propagate to the root)."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"events": EventStoreResource(url=str(events_path))}) as context:
        if logs is not None:
            context.log.addHandler(logs)
        result = salesloft_webhooks_sensor(context)
    if isinstance(result, dg.SkipReason):
        return cursor, []
    runs = []
    for request in result.run_requests or []:
        outcome = webhook_apply_job.execute_in_process(
            run_config=request.run_config,
            instance=instance,
            tags={**request.tags, "dagster/run_key": request.run_key},
            resources={"warehouse": WarehouseResource(url=warehouse_url or str(wh_path)), "events": EventStoreResource(url=str(events_path))},
            raise_on_error=False,
        )
        runs.append(outcome.dagster_run)
    return result.cursor, runs


def wait_for_deliveries(sim: Simulator, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"{sim.url}/__sim/webhooks", timeout=30).json()
        if state["pending"] == 0:
            return state
        assert time.monotonic() < deadline, "deliveries still pending"
        time.sleep(0.1)


def test_end_to_end_deliveries_and_deletes_reach_staging(sim: Simulator, urls: tuple[str, str]) -> None:
    wh_path, events_path = urls
    store = open_event_store(events_path)
    # History by polling, as the schedule would have loaded it.
    first = (sim.config.anchor - timedelta(days=3)).date()
    last = datetime.now(timezone.utc).date()
    polled = dg.materialize(
        [a for a in EXTRACT_ASSETS if a.key in {raw_asset_key(BY_NAME[s]) for s in POLLED}]
        + [a for a in STAGING_ASSETS if a.key.path[-1] in POLLED],
        resources={"salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url), "warehouse": WarehouseResource(url=str(wh_path))},
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )
    assert polled.success

    with Endpoint(store) as url, SalesloftClient(sim.api_key, sim.base_url) as client:
        changes = subscribe(client, url, SECRET)
        assert sorted(changes.created) == sorted(APPLIED_EVENT_TYPES)
        assert subscribe(client, url, SECRET).summary() == f"{len(APPLIED_EVENT_TYPES)} unchanged"

        activity = httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 6 * 3600}, timeout=120).json()
        assert sum(activity["deleted"].values()) > 0
        deleted = {}
        for stream in ("people", "notes", "tasks", "accounts"):
            victim = sorted(truth(sim, stream))[0]
            assert httpx.post(f"{sim.url}/__sim/delete", json={"stream": stream, "id": victim}).status_code == 200
            deleted[stream] = victim
        # This test's deliveries only: the module's simulator also served the other engine's run.
        mine = {sub["id"] for sub in list_subscriptions(client) if sub["callback_url"] == url}
        deliveries = wait_for_deliveries(sim)
        deliveries["deliveries"] = [d for d in deliveries["deliveries"] if d["subscription_id"] in mine]
        assert all(d["delivered"] for d in deliveries["deliveries"]), "some deliveries failed"
        assert any(d["duplicate"] for d in deliveries["deliveries"]), "no duplicate delivery to test against"

        instance = dg.DagsterInstance.ephemeral()
        cursor, runs = run_sensor(instance, None, wh_path, events_path)
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        # Nothing new: the next tick asks for nothing, and forgets the finished ranges.
        cursor, more = run_sensor(instance, cursor, wh_path, events_path)
        assert more == [] and json.loads(cursor)["outstanding"] == {}
        assert json.loads(cursor)["requested_through"] == store.last_seq()

        for stream in POLLED:
            expected, actual = truth(sim, stream), staging(wh_path, stream)
            assert set(actual) == set(expected), f"{stream}: ids differ from the ground truth"
            assert actual == expected, f"{stream}: latest updated_at differs"
        for stream, victim in deleted.items():
            assert victim not in staging(wh_path, stream)
        prefixes = {"calls": ("call_created", "call_updated"), "meetings": ("meeting_booked", "meeting_updated")}
        for stream in WEBHOOK_ONLY:  # never polled: every record a webhook told of is there, in its latest version
            told = {d["id"] for d in deliveries["deliveries"] if d["event_type"] in prefixes[stream]}
            expected = {i: t for i, t in truth(sim, stream).items() if i in told}
            actual = staging(wh_path, stream)
            assert expected, f"no {stream} changed"
            assert actual == expected

        # The engagement sensor watches staging materializations: the apply reported them.
        for stream in POLLED:
            event = instance.get_latest_materialization_event(dg.AssetKey(["staging", stream]))
            assert event is not None and event.run_id in {r.run_id for r in runs}

        # A second round: more changes, applied on top, in order or not.
        httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 3600}, timeout=120).raise_for_status()
        wait_for_deliveries(sim)
        cursor, runs = run_sensor(instance, cursor, wh_path, events_path)
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        for stream in POLLED:
            assert staging(wh_path, stream) == truth(sim, stream), stream

        assert unsubscribe(client, url).deleted
        assert not [s for s in list_subscriptions(client) if s["callback_url"] == url]


def test_subscribe_updates_a_rotated_token_and_reenables(sim: Simulator) -> None:
    url = "http://127.0.0.1:9/hooks/rotation"
    with SalesloftClient(sim.api_key, sim.base_url) as client:
        subscribe(client, url, "old", ["person_updated", "note_deleted"])
        [one] = [s for s in list_subscriptions(client) if s["callback_url"] == url and s["event_type"] == "note_deleted"]
        client.request("PUT", f"webhook_subscriptions/{one['id']}", json={"enabled": False})
        changes = subscribe(client, url, "new", ["person_updated", "note_deleted", "task_deleted"])
        assert (sorted(changes.updated), changes.created) == (["note_deleted", "person_updated"], ["task_deleted"])
        mine = [s for s in list_subscriptions(client) if s["callback_url"] == url]
        assert len(mine) == 3 and all(s["callback_token"] == "new" and s["enabled"] for s in mine)
        assert len(unsubscribe(client, url).deleted) == 3


# -- failures: runs, ticks, restarts ---------------------------------------------------
def _append(store: EventStore, events: list[tuple[str, dict[str, Any]]]) -> None:
    store.setup()
    store.append_many([NewEvent(kind, json.dumps(body).encode(), True, time.time()) for kind, body in events])


def _person(record_id: int, updated_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "updated_at": updated_at, "created_at": "2026-01-01T00:00:00Z", **fields}


def test_a_failed_run_is_asked_for_again_and_nothing_is_lost_or_doubled(tmp_path: Path, urls: tuple[str, str]) -> None:
    wh_path, events_path = urls
    store = open_event_store(events_path)
    _append(store, [("person_created", _person(1, "2026-01-01T10:00:00Z")), ("person_created", _person(2, "2026-01-01T10:00:00Z"))])
    instance = dg.DagsterInstance.ephemeral()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # A warehouse that cannot be opened: a file in place of a folder, or a database that does not exist.
    unreachable = str(blocker / "wh.duckdb") if "://" not in wh_path else wh_path.rsplit("/", 1)[0] + "/slp_no_such_db"
    cursor, runs = run_sensor(instance, None, wh_path, events_path, warehouse_url=unreachable)
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE]
    assert json.loads(cursor)["requested_through"] == 2  # requested, so the cursor moved...
    assert json.loads(cursor)["outstanding"] == {"0-2": [1, pytest.approx(time.time(), abs=60)]}  # ...but kept

    # Within the backoff nothing is asked, new events neither: they wait to go with the retry.
    _append(store, [("person_deleted", _person(2, "2026-01-01T10:00:00Z")), ("person_updated", _person(1, "2026-01-01T11:00:00Z"))])
    requests, cursor, notes = evaluate(instance, store.last_seq(), cursor)
    assert requests == [] and json.loads(cursor)["requested_through"] == 2
    assert "FAILURE" in notes[0]
    # After the backoff the failed range and the new events come back as one range, attempt 2, under a new run key.
    requests, cursor, notes = evaluate(instance, store.last_seq(), cursor, now=time.time() + 3600)
    assert [(r.tags[BATCH_TAG], r.tags[ATTEMPT_TAG]) for r in requests] == [("0-4", "2")]
    assert webhook_apply_job.execute_in_process(run_config=requests[0].run_config, instance=instance, tags=requests[0].tags,
                                                resources=resources(wh_path, events_path)).success
    requests, cursor, _ = evaluate(instance, store.last_seq(), cursor)
    assert requests == [] and json.loads(cursor) == {"requested_through": 4, "outstanding": {}}
    # The newest version wins, the delete holds.
    assert staging(wh_path, "people") == {1: _utc("2026-01-01T11:00:00Z")}


def test_a_requested_run_that_never_appeared_is_asked_for_again(tmp_path: Path) -> None:
    store = open_event_store(str(tmp_path / "events.sqlite"))
    _append(store, [("note_created", {"id": 5, "updated_at": "2026-01-01T10:00:00Z"})])
    instance = dg.DagsterInstance.ephemeral()
    first, cursor, _ = evaluate(instance, store.last_seq(), None)
    assert len(first) == 1
    # The daemon stopped before launching it: nothing happens until the grace period ends.
    assert evaluate(instance, store.last_seq(), cursor, now=time.time() + 5)[0] == []
    again, cursor, _ = evaluate(instance, store.last_seq(), cursor, now=time.time() + LOST_RUN_SECONDS + 1)
    assert [(r.tags[BATCH_TAG], r.tags[ATTEMPT_TAG]) for r in again] == [("0-1", "2")]


def test_a_tick_that_errors_moves_nothing(tmp_path: Path) -> None:
    events_path = str(tmp_path / "events.sqlite")
    store = open_event_store(events_path)
    _append(store, [("note_created", {"id": 5, "updated_at": "2026-01-01T10:00:00Z"})])
    instance = dg.DagsterInstance.ephemeral()
    broken = tmp_path / "missing-dir" / "events.sqlite"
    with dg.build_sensor_context(instance=instance, cursor=None, resources={"events": EventStoreResource(url=str(broken))}) as context:
        assert isinstance(salesloft_webhooks_sensor(context), dg.SkipReason)  # no store there: skip, cursor untouched
    with dg.build_sensor_context(
        instance=instance, cursor="not json", resources={"events": EventStoreResource(url=str(events_path))}
    ) as bad_cursor_context, pytest.raises(Exception):
        salesloft_webhooks_sensor(bad_cursor_context)
    assert bad_cursor_context.cursor == "not json"
    cursor, runs = run_sensor(instance, None, str(tmp_path / "wh.duckdb"), events_path)
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS


def test_apply_is_idempotent_and_order_free(urls: tuple[str, str]) -> None:
    wh_path, events_path = urls
    store = open_event_store(events_path)
    _append(store, [
        ("person_deleted", _person(7, "2026-01-02T00:00:00Z")),       # the delete first...
        ("person_updated", _person(7, "2026-01-01T00:00:00Z")),       # ...then an older version: stays deleted
        ("person_updated", _person(8, "2026-01-01T00:00:00-05:00")),
        ("person_updated", _person(8, "2026-01-01T04:00:00Z")),       # older instant, larger string
        ("link_swap", {"id": 99}),                                     # stored, not applied
        ("task_updated", {"id": "not-a-number", "updated_at": "2026-01-01T00:00:00Z"}),  # invalid: skipped
        ("task_completed", {"id": 3, "updated_at": "2026-01-01T00:00:00Z"}),
    ])
    config = {"ops": {"apply_webhook_events": {"config": {"after_seq": 0, "through_seq": store.last_seq()}}}}
    for _ in range(2):  # the same range twice changes nothing
        result = webhook_apply_job.execute_in_process(run_config=config, resources=resources(wh_path, events_path))
        assert result.success
        assert staging(wh_path, "people") == {8: _utc("2026-01-01T05:00:00Z")}
        assert staging(wh_path, "tasks") == {3: _utc("2026-01-01T00:00:00Z")}
    # A newer version after a delete brings the record back (newest updated_at wins).
    _append(store, [("person_updated", _person(7, "2026-01-03T00:00:00Z"))])
    config["ops"]["apply_webhook_events"]["config"] = {"after_seq": 7, "through_seq": store.last_seq()}
    assert webhook_apply_job.execute_in_process(run_config=config, resources=resources(wh_path, events_path)).success
    assert set(staging(wh_path, "people")) == {7, 8}


def test_definitions_include_the_sensor_and_job() -> None:
    from salesloft_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.get_sensor_def("salesloft_webhooks").minimum_interval_seconds <= 30
    assert defs.get_job_def("salesloft_webhook_apply") is not None


def test_a_stored_body_too_deep_for_json_loads_is_skipped_not_a_failed_run() -> None:
    """Events stored before the endpoint refused deep bodies: each would fail its range's every run."""
    from salesloft_pipeline.defs.webhooks.apply import plan
    from salesloft_pipeline.webhooks import StoredEvent

    deep = b'{"id": 1, "a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    now = datetime.now(timezone.utc)
    batch = plan([StoredEvent(1, "person_updated", deep, True, now), StoredEvent(2, "person_updated", json.dumps(_person(2, "2026-01-02T00:00:00Z")).encode(), True, now)])
    assert batch.invalid == [(1, "body is not JSON")]
    assert [r["id"] for r in batch.streams["people"].upserts] == [2]


def test_apply_runs_move_the_applied_through_marker_only_when_they_succeed(tmp_path: Path, urls: tuple[str, str]) -> None:
    """The marker the metrics read: a failed run marks nothing; ranges finishing out of order never overstate."""
    wh_path, events_path = urls
    store = open_event_store(events_path)
    _append(store, [("person_created", _person(i, "2026-01-01T10:00:00Z")) for i in range(1, 5)])

    def apply(after: int, through: int, warehouse: str = wh_path) -> bool:
        config = {"ops": {"apply_webhook_events": {"config": {"after_seq": after, "through_seq": through}}}}
        return webhook_apply_job.execute_in_process(
            run_config=config, resources=resources(warehouse, events_path), raise_on_error=False
        ).success

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    unreachable = str(blocker / "wh.duckdb") if "://" not in wh_path else wh_path.rsplit("/", 1)[0] + "/slp_no_such_db"
    assert not apply(0, 2, warehouse=unreachable)
    assert (store.progress().applied_through, store.progress().unapplied) == (0, 4)
    assert apply(2, 4)  # the second range succeeds first
    assert (store.progress().applied_through, store.progress().unapplied) == (0, 2)
    assert apply(0, 2)  # the retry of the first
    progress = store.progress()
    assert (progress.applied_through, progress.unapplied, progress.oldest_unapplied) == (4, 0, None)


def test_a_deleted_note_takes_its_timeline_entry_with_it(tmp_path: Path) -> None:
    """SalesLoft drops a deleted note's activity history entry ("note-<id>") and says so by no event:
    the note_deleted event tombstones both (found by the week test: the entry stayed in staging)."""
    from salesloft_pipeline.defs.extract.tables import raw_table
    from salesloft_pipeline.defs.staging.build import build_staging
    from salesloft_pipeline.defs.webhooks.apply import apply_plan, plan
    from salesloft_pipeline.webhooks.store import StoredEvent

    wh = open_warehouse(str(tmp_path / "warehouse.duckdb"))
    histories, notes = raw_table(BY_NAME["activity_histories"]), raw_table(BY_NAME["notes"])
    wh.setup([histories, notes])
    at = "2025-03-03T10:00:00.000000Z"
    wh.upsert_records(notes, [{"id": 5, "created_at": at, "updated_at": at}, {"id": 6, "created_at": at, "updated_at": at}])
    wh.upsert_records(histories, [{"id": f"note-{n}", "type": "note", "created_at": at, "updated_at": at} for n in (5, 6)])
    build_staging(wh, BY_NAME["activity_histories"])
    deleted = StoredEvent(1, "note_deleted", json.dumps({"id": 5, "updated_at": at}).encode(), True, datetime.now(timezone.utc))
    apply_plan(wh, plan([deleted]))
    assert wh.query("SELECT id FROM staging.notes") == [(6,)]
    assert wh.query("SELECT id FROM staging.activity_histories") == [("note-6",)]
