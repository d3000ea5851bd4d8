"""Engagement days in the team's own time zone (SALESLOFT_REPORTING_TIMEZONE).

Hand-built emails, calls, meetings, successes and memberships at instants
around local midnight and around both 2025 DST transitions of
America/New_York (March 9, a 23-hour day; November 2, a 25-hour day), and in
Asia/Kolkata (+05:30, no DST): each must land on its local day, as Python's
zoneinfo computes it, on DuckDB and on Postgres; a week's totals must equal
the UTC build's. Then the zone of a populated warehouse changes, and the
rebuilt tables must equal a fresh build in the new zone.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest

from salesloft_pipeline import reporting
from salesloft_pipeline.defs.engagement import changes, models, sensors
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import PostgresWarehouse, Warehouse, open_warehouse
from salesloft_pipeline_tests.test_engagement_data import (
    USERS, call, email, load, meeting, membership, rebuild_staging, success, warehouse_on,
)  # fmt: skip

NEW_YORK, KOLKATA = "America/New_York", "Asia/Kolkata"
FIRST, LAST = date(2025, 3, 5), date(2025, 11, 6)  # every activity's day, in any zone here, is in between
SPRING, FALL = date(2025, 3, 9), date(2025, 11, 2)  # New York's 23-hour and 25-hour days


def z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local(zone: str, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(zone), fold=fold)  # type: ignore[misc]


def instants() -> list[datetime]:
    """Every 47 minutes through a week around each transition, and the edges that matter."""
    every: list[datetime] = []
    for start in (datetime(2025, 3, 6, tzinfo=timezone.utc), datetime(2025, 10, 30, tzinfo=timezone.utc)):
        every += [start + timedelta(minutes=47 * n) for n in range(7 * 24 * 60 // 47)]
    edges = []
    for zone in (NEW_YORK, KOLKATA):
        for day in (date(2025, 3, 8), SPRING, date(2025, 3, 10), date(2025, 11, 1), FALL, date(2025, 11, 3)):
            midnight = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(timezone.utc)
            edges += [midnight - timedelta(microseconds=1), midnight, midnight + timedelta(seconds=1)]
    edges += [
        local(NEW_YORK, 2025, 3, 9, 1, 59, 59), local(NEW_YORK, 2025, 3, 9, 3, 0),  # either side of the skipped hour
        local(NEW_YORK, 2025, 11, 2, 1, 30), local(NEW_YORK, 2025, 11, 2, 1, 30, fold=1),  # the repeated hour, twice
        local(NEW_YORK, 2025, 11, 2, 23, 59, 59),
    ]
    # In UTC: arithmetic on them (a minute before) is then on instants, not on wall clocks.
    return sorted({moment.astimezone(timezone.utc) for moment in every + edges})


def dataset() -> dict[str, list[dict[str, Any]]]:
    """An activity of each kind at every instant (emails sent at it; the rest made, booked, won, added at it)."""
    emails, calls, meetings, successes, memberships = [], [], [], [], []
    for n, at in enumerate(instants()):
        stamp, person = z(at), 1000 + n
        emails.append(email(100_000 + n, 1, person, stamp, 10, 1001, views=n % 3, replies=int(n % 5 == 0)))
        calls.append(call(200_000 + n, 2, person, stamp, "Connected" if n % 2 else "No Answer", duration=60))
        if n % 3 == 0:
            meetings.append(meeting(300_000 + n, "g-1", person, stamp))
            successes.append(success(400_000 + n, 1, person, stamp, 10))
            # Added a minute before the email: its first touch is that email, on the email's day.
            memberships.append(membership(500_000 + n, 1, person, 10, z(at - timedelta(minutes=1))))
    return {"users": USERS, "emails": emails, "calls": calls, "meetings": meetings, "successes": successes,
            "cadence_memberships": memberships}


DATA = dataset()


def expected_days(zone: str, stream: str, column: str) -> Counter[date]:
    return Counter(datetime.fromisoformat(r[column]).astimezone(ZoneInfo(zone)).date() for r in DATA[stream])


@pytest.fixture(autouse=True)
def _no_learnt_zone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts with no zone set or learnt, and leaves none behind."""
    monkeypatch.delenv(reporting.VARIABLE, raising=False)
    monkeypatch.setenv("SALESLOFT_PIPELINE_HOME", str(tmp_path / "home"))
    reporting.team_timezone.cache_clear()
    yield
    reporting.team_timezone.cache_clear()


def built_in(wh: Warehouse, zone: str, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    monkeypatch.setenv(reporting.VARIABLE, zone)
    models.build(wh, models.MODELS, FIRST, LAST, rebuild=True)
    return wh


def per_day(wh: Warehouse, column: str) -> Counter[date]:
    rows = wh.query(f"SELECT activity_day, {column} FROM engagement.daily_engagement")
    return Counter({day: int(n) for day, n in rows if n})


def table(wh: Warehouse, model: str) -> list[str]:
    return sorted(map(repr, wh.query(f"SELECT * FROM engagement.{model}")))


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with warehouse_on(request.param, tmp_path_factory.mktemp("zones")) as wh:
        load(wh, DATA)
        rebuild_staging(wh)
        yield wh


@pytest.mark.parametrize("zone", [NEW_YORK, KOLKATA, "UTC"])
def test_every_activity_is_on_its_local_day_and_a_weeks_totals_equal_utcs(
    loaded: Warehouse, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = built_in(loaded, zone, monkeypatch)
    assert per_day(wh, "emails_sent") == expected_days(zone, "emails", "sent_at")
    assert per_day(wh, "calls") == expected_days(zone, "calls", "created_at")
    assert per_day(wh, "meetings_booked") == expected_days(zone, "meetings", "created_at")
    assert per_day(wh, "successes") == expected_days(zone, "successes", "succeeded_at")
    assert per_day(wh, "people_added_to_cadences") == expected_days(zone, "cadence_memberships", "added_at")
    assert per_day(wh, "first_touches") == first_touch_days(zone)
    # Every fact is on the day its own time has in the zone, as the database takes it.
    [(misplaced,)] = wh.query(
        f"SELECT count(*) FROM engagement.activity_facts WHERE activity_day <> {models.day_of('occurred_at', zone)}"
    )
    assert misplaced == 0
    # Nothing counted twice or lost: the totals equal the activities (and so UTC's), whatever the zone.
    assert sum(per_day(wh, "emails_sent").values()) == len(DATA["emails"])
    assert sum(per_day(wh, "calls").values()) == len(DATA["calls"])
    [(facts,)] = wh.query("SELECT count(*) FROM engagement.activity_facts WHERE activity IN ('email', 'call')")
    assert facts == len(DATA["emails"]) + len(DATA["calls"])


def first_touch_days(zone: str) -> Counter[date]:
    """Each membership's first touch is the email a minute after it was added, on that email's local day."""
    added = {r["person"]["id"] for r in DATA["cadence_memberships"]}
    return Counter(
        datetime.fromisoformat(r["sent_at"]).astimezone(ZoneInfo(zone)).date()
        for r in DATA["emails"] if r["recipient"]["id"] in added
    )


def test_new_yorks_dst_days_are_23_and_25_hours_long(loaded: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = built_in(loaded, NEW_YORK, monkeypatch)
    spans = dict(wh.query(
        "SELECT activity_day, max(occurred_at) - min(occurred_at) FROM engagement.activity_facts"
        f" WHERE activity = 'email' AND activity_day IN (DATE '{SPRING}', DATE '{FALL}') GROUP BY 1"
    ))
    # The day's first and last instants (the midnights' edges are among the activities).
    assert spans[SPRING] == timedelta(hours=23, microseconds=-1)
    assert spans[FALL] == timedelta(hours=25, microseconds=-1)
    # Both 01:30s of the repeated hour count on November 2, once each.
    repeated = [z(local(NEW_YORK, 2025, 11, 2, 1, 30, fold=f)) for f in (0, 1)]
    [(twice,)] = wh.query(
        "SELECT count(*) FROM engagement.activity_facts WHERE activity = 'email' AND activity_day = DATE"
        f" '{FALL}' AND occurred_at IN (TIMESTAMPTZ '{repeated[0]}', TIMESTAMPTZ '{repeated[1]}')"
    )
    assert twice == 2


def test_a_changed_activity_moves_between_local_days_of_one_utc_day(
    loaded: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """23:30 and 00:30 in New York are the same UTC day: the change detection must still see both days."""
    wh = built_in(loaded, NEW_YORK, monkeypatch)
    changes.update_changed_days(wh, FIRST, LAST)  # takes what the fixture's staging builds queued
    before, after = local(NEW_YORK, 2025, 3, 7, 23, 30), local(NEW_YORK, 2025, 3, 8, 0, 30)
    assert before.astimezone(timezone.utc).date() == after.astimezone(timezone.utc).date()
    moved = email(900_001, 1, 5000, z(after), 10, 1001, updated_at=z(after + timedelta(days=30)))
    added = email(900_001, 1, 5000, z(before), 10, 1001, updated_at=z(after + timedelta(days=29)))
    emails = raw_table(BY_NAME["emails"])
    try:
        wh.replace_partition(emails, date(2025, 4, 6), [added])
        build_staging(wh, BY_NAME["emails"])
        assert not changes.update_changed_days(wh, FIRST, LAST).exhaustive
        assert per_day(wh, "emails_sent")[before.date()] == expected_days(NEW_YORK, "emails", "sent_at")[before.date()] + 1
        wh.replace_partition(emails, date(2025, 4, 7), [moved])
        build_staging(wh, BY_NAME["emails"])
        update = changes.update_changed_days(wh, FIRST, LAST)
        assert {before.date(), after.date()} <= set(update.days) and not update.exhaustive
        expected = expected_days(NEW_YORK, "emails", "sent_at") + Counter({after.date(): 1})
        assert per_day(wh, "emails_sent") == expected
        with warehouse_on("postgres" if isinstance(wh, PostgresWarehouse) else "duckdb", tmp_path) as fresh:
            load(fresh, {**DATA, "emails": [*DATA["emails"], moved]})
            rebuild_staging(fresh)
            built_in(fresh, NEW_YORK, monkeypatch)
            for model in models.MODELS:
                assert table(wh, model) == table(fresh, model), model
    finally:
        for day in (date(2025, 4, 6), date(2025, 4, 7)):
            wh.replace_partition(emails, day, [])
        build_staging(wh, BY_NAME["emails"])


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_changing_the_zone_rebuilds_every_day_as_a_fresh_build_in_the_new_zone(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warehouse_on(engine, tmp_path) as wh, warehouse_on(engine, tmp_path) as fresh:
        for warehouse in (wh, fresh):
            load(warehouse, DATA)
            rebuild_staging(warehouse)
        built_in(wh, "UTC", monkeypatch)
        with dg.DagsterInstance.ephemeral() as instance:
            cursor = json.dumps({"versions": sensors.staging_versions(instance), "requested": 1})

        monkeypatch.setenv(reporting.VARIABLE, KOLKATA)
        assert models.built_with_other_settings(wh)
        # The sensor asks for an update although no staging model changed: the code location's zone did.
        with dg.DagsterInstance.ephemeral() as instance:
            assert isinstance(sensors.evaluate(instance, cursor), dg.SensorResult)
        update = changes.update_changed_days(wh, FIRST, LAST)
        assert update.rebuilt_models
        assert not models.built_with_other_settings(wh)
        built_in(fresh, KOLKATA, monkeypatch)
        for model in models.MODELS:
            assert table(wh, model) == table(fresh, model), f"engagement.{model} keeps days of the old zone"
        assert per_day(wh, "emails_sent") == expected_days(KOLKATA, "emails", "sent_at")


def test_the_engagement_asset_rebuilds_every_day_when_the_zone_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition run after a zone change rebuilds every day, so no day of the old zone survives beside it."""
    from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS
    from salesloft_pipeline.defs.resources import WarehouseResource

    path = str(tmp_path / "warehouse.duckdb")
    wh = open_warehouse(path)
    load(wh, DATA)
    rebuild_staging(wh)
    built_in(wh, "UTC", monkeypatch)
    monkeypatch.setenv(reporting.VARIABLE, NEW_YORK)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(ENGAGEMENT_ASSETS, partition_key=SPRING.isoformat(), instance=instance,
                                resources={"warehouse": WarehouseResource(url=path)})
    assert result.success
    assert per_day(wh, "emails_sent") == expected_days(NEW_YORK, "emails", "sent_at")


# -- where the zone comes from -------------------------------------------------------------------
def test_the_variable_names_the_zone_and_a_bad_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(reporting.VARIABLE, KOLKATA)
    assert reporting.reporting_timezone() == KOLKATA
    monkeypatch.setenv(reporting.VARIABLE, "America/Nowhere")
    with pytest.raises(ValueError, match=f"{reporting.VARIABLE} must be an IANA time zone name.*America/Nowhere"):
        reporting.reporting_timezone()


def test_loading_the_definitions_with_a_bad_zone_fails_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, reporting.VARIABLE: "Mars/Olympus", "SALESLOFT_PIPELINE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import salesloft_pipeline.definitions"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and f"{reporting.VARIABLE} must be an IANA time zone name" in done.stderr
    env[reporting.VARIABLE] = NEW_YORK
    script = "from salesloft_pipeline.defs.partitions import DAILY, ENGAGEMENT_DAILY as E; print(DAILY.timezone, E.timezone)"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["UTC", NEW_YORK], done.stderr


def test_without_the_variable_or_credentials_days_are_utc_and_a_log_line_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("SALESLOFT_API_KEY", "SALESLOFT_CLIENT_ID", "SALESLOFT_CLIENT_SECRET", "SALESLOFT_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING, logger=reporting.__name__):
        assert reporting.reporting_timezone() == "UTC"
    assert any("counted in UTC" in r.message and reporting.VARIABLE in r.message for r in caplog.records)
    assert not reporting.learnt_path().exists()  # nothing learnt: the next load asks again


def test_without_the_variable_the_teams_zone_is_learnt_from_salesloft_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Simulator(SimulatorConfig(seed=3, people=20, days=2)).serve() as sim:
        monkeypatch.setenv("SALESLOFT_API_KEY", sim.api_key)
        monkeypatch.setenv("SALESLOFT_BASE_URL", sim.base_url)
        me = httpx.get(f"{sim.base_url}/me", headers={"Authorization": f"Bearer {sim.api_key}"}).json()["data"]
        requests = httpx.get(f"{sim.url}/__sim/stats").json()["requests"]
        with caplog.at_level(logging.INFO, logger=reporting.__name__):
            assert reporting.reporting_timezone() == me["time_zone"] != "UTC"
        assert httpx.get(f"{sim.url}/__sim/stats").json()["requests"] == requests + 1
        assert json.loads(reporting.learnt_path().read_text())["time_zone"] == me["time_zone"]
        assert any(me["time_zone"] in r.message for r in caplog.records)
        # Later loads (the code server again, each run's worker) read what was learnt: no request.
        reporting.team_timezone.cache_clear()
        assert reporting.reporting_timezone() == me["time_zone"]
        assert httpx.get(f"{sim.url}/__sim/stats").json()["requests"] == requests + 1
        # The variable wins over what was learnt.
        monkeypatch.setenv(reporting.VARIABLE, KOLKATA)
        assert reporting.reporting_timezone() == KOLKATA


def test_an_unreachable_salesloft_means_utc_this_time_and_a_retry_next_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SALESLOFT_API_KEY", "secret-key-never-logged")
    monkeypatch.setenv("SALESLOFT_BASE_URL", "http://127.0.0.1:9/v2")
    with caplog.at_level(logging.WARNING, logger=reporting.__name__):
        assert reporting.reporting_timezone() == "UTC"
    assert "counted in UTC" in caplog.text and "secret-key-never-logged" not in caplog.text
    assert not reporting.learnt_path().exists()
