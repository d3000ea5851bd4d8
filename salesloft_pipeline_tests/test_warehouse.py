"""The warehouse on a real DuckDB file and the real Postgres."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from salesloft_pipeline.warehouse import Column, RawTable, Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database, postgres_url  # noqa: F401 - fixture

EMAILS = RawTable(
    "emails",
    columns=(
        Column("user_id", "bigint", ("user", "id")),
        Column("updated_at", "timestamp", ("updated_at",)),
        Column("bounced", "boolean", ("bounced",)),
    ),
)
GROUPS = RawTable("groups", partitioned=False)
TEMPLATES = RawTable("team_templates", id_type="text")
DAY = date(2026, 1, 1)


def email(i: int, updated_at: str = "2026-01-01T10:00:00.123456-05:00") -> dict:
    return {"id": i, "updated_at": updated_at, "user": {"_href": "u", "id": 7}, "bounced": i % 2 == 0, "new": "é"}


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    if request.param == "duckdb":
        url = str(tmp_path / "warehouse.duckdb")
    else:
        url = request.getfixturevalue("postgres_url")
    wh = open_warehouse(url)
    if request.param == "postgres":
        wh.execute_script("DROP SCHEMA IF EXISTS raw CASCADE; DROP SCHEMA IF EXISTS staging CASCADE")
    wh.setup([EMAILS, GROUPS, TEMPLATES])
    return wh


def test_partition_load_keeps_types_and_the_whole_record(warehouse: Warehouse) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(1)])
    [(record_id, user_id, updated_at, bounced, record, partition)] = warehouse.query(
        "SELECT id, user_id, updated_at, bounced, CAST(record AS VARCHAR(100000)), _partition FROM raw.emails"
    )
    assert (record_id, user_id, bounced, partition) == (1, 7, False, DAY)
    assert updated_at == datetime(2026, 1, 1, 15, 0, 0, 123456, tzinfo=timezone.utc)
    assert json.loads(record) == email(1)  # every field, unknown ones included


def test_reloading_a_partition_replaces_it(warehouse: Warehouse) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(i) for i in range(5)])
    warehouse.replace_partition(EMAILS, date(2026, 1, 2), [email(9, "2026-01-02T01:00:00Z")])
    warehouse.replace_partition(EMAILS, DAY, [email(i) for i in range(3)])
    rows = warehouse.query("SELECT _partition, count(*) FROM raw.emails GROUP BY 1 ORDER BY 1")
    assert rows == [(DAY, 3), (date(2026, 1, 2), 1)]
    loads = warehouse.loaded_partitions("emails")
    assert {day: rows for day, (rows, _) in loads.items()} == {DAY: 3, date(2026, 1, 2): 1}


def test_rejected_records_are_kept_with_their_reason_and_replaced_with_the_partition(
    warehouse: Warehouse,
) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(1)], rejected=[("{not json", "invalid JSON"), ({"id": None}, "id missing")])
    assert sorted(warehouse.query("SELECT reason, payload FROM raw._rejected")) == [
        ("id missing", '{"id":null}'),
        ("invalid JSON", "{not json"),
    ]
    warehouse.replace_partition(EMAILS, DAY, [email(1)])
    assert warehouse.query("SELECT count(*) FROM raw._rejected") == [(0,)]


def test_a_failed_load_changes_nothing(warehouse: Warehouse) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(1)])
    with pytest.raises(Exception):
        warehouse.replace_partition(EMAILS, DAY, [email(2), {"id": "not a number"}])
    assert warehouse.query("SELECT id FROM raw.emails") == [(1,)]


def test_full_refresh_tombstones_missing_ids_and_revives_returning_ones(warehouse: Warehouse) -> None:
    assert warehouse.replace_snapshot(GROUPS, [{"id": 1}, {"id": 2, "updated_at": "2026-01-01T00:00:00Z"}]) == (2, 0)
    assert warehouse.replace_snapshot(GROUPS, [{"id": 1}]) == (1, 1)
    assert warehouse.query("SELECT id, hides_through, source FROM raw._tombstones") == [
        ("2", datetime(2026, 1, 1, tzinfo=timezone.utc), "full_refresh")
    ]
    # The deleted record's last version stays, marked by its tombstone.
    assert warehouse.query("SELECT id FROM raw.groups ORDER BY id") == [(1,), (2,)]
    assert warehouse.replace_snapshot(GROUPS, [{"id": 1}]) == (1, 0)
    assert warehouse.replace_snapshot(GROUPS, [{"id": 1}, {"id": 2}]) == (2, 0)
    assert warehouse.query("SELECT count(*) FROM raw._tombstones") == [(0,)]
    assert warehouse.query("SELECT id FROM raw.groups ORDER BY id") == [(1,), (2,)]


def test_string_ids(warehouse: Warehouse) -> None:
    uuid = "75621893-cf7f-41d3-bb45-6d31afc8914c"
    warehouse.replace_partition(TEMPLATES, DAY, [{"id": uuid, "updated_at": "2026-01-01T00:00:00Z"}])
    assert warehouse.query("SELECT id FROM raw.team_templates") == [(uuid,)]


def test_webhook_versions_and_deletes(warehouse: Warehouse) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(1)])
    warehouse.upsert_records(EMAILS, [email(1, "2026-01-05T00:00:00Z")])
    warehouse.mark_deleted("emails", [(1, "2026-01-05T00:00:00Z")])
    assert sorted(warehouse.query("SELECT _source, _partition FROM raw.emails"), key=str) == [
        ("poll", DAY),
        ("webhook", None),
    ]
    assert warehouse.query("SELECT stream, id, source FROM raw._tombstones") == [("emails", "1", "webhook")]
    # Reloading the partition leaves the webhook's version and the tombstone alone.
    warehouse.replace_partition(EMAILS, DAY, [])
    assert warehouse.query("SELECT _source FROM raw.emails") == [("webhook",)]
    assert warehouse.query("SELECT count(*) FROM raw._tombstones") == [(1,)]


def test_schema_grows_with_the_table_spec(warehouse: Warehouse) -> None:
    warehouse.replace_partition(EMAILS, DAY, [email(1)])
    wider = RawTable("emails", columns=(*EMAILS.columns, Column("sent_at", "timestamp", ("sent_at",))))
    warehouse.setup([wider])
    warehouse.replace_partition(wider, DAY, [{**email(2), "sent_at": "2026-01-01T09:00:00+01:00"}])
    assert warehouse.query("SELECT id, sent_at FROM raw.emails") == [(2, datetime(2026, 1, 1, 8, tzinfo=timezone.utc))]


def _load_days(path: str, first_day: int, loads: int) -> None:
    wh = open_warehouse(path)
    for n in range(loads):
        day = date(2026, 1, first_day + n % 3)
        wh.replace_partition(EMAILS, day, [email(first_day * 1000 + i) for i in range(200)])


def test_concurrent_processes_take_turns_on_one_duckdb_file(tmp_path: Path) -> None:
    """A backfill, the schedule and a webhook apply at once: none fails."""
    path = str(tmp_path / "shared.duckdb")
    open_warehouse(path).setup([EMAILS])
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_load_days, args=(path, first, 15)) for first in (1, 10, 20)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    counts = open_warehouse(path).query("SELECT _partition, count(*), count(DISTINCT id) FROM raw.emails GROUP BY 1")
    assert len(counts) == 9 and all(total == distinct == 200 for _, total, distinct in counts)


# -- Postgres: several runs write at once (a backfill, the schedule, webhook applies) ------------
def _at_once(action: Callable[[int], object], workers: int = 6) -> list[str]:
    """Runs action(0..workers-1) in threads released together; the errors they raised."""
    barrier = threading.Barrier(workers)
    errors: list[str] = []

    def work(n: int) -> None:
        barrier.wait()
        try:
            action(n)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_postgres_setup_of_a_new_warehouse_at_once() -> None:
    with fresh_database("slp_setup_race") as url:
        wh = open_warehouse(url)
        assert _at_once(lambda _: wh.setup([EMAILS, GROUPS])) == []
        assert {"emails", "groups", "_loads", "_tombstones", "_rejected"} <= wh.tables("raw")


def test_postgres_loads_of_one_day_at_once_leave_each_id_once(postgres_url: str) -> None:  # noqa: F811
    wh = open_warehouse(postgres_url)
    wh.execute_script("DROP SCHEMA IF EXISTS raw CASCADE")
    wh.setup([EMAILS])
    # Each load replaces the day with its own version of the same 2,000 emails.
    versions = [[email(i, f"2026-01-01T{10 + n}:00:00Z") for i in range(2000)] for n in range(6)]
    assert _at_once(lambda n: wh.replace_partition(EMAILS, DAY, versions[n])) == []
    [(rows, distinct)] = wh.query("SELECT count(*), count(DISTINCT id) FROM raw.emails")
    assert rows == distinct == 2000
    # One load won whole: every row carries the same version.
    assert wh.query("SELECT count(DISTINCT updated_at) FROM raw.emails") == [(1,)]
    assert wh.query("SELECT count(*) FROM raw._loads") == [(1,)]


def test_postgres_deletes_and_full_refreshes_at_once(postgres_url: str) -> None:  # noqa: F811
    wh = open_warehouse(postgres_url)
    wh.execute_script("DROP SCHEMA IF EXISTS raw CASCADE")
    wh.setup([EMAILS, GROUPS])
    wh.replace_snapshot(GROUPS, [{"id": i} for i in range(10)])

    def delete_or_refresh(n: int) -> None:
        if n % 2:
            wh.replace_snapshot(GROUPS, [{"id": i} for i in range(5)])
        else:
            wh.mark_deleted("emails", [(i, "2026-01-01T00:00:00Z") for i in range(50)])

    assert _at_once(delete_or_refresh) == []
    assert wh.query("SELECT stream, count(*) FROM raw._tombstones GROUP BY 1 ORDER BY 1") == [
        ("emails", 50),
        ("groups", 5),
    ]


def test_postgres_rebuilds_of_one_table_at_once(postgres_url: str) -> None:  # noqa: F811
    wh = open_warehouse(postgres_url)
    wh.execute_script("DROP SCHEMA IF EXISTS raw CASCADE; DROP SCHEMA IF EXISTS staging CASCADE")
    wh.setup([EMAILS])
    wh.replace_partition(EMAILS, DAY, [email(i) for i in range(100)])
    rebuild = "DROP TABLE IF EXISTS staging.emails; CREATE TABLE staging.emails AS SELECT * FROM raw.emails;"
    rebuild += wh.indexes_sql("staging.emails", [("updated_at",), ("user_id", "updated_at")], analyze=True)
    assert _at_once(lambda _: wh.execute_script(rebuild, serialise="staging.emails")) == []
    assert wh.query("SELECT count(*) FROM staging.emails") == [(100,)]
    indexes = wh.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'staging' AND tablename = 'emails' ORDER BY 1")
    assert indexes == [("emails__updated_at",), ("emails__user_id_updated_at",)]


def test_only_postgres_gets_indexes(tmp_path: Path) -> None:
    assert open_warehouse(str(tmp_path / "w.duckdb")).indexes_sql("staging.emails", [("sent_at",)]) == ""
    sql = open_warehouse("postgresql://u@h/d").indexes_sql("engagement.x", [("activity_day",)])
    assert sql == "CREATE INDEX IF NOT EXISTS x__activity_day ON engagement.x (activity_day);\n"


def test_an_invalid_postgres_url_is_refused_without_its_password() -> None:
    warehouse = open_warehouse("postgresql://pipeline:s3cr3t-pw@[bad/warehouse")  # libpq would quote it whole
    with pytest.raises(ValueError, match="SALESLOFT_WAREHOUSE_URL") as raised:
        warehouse.query("SELECT 1")
    assert "s3cr3t" not in str(raised.value) and raised.value.__suppress_context__


def _queued(warehouse: Warehouse, stream: str) -> list[str]:
    rows = warehouse.query(f"SELECT DISTINCT id FROM raw._changes WHERE stream = {warehouse.PARAM}", [stream])
    return sorted(i for (i,) in rows)


def _clear_queue(warehouse: Warehouse) -> None:
    warehouse.execute_script("DELETE FROM raw._changes")


def test_a_load_queues_only_the_ids_whose_versions_changed(warehouse: Warehouse) -> None:
    first = warehouse.replace_partition(EMAILS, DAY, [email(i) for i in range(4)])
    assert (first.rows, first.changed) == (4, 4)
    assert _queued(warehouse, "emails") == ["0", "1", "2", "3"]
    _clear_queue(warehouse)
    # The same versions again: nothing changed, nothing queued.
    assert warehouse.replace_partition(EMAILS, DAY, [email(i) for i in range(4)]).changed == 0
    assert _queued(warehouse, "emails") == []
    # 1 gets a new version, 3 leaves the day, 9 arrives.
    again = [email(0), email(1, "2026-01-01T11:00:00Z"), email(2), email(9)]
    assert warehouse.replace_partition(EMAILS, DAY, again).changed == 3
    assert _queued(warehouse, "emails") == ["1", "3", "9"]


def test_partition_loads_record_what_reading_them_cost(warehouse: Warehouse) -> None:
    usage = {"api_requests": 3, "api_cost": 3, "api_429s": 1, "api_budget_left": 412}
    warehouse.replace_partition(EMAILS, DAY, [email(1)], api_usage=usage)
    assert warehouse.query("SELECT rows, api_requests, api_cost, api_429s, api_budget_left FROM raw._loads") == [
        (1, 3, 3, 1, 412)
    ]


def test_a_listed_record_that_fails_validation_is_neither_deleted_nor_lost(warehouse: Warehouse) -> None:
    good = {"id": 2, "updated_at": "2026-01-01T00:00:00Z", "name": "good"}
    warehouse.replace_snapshot(GROUPS, [{"id": 1}, good])
    _clear_queue(warehouse)
    # The next list still holds 2, but its record is malformed now.
    bad = {"id": 2, "updated_at": "not a time"}
    assert warehouse.replace_snapshot(GROUPS, [{"id": 1}], [(bad, "updated_at: invalid")], listed_invalid=[2]) == (1, 0)
    assert warehouse.query("SELECT count(*) FROM raw._tombstones") == [(0,)]
    [(record,)] = warehouse.query("SELECT CAST(record AS VARCHAR(1000)) FROM raw.groups WHERE id = 2")
    assert json.loads(record) == good  # its last good version stays for staging
    assert _queued(warehouse, "groups") == []


def test_a_full_refresh_never_grows_raw_for_an_id_deleted_by_webhook_but_still_listed(warehouse: Warehouse) -> None:
    listed = [{"id": 1, "updated_at": "2026-01-01T00:00:00Z"}, {"id": 2, "updated_at": "2026-01-01T00:00:00Z"}]
    warehouse.replace_snapshot(GROUPS, listed)
    warehouse.mark_deleted("groups", [(2, "2026-01-01T00:00:00Z")])
    for _ in range(3):  # three hourly refreshes that still list the deleted id
        warehouse.replace_snapshot(GROUPS, listed)
    assert warehouse.query("SELECT id, count(*) FROM raw.groups GROUP BY id ORDER BY id") == [(1, 1), (2, 1)]
    assert warehouse.query("SELECT id, source FROM raw._tombstones") == [("2", "webhook")]


def test_a_full_refresh_queues_new_changed_vanished_and_revived_ids(warehouse: Warehouse) -> None:
    warehouse.replace_snapshot(GROUPS, [{"id": 1}, {"id": 2}, {"id": 3}])
    _clear_queue(warehouse)
    warehouse.replace_snapshot(GROUPS, [{"id": 1}, {"id": 2}, {"id": 3}])
    assert _queued(warehouse, "groups") == []
    warehouse.replace_snapshot(GROUPS, [{"id": 1, "name": "renamed"}, {"id": 2}, {"id": 4}])
    assert _queued(warehouse, "groups") == ["1", "3", "4"]
    _clear_queue(warehouse)
    warehouse.replace_snapshot(GROUPS, [{"id": 1, "name": "renamed"}, {"id": 2}, {"id": 4}])
    assert _queued(warehouse, "groups") == []  # the deleted id's kept version is not a change
    warehouse.replace_snapshot(GROUPS, [{"id": 1, "name": "renamed"}, {"id": 2}, {"id": 3}, {"id": 4}])
    assert _queued(warehouse, "groups") == ["3"]


def test_the_same_webhook_version_twice_is_stored_once(warehouse: Warehouse) -> None:
    assert warehouse.upsert_records(EMAILS, [email(1, "2026-01-05T00:00:00Z")]) == 1
    assert warehouse.upsert_records(EMAILS, [email(1, "2026-01-05T00:00:00Z"), email(2)]) == 1
    assert warehouse.query("SELECT id, count(*) FROM raw.emails GROUP BY id ORDER BY id") == [(1, 1), (2, 1)]
    assert _queued(warehouse, "emails") == ["1", "2"]
