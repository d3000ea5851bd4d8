"""Late updates and deletes reach their activity day through the sensor; the asset checks can fail.

The whole loop runs through Dagster on DuckDB and Postgres: raw loads (as the
extraction makes them), `staging/*` materializations, the sensor's requests,
the engagement runs they ask for.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS
from salesloft_pipeline.defs.engagement.checks import ENGAGEMENT_CHECKS
from salesloft_pipeline.defs.engagement.sensors import engagement_late_updates_sensor
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.resources import WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_engagement_data import D0, D1, D2, EMAILS, load

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


def tick(instance: dg.DagsterInstance, url: str, cursor: str | None) -> tuple[list[tuple[date, date]], str | None, Any]:
    """One sensor evaluation: the day ranges it asks for, its new cursor, its result."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(url))
    result = engagement_late_updates_sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result
    ranges = [
        (date.fromisoformat(r.tags[ASSET_PARTITION_RANGE_START_TAG]), date.fromisoformat(r.tags[ASSET_PARTITION_RANGE_END_TAG]))
        for r in result.run_requests
    ]
    return ranges, result.cursor, result


def run(instance: dg.DagsterInstance, url: str, first: date, last: date) -> dg.ExecuteInProcessResult:
    """What the sensor's run request does: every engagement model (and its checks) for the range."""
    result = dg.materialize(
        [*ENGAGEMENT_ASSETS, *ENGAGEMENT_CHECKS],
        resources=resources(url),
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
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

    # Nothing built yet: every day with activity is asked for, consecutive days in one run.
    ranges, cursor, _ = tick(instance, url, None)
    assert ranges == [(D0, D2)]
    run(instance, url, D0, D2)
    before = day(wh, D1)
    assert (before["emails_replied"], before["emails_bounced"], before["emails_opened"]) == (1, 1, 3)
    assert day(wh, D2)["emails_opened"] == 0

    # No staging rebuild since: the sensor does not even look.
    assert tick(instance, url, cursor)[0] == []
    assert isinstance(tick(instance, url, cursor)[2], dg.SkipReason)
    # Staging rebuilt with nothing new: it looks and finds nothing stale.
    rebuild_staging(instance, url, ("emails",))
    ranges, cursor, _ = tick(instance, url, cursor)
    assert ranges == []

    # Five days later: a reply to e4 and a bounce of e7 (both sent on D1), an open of e3 (sent on D2). Each
    # version carries updated_at D1+5, so extraction loads it into partition D1+5.
    late = "2025-03-08T10:00:00.000000Z"
    wh.replace_partition(
        raw_table(BY_NAME["emails"]),
        D6,
        [email_version(4, late, replies=1), email_version(7, late, bounced=True), email_version(3, late, views=2)],
    )
    rebuild_staging(instance, url, ("emails",))
    ranges, cursor, _ = tick(instance, url, cursor)
    assert ranges == [(D1, D2)]  # not D1+5: nothing happened on that day
    run(instance, url, *ranges[0])

    after = day(wh, D1)
    assert after["emails_replied"] == 2  # e1 and now e4
    assert (after["emails_bounced"], after["emails_delivered"]) == (2, 2)
    assert after["emails_opened"] == 2  # e7 bounced: no longer an opened, delivered email
    assert after["reply_rate"] == pytest.approx(1.0)
    assert day(wh, D2)["emails_opened"] == 1
    assert after["emails_sent"] == before["emails_sent"] == 4
    assert models.stale_days(wh, D0, D6) == []


def test_a_deleted_email_disappears_from_its_days_counts(url: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    wh = open_warehouse(url)
    load(wh)
    rebuild_staging(instance, url)
    run(instance, url, D0, D2)
    assert (day(wh, D1)["emails_sent"], day(wh, D1)["emails_opened"], day(wh, D1)["people_emailed"]) == (4, 3, 3)
    _, cursor, _ = tick(instance, url, None)

    # e7 deleted in SalesLoft: the webhook path tombstones it.
    wh.mark_deleted("emails", [(7, "2025-03-03T11:00:00.000000Z")])
    rebuild_staging(instance, url, ("emails",))
    ranges, cursor, _ = tick(instance, url, cursor)
    assert ranges == [(D1, D1)]
    run(instance, url, D1, D1)
    assert (day(wh, D1)["emails_sent"], day(wh, D1)["emails_opened"]) == (3, 2)
    assert day(wh, D1)["people_emailed"] == 3  # 101 still got e1

    # Deleting a day's only email empties the day's emails, not the day: e3 was D2's only email.
    wh.mark_deleted("emails", [(3, "2025-03-03T20:00:00.000000-05:00")])
    rebuild_staging(instance, url, ("emails",))
    ranges, cursor, _ = tick(instance, url, cursor)
    assert ranges == [(D2, D2)]
    run(instance, url, D2, D2)
    assert day(wh, D2)["emails_sent"] == 0


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
