"""Late updates and deletes reach their activity day through the sensor; the asset checks can fail.

The whole loop runs through Dagster on DuckDB and Postgres: raw loads (as the
extraction makes them), `staging/*` materializations, the sensor's requests,
the engagement runs they ask for.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS
from salesloft_pipeline.defs.engagement.checks import ENGAGEMENT_CHECKS
from salesloft_pipeline.defs.engagement import sensors
from salesloft_pipeline.defs.engagement.update import engagement_update_job
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.partitions import DAILY
from salesloft_pipeline.defs.resources import WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_engagement_data import D0, D1, D2, EMAILS, USERS, email, load

INPUT_STAGING = [a for a in STAGING_ASSETS if a.key.path[-1] in models.INPUT_STREAMS]
D6 = D1 + timedelta(days=5)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield str(tmp_path / "warehouse.duckdb")
    else:
        with fresh_database("slp_engagement") as postgres:
            yield postgres


def resources(url: str) -> dict[str, Any]:
    return {"warehouse": WarehouseResource(url=url)}


def rebuild_staging(instance: dg.DagsterInstance, url: str, streams: tuple[str, ...] = models.INPUT_STREAMS) -> None:
    assets = [a for a in INPUT_STAGING if a.key.path[-1] in streams]
    assert dg.materialize(assets, resources=resources(url), instance=instance).success


def tick(instance: dg.DagsterInstance, cursor: str | None, now: float | None = None) -> tuple[bool, str | None, Any]:
    """One sensor evaluation: whether it asks for an update run, its new cursor, its result."""
    result = sensors.evaluate(instance, cursor, now)
    if isinstance(result, dg.SkipReason):
        return False, cursor, result
    assert len(result.run_requests) == 1
    return True, result.cursor, result


def update(instance: dg.DagsterInstance, url: str) -> list[date]:
    """What the sensor's run request does; returns the days it rebuilt, and checks every model after."""
    result = engagement_update_job.execute_in_process(resources=resources(url), instance=instance)
    assert result.success
    days = sorted(
        {date.fromisoformat(e.materialization.partition) for e in result.get_asset_materialization_events()}
    )
    for check in ENGAGEMENT_CHECKS:
        assert _evaluate(check, url).passed, check.check_keys
    return days


def run(instance: dg.DagsterInstance, url: str, first: date, last: date) -> dg.ExecuteInProcessResult:
    """A backfill of every engagement model (and its checks) for the range."""
    result = dg.materialize(
        [*ENGAGEMENT_ASSETS, *ENGAGEMENT_CHECKS],
        resources=resources(url),
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )
    assert result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert not failed, failed
    return result


def day(wh: Warehouse, when: date) -> dict[str, Any]:
    with wh.connection() as conn:
        cursor = conn.execute(f"SELECT * FROM engagement.daily_engagement WHERE activity_day = DATE '{when}'")
        names = [d[0] for d in cursor.description]
        [values] = cursor.fetchall()
    return dict(zip(names, values))


def email_version(email_id: int, updated_at: str, **changes: Any) -> dict[str, Any]:
    [original] = [e for e in EMAILS if e["id"] == email_id]
    record = copy.deepcopy(original)
    record["updated_at"] = updated_at
    for key, value in changes.items():
        if key in ("views", "clicks", "replies"):
            record["counts"][key] = value
        else:
            record[key] = value
    return record


def test_late_replies_opens_and_bounces_change_the_day_the_email_was_sent(url: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)

    # Nothing built yet: every day with activity is built.
    asked, cursor, _ = tick(instance, None)
    assert asked
    assert update(instance, url) == [D0, D1, D2]
    before = day(wh, D1)
    assert (before["emails_replied"], before["emails_bounced"], before["emails_opened"]) == (1, 1, 3)
    assert day(wh, D2)["emails_opened"] == 0

    # No staging change since: the sensor asks for nothing.
    assert not tick(instance, cursor)[0]
    # Staging asked to build with nothing new: it records no materialization, so still nothing.
    rebuild_staging(instance, url, ("emails",))
    assert not tick(instance, cursor)[0]

    # Five days later: a reply to e4 and a bounce of e7 (both sent on D1), an open of e3 (sent on D2). Each
    # version carries updated_at D1+5, so extraction loads it into partition D1+5.
    late = "2025-03-08T10:00:00.000000Z"
    wh.replace_partition(
        raw_table(BY_NAME["emails"]),
        D6,
        [email_version(4, late, replies=1), email_version(7, late, bounced=True), email_version(3, late, views=2)],
    )
    rebuild_staging(instance, url, ("emails",))
    asked, cursor, _ = tick(instance, cursor)
    assert asked
    assert update(instance, url) == [D1, D2]  # not D1+5: nothing happened on that day

    after = day(wh, D1)
    assert after["emails_replied"] == 2  # e1 and now e4
    assert (after["emails_bounced"], after["emails_delivered"]) == (2, 2)
    assert after["emails_opened"] == 2  # e7 bounced: no longer an opened, delivered email
    assert after["reply_rate"] == pytest.approx(1.0)
    assert day(wh, D2)["emails_opened"] == 1
    assert after["emails_sent"] == before["emails_sent"] == 4
    assert models.stale_days(wh, D0, D6) == []  # the exhaustive comparison agrees
    assert update(instance, url) == []  # the queue is empty now


def test_a_deleted_email_disappears_from_its_days_counts(url: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    run(instance, url, D0, D2)
    assert (day(wh, D1)["emails_sent"], day(wh, D1)["emails_opened"], day(wh, D1)["people_emailed"]) == (4, 3, 3)
    assert update(instance, url) == []  # the backfill built every day already: nothing differs
    _, cursor, _ = tick(instance, None)

    # e7 deleted in SalesLoft: the webhook path tombstones it.
    wh.mark_deleted("emails", [(7, "2025-03-03T11:00:00.000000Z")])
    rebuild_staging(instance, url, ("emails",))
    asked, cursor, _ = tick(instance, cursor)
    assert asked
    assert update(instance, url) == [D1]
    assert (day(wh, D1)["emails_sent"], day(wh, D1)["emails_opened"]) == (3, 2)
    assert day(wh, D1)["people_emailed"] == 3  # 101 still got e1

    # Deleting a day's only email empties the day's emails, not the day: e3 was D2's only email.
    wh.mark_deleted("emails", [(3, "2025-03-03T20:00:00.000000-05:00")])
    rebuild_staging(instance, url, ("emails",))
    assert update(instance, url) == [D2]
    assert day(wh, D2)["emails_sent"] == 0
    assert models.stale_days(wh, D0, D2) == []


def _evaluate(check: dg.AssetChecksDefinition, url: str) -> dg.AssetCheckResult:
    return check(warehouse=WarehouseResource(url=url))  # type: ignore[operator]


def _check(model: str, name: str) -> dg.AssetChecksDefinition:
    [found] = [
        c for c in ENGAGEMENT_CHECKS
        if any(k.asset_key.path == ["engagement", model] and k.name == name for k in c.check_keys)
    ]
    return found


def test_the_checks_pass_on_good_marts_and_fail_on_broken_ones(url: str) -> None:
    wh = open_warehouse(url)
    load(wh)
    from salesloft_pipeline_tests.test_engagement_data import rebuild_staging as staging_sql_only

    staging_sql_only(wh)
    models.build(wh, models.MODELS, D0, D2)
    for check in ENGAGEMENT_CHECKS:
        assert _evaluate(check, url).passed, check.check_keys

    # A rate above 1.
    wh.execute_script(f"UPDATE engagement.daily_engagement SET reply_rate = 1.5 WHERE activity_day = DATE '{D1}'")
    assert not _evaluate(_check("daily_engagement", "rates_between_0_and_1"), url).passed
    # A day counted twice (say, two overlapping loads without the DELETE).
    wh.execute_script(f"INSERT INTO engagement.call_outcomes SELECT * FROM engagement.call_outcomes WHERE activity_day = DATE '{D1}'")
    assert not _evaluate(_check("call_outcomes", "no_day_double_counted"), url).passed
    assert not _evaluate(_check("call_outcomes", "reconciles_with_staging"), url).passed
    # Staging moved on (a deleted email) and the day was not rebuilt: totals no longer reconcile.
    wh.mark_deleted("emails", [(1, "2025-03-03T12:00:00.000000Z")])
    staging_sql_only(wh)
    result = _evaluate(_check("daily_engagement_by_user", "reconciles_with_staging"), url)
    assert not result.passed
    assert result.metadata["differences"].value >= 1
    models.build(wh, models.MARTS[:3], D1, D1)  # marts only: activity_facts still holds e1
    assert not _evaluate(_check("daily_engagement", "reconciles_with_staging"), url).passed
    models.build(wh, models.MODELS, D1, D1)
    assert _evaluate(_check("daily_engagement", "reconciles_with_staging"), url).passed


def test_a_failed_update_changes_nothing_and_its_retry_brings_every_model_up_to_date(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    update(instance, url)
    _, cursor, _ = tick(instance, None)
    assert day(wh, D1)["emails_replied"] == 1

    # A reply to e4 arrives; the last mart of the build fails (a broken model file, a full disk, a killed connection).
    wh.replace_partition(raw_table(BY_NAME["emails"]), D6, [email_version(4, "2025-03-08T10:00:00.000000Z", replies=1)])
    rebuild_staging(instance, url, ("emails",))
    broken = tmp_path / "marts"
    shutil.copytree(models.MARTS_DIR, broken)
    (broken / f"{models.MARTS[-1]}.sql").write_text("SELECT no_such_column FROM engagement.activity_facts")
    monkeypatch.setattr(models, "MARTS_DIR", broken)
    asked, cursor, _ = tick(instance, cursor)
    assert asked
    assert not engagement_update_job.execute_in_process(resources=resources(url), instance=instance, raise_on_error=False).success
    # Facts and marts are one transaction: neither moved, and the change is still queued.
    assert day(wh, D1)["emails_replied"] == 1
    assert wh.query("SELECT replied FROM engagement.activity_facts WHERE activity = 'email' AND source_id = 4") == [(False,)]
    assert wh.query("SELECT stream, id FROM staging._changes") == [("emails", "4")]
    # A partitioned backfill of the models is all or nothing too.
    broken_backfill = dg.materialize(
        ENGAGEMENT_ASSETS,
        resources=resources(url),
        instance=instance,
        tags={RANGE_START_TAG: D1.isoformat(), RANGE_END_TAG: D1.isoformat()},
        raise_on_error=False,
    )
    assert not broken_backfill.success
    assert day(wh, D1)["emails_replied"] == 1

    # The sensor asks again once the pause after the failure is over, and the retry fixes every model.
    monkeypatch.setattr(models, "MARTS_DIR", models.SQL_DIR / "marts")
    assert not tick(instance, cursor)[0]
    asked, cursor, result = tick(instance, cursor, now=time.time() + sensors.RETRY_AFTER_SECONDS + 1)
    assert asked and result.run_requests[0].tags["engagement/reason"] == "retry of a failed update"
    assert update(instance, url) == [D1]
    assert day(wh, D1)["emails_replied"] == 2
    assert models.stale_days(wh, D0, D6) == []


def test_the_sensor_asks_for_one_run_at_a_time_and_never_opens_the_warehouse(url: str) -> None:
    assert not sensors.engagement_late_updates_sensor.required_resource_keys
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    asked, cursor, result = tick(instance, None)
    assert asked
    # The run it asked for is queued (the pool is busy, say) while staging keeps changing.
    queued = instance.create_run_for_job(engagement_update_job, run_config={})
    for n in range(5):
        wh.replace_partition(raw_table(BY_NAME["emails"]), D6, [email_version(4, f"2025-03-08T10:0{n}:00.000000Z", replies=n)])
        rebuild_staging(instance, url, ("emails",))
        waiting, same_cursor, skip = tick(instance, cursor)
        assert not waiting and same_cursor == cursor
        assert queued.run_id in skip.skip_message
    instance.report_run_canceled(queued)
    # Once it is gone, one run takes every change made meanwhile.
    asked, cursor, _ = tick(instance, cursor)
    assert asked
    assert update(instance, url) == [D0, D1, D2]  # the first update: every day with activity
    assert day(wh, D1)["emails_replied"] == 2  # e1, and e4's latest version (4 replies)
    assert not tick(instance, cursor)[0]


def test_a_first_touch_that_moves_to_another_day_is_rebuilt_there(url: str) -> None:
    """Deleting a membership's first touches moves its first touch to a later touch, on a day no deleted record was on."""
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    later = email(9, 1, 101, "2025-03-04T15:00:00.000000Z", 10, 1001)  # D2, to 101 in cadence 10
    wh.upsert_records(raw_table(BY_NAME["emails"]), [later])
    rebuild_staging(instance, url)
    update(instance, url)
    assert day(wh, D1)["first_touches"] == 3 and day(wh, D2)["first_touches"] == 0

    # e1, e7 and c11 (all D1) were mb41's touches on D1: its first touch is now e9, on D2.
    wh.mark_deleted("emails", [(1, "2025-03-03T12:00:00.000000Z"), (7, "2025-03-03T11:00:00.000000Z")])
    wh.mark_deleted("calls", [(11, "2025-03-03T14:00:00.000000Z")])
    rebuild_staging(instance, url, ("emails", "calls"))
    assert update(instance, url) == [D1, D2]
    assert day(wh, D1)["first_touches"] == 2 and day(wh, D2)["first_touches"] == 1
    assert models.stale_days(wh, D0, D6) == []


def test_a_changed_user_rebuilds_the_days_of_the_meetings_they_booked(url: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    update(instance, url)
    # m24's booker g-unknown joins the team: the meeting gets a user on D1.
    joined = {**USERS[0], "id": 3, "guid": "g-unknown", "updated_at": "2025-03-05T00:00:00.000000Z"}
    wh.replace_snapshot(raw_table(BY_NAME["users"]), [*USERS, joined])
    rebuild_staging(instance, url, ("users",))
    assert update(instance, url) == [D1]
    assert models.stale_days(wh, D0, D6) == []


def test_a_teams_own_connected_dispositions_count_and_changing_them_rebuilds_every_day(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    update(instance, url)
    assert (day(wh, D1)["calls_connected"], day(wh, D1)["connect_rate"]) == (2, 0.5)

    # The team logs conversations as "Left Voicemail" too (c13 on D1): every day is rebuilt with it.
    monkeypatch.setenv(models.CONNECTED_VARIABLE, "Connected, left voicemail")
    start = DAILY.start.date()
    assert update(instance, url) == [start + timedelta(days=n) for n in range((date.today() - start).days + 1)]
    assert (day(wh, D1)["calls_connected"], day(wh, D1)["connect_rate"]) == (3, 0.75)
    assert models.stale_days(wh, D0, D2) == []
    assert update(instance, url) == []  # built with these settings now
    monkeypatch.delenv(models.CONNECTED_VARIABLE)
    update(instance, url)
    assert day(wh, D1)["calls_connected"] == 2
