"""Pipeline attribution (engagement.cadence_pipeline) on hand-built data with known answers:
a person touched by two cadences, account and linked people, the window's edges, a touch after
the opportunity opened, an amount edited after the close, the reporting zone.

On a real DuckDB file and the real Postgres (salesloft_pipeline_tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from salesloft_pipeline import reporting
from salesloft_pipeline.defs.engagement import attribution
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.resources import WarehouseResource
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

A, B = 100, 200  # cadences
DAY = date(2025, 3, 1)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(reporting.VARIABLE, "UTC")
    monkeypatch.delenv(attribution.DAYS_VARIABLE, raising=False)
    if request.param == "duckdb":
        yield str(tmp_path / "warehouse.duckdb")
    else:
        with fresh_database("slp_attribution") as database:
            yield database


def ref(path: str, record_id: int | None) -> dict[str, Any] | None:
    return None if record_id is None else {"id": record_id, "_href": f"https://api.salesloft.com/v2/{path}/{record_id}"}


def email(eid: int, person: int, cadence: int, sent_at: str, status: str = "sent") -> dict[str, Any]:
    return {"id": eid, "created_at": sent_at, "updated_at": sent_at, "sent_at": sent_at, "status": status,
            "recipient": ref("people", person), "cadence": ref("cadences", cadence), "counts": {}}


def call(cid: int, person: int, cadence: int, at: str) -> dict[str, Any]:
    return {"id": cid, "created_at": at, "updated_at": at, "disposition": "Connected",
            "called_person": ref("people", person), "cadence": ref("cadences", cadence)}


def person(pid: int, account: int | None) -> dict[str, Any]:
    at = "2025-01-01T00:00:00.000000Z"
    return {"id": pid, "created_at": at, "updated_at": at, "account": ref("accounts", account), "custom_fields": {}}


def opportunity(oid: int, account: int | None, opened: str, amount: str, won: bool = False, closed: bool = False,
                updated: str = "2025-03-20T00:00:00.000000Z") -> dict[str, Any]:
    return {"id": oid, "created_at": "2025-03-15T00:00:00.000000Z", "updated_at": updated, "created_date": opened,
            "name": f"Deal {oid}", "amount": amount, "is_won": won, "is_closed": closed or won,
            "stage_name": "Closed Won" if won else "Qualification", "account": ref("accounts", account),
            "custom_fields": {}}


def link(lid: int, opportunity_id: int, person_id: int) -> dict[str, Any]:
    at = "2025-03-15T00:00:00.000000Z"
    return {"id": lid, "created_at": at, "updated_at": at, "opportunity_id": opportunity_id, "person_id": person_id}


def load(wh: Warehouse, stream: str, records: list[dict[str, Any]]) -> None:
    wh.replace_partition(raw_table(BY_NAME[stream]), DAY, records)


def stage(wh: Warehouse) -> None:
    for stream in attribution.INPUT_STREAMS:
        build_staging(wh, BY_NAME[stream])


def pipeline(wh: Warehouse) -> dict[tuple[date, int, str], tuple]:
    rows = wh.query(
        "SELECT activity_day, cadence_id, attribution, opportunities, pipeline_amount, won_opportunities,"
        " won_amount, lost_opportunities FROM engagement.cadence_pipeline"
    )
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def team(wh: Warehouse) -> None:
    wh.setup([raw_table(BY_NAME[s]) for s in attribution.INPUT_STREAMS])
    load(wh, "people", [person(1, 10), person(2, 10), person(3, 20), person(4, None)])
    load(wh, "emails", [
        email(1, 1, A, "2025-03-01T10:00:00.000000Z"),  # person 1: A first ...
        email(2, 2, A, "2025-03-09T10:00:00.000000Z", status="failed"),  # never sent: no touch
        email(3, 4, B, "2025-03-11T10:00:00.000000Z"),
        email(4, 3, A, "2025-02-10T12:00:00.000000Z"),  # 30 days before opportunity 1001 opened, to the second
        email(5, 5, A, "2025-03-13T10:00:00.000000Z"),  # after opportunity 1003 opened
    ])
    load(wh, "calls", [call(1, 1, B, "2025-03-05T10:00:00.000000Z")])  # ... then B
    load(wh, "opportunities", [
        opportunity(1000, 10, "2025-03-10T09:00:00.000000Z", "5000.00"),  # account 10: people 1, 2
        opportunity(1001, 20, "2025-03-12T12:00:00.000000Z", "1200.50", won=True),  # linked: person 4
        opportunity(1002, 30, "2025-03-12T12:00:00.000000Z", "700"),  # nobody touched
        opportunity(1003, None, "2025-03-12T12:00:00.000000Z", "900", closed=True),  # touched only later
    ])
    load(wh, "opportunity_people", [link(1, 1001, 4), link(2, 1003, 5)])
    stage(wh)


def test_first_and_last_touch_credit_one_cadence_each(url: str) -> None:
    wh = open_warehouse(url)
    team(wh)
    assert attribution.build_pipeline(wh) == 4
    march = lambda d: date(2025, 3, d)  # noqa: E731
    assert pipeline(wh) == {
        # Person 1 was emailed by A (Mar 1), then called by B (Mar 5): the account's opportunity of Mar 10.
        (march(10), A, "first_touch"): (1, Decimal("5000.00"), 0, Decimal("0.00"), 0),
        (march(10), B, "last_touch"): (1, Decimal("5000.00"), 0, Decimal("0.00"), 0),
        # The linked person 4 (no account) was emailed by B; the email of Feb 10 12:00 to the account's
        # person 3 is exactly 30 days before: outside the window.
        (march(12), B, "first_touch"): (1, Decimal("1200.50"), 1, Decimal("1200.50"), 0),
        (march(12), B, "last_touch"): (1, Decimal("1200.50"), 1, Decimal("1200.50"), 0),
    }


def test_an_amount_edited_after_the_close_and_a_late_touch_change_the_rows(url: str) -> None:
    wh = open_warehouse(url)
    team(wh)
    attribution.build_pipeline(wh)
    # After it was won, the amount of 1001 is corrected; and a call by A to person 4, made before
    # the opportunity opened, arrives late.
    wh.upsert_records(raw_table(BY_NAME["opportunities"]), [
        opportunity(1001, 20, "2025-03-12T12:00:00.000000Z", "2000.00", won=True, updated="2025-03-25T00:00:00.000000Z")
    ])
    wh.upsert_records(raw_table(BY_NAME["calls"]), [call(2, 4, A, "2025-03-02T08:00:00.000000Z")])
    stage(wh)
    attribution.build_pipeline(wh)
    rows = pipeline(wh)
    assert rows[(date(2025, 3, 12), A, "first_touch")] == (1, Decimal("2000.00"), 1, Decimal("2000.00"), 0)
    assert rows[(date(2025, 3, 12), B, "last_touch")] == (1, Decimal("2000.00"), 1, Decimal("2000.00"), 0)
    assert (date(2025, 3, 12), B, "first_touch") not in rows


def test_the_window_and_the_zone_are_settings(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = open_warehouse(url)
    team(wh)
    monkeypatch.setenv(attribution.DAYS_VARIABLE, "3")  # Mar 10 09:00 - 3 days: Mar 1 and Mar 5 are out
    attribution.build_pipeline(wh)
    assert set(pipeline(wh)) == {(date(2025, 3, 12), B, "first_touch"), (date(2025, 3, 12), B, "last_touch")}
    monkeypatch.setenv(attribution.DAYS_VARIABLE, "30")
    monkeypatch.setenv(reporting.VARIABLE, "Pacific/Kiritimati")  # UTC+14: 12:00Z on Mar 12 is Mar 13 there
    attribution.build_pipeline(wh)
    assert {day for day, _, _ in pipeline(wh)} == {date(2025, 3, 10), date(2025, 3, 13)}


def test_a_bad_window_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(attribution.DAYS_VARIABLE, "a month")
    with pytest.raises(ValueError, match="SALESLOFT_ATTRIBUTION_DAYS must be a whole number"):
        attribution.attribution_days()


def test_the_asset_waits_for_its_staging_tables_then_builds(url: str) -> None:
    wh = open_warehouse(url)
    wh.setup([])
    resources = {"warehouse": WarehouseResource(url=url)}
    with dg.DagsterInstance.ephemeral() as instance:
        waiting = dg.materialize([attribution.cadence_pipeline], resources=resources, instance=instance)
        assert waiting.success and not waiting.get_asset_materialization_events()
        team(wh)
        built = dg.materialize([attribution.cadence_pipeline], resources=resources, instance=instance)
        [event] = built.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["dagster/row_count"].value == 4
        assert metadata["attributed_opportunities"].value == 2
        assert metadata["attributed_pipeline_amount"].value == pytest.approx(6200.50)


def test_a_late_opportunity_update_requests_the_model_again(tmp_path: Path) -> None:
    """Declarative automation: once staging/opportunities is materialized again (a stage change merged),
    the model is requested; and not again until another input changes."""
    from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS, staging_asset_key

    url = str(tmp_path / "warehouse.duckdb")
    resources = {"warehouse": WarehouseResource(url=url)}
    staging = [a for a in STAGING_ASSETS if a.key.path[-1] in attribution.INPUT_STREAMS]
    [opportunities] = [a for a in staging if a.key == staging_asset_key(BY_NAME["opportunities"])]
    team(open_warehouse(url))
    with dg.DagsterInstance.ephemeral() as instance:
        defs = dg.Definitions(assets=[*staging, attribution.cadence_pipeline], resources=resources)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        dg.materialize([attribution.cadence_pipeline], resources=resources, instance=instance)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert quiet.get_num_requested(attribution.cadence_pipeline.key) == 0
        wh = open_warehouse(url)
        wh.upsert_records(raw_table(BY_NAME["opportunities"]), [  # closed lost, late
            opportunity(1000, 10, "2025-03-10T09:00:00.000000Z", "5000.00", closed=True, updated="2025-03-26T00:00:00Z")
        ])
        merged = dg.materialize([opportunities], resources=resources, instance=instance)
        assert merged.get_asset_materialization_events()  # the change was merged
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
        assert after.get_num_requested(attribution.cadence_pipeline.key) == 1
