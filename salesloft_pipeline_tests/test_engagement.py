"""Each engagement metric on the hand-built dataset, with answers worked out by hand, on DuckDB and Postgres.

The dataset and the worked answers are in test_engagement_data.py (D1 =
2025-03-03). Records go through the real path: raw tables (one partition per
updated_at day), the staging SQL, then the engagement SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline_tests.test_engagement_data import D0, D1, D2, load, rebuild_staging, warehouse_on


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with warehouse_on(request.param, tmp_path_factory.mktemp("engagement")) as warehouse:
        load(warehouse)
        rebuild_staging(warehouse)
        models.build(warehouse, models.MODELS, D0, D2)
        yield warehouse


def rows(wh: Warehouse, model: str, where: str = "TRUE") -> list[dict[str, Any]]:
    with wh.connection() as conn:
        cursor = conn.execute(f"SELECT * FROM engagement.{model} WHERE {where} ORDER BY 1")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]


def row(wh: Warehouse, model: str, where: str) -> dict[str, Any]:
    [found] = rows(wh, model, where)
    return found


def team(wh: Warehouse, day=D1) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return row(wh, "daily_engagement", f"activity_day = DATE '{day}'")


def by_user(wh: Warehouse, user: int | None, day=D1) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    key = "user_id IS NULL" if user is None else f"user_id = {user}"
    return row(wh, "daily_engagement_by_user", f"activity_day = DATE '{day}' AND {key}")


def by_cadence(wh: Warehouse, cadence: int | None, day=D1) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    key = "cadence_id IS NULL" if cadence is None else f"cadence_id = {cadence}"
    return row(wh, "daily_engagement_by_cadence", f"activity_day = DATE '{day}' AND {key}")


def test_days_are_utc_days_of_the_activity_not_of_updated_at(wh: Warehouse) -> None:
    assert [r["activity_day"] for r in rows(wh, "daily_engagement")] == [D0, D1, D2]


def test_emails_sent(wh: Warehouse) -> None:
    # e1, e2, e4 (23:30Z although written +01:00 on D2), e7; e3 (D1 evening in New York) is D2; e5, e6 never sent.
    assert team(wh)["emails_sent"] == 4
    assert team(wh, D2)["emails_sent"] == 1
    assert (by_user(wh, 1)["emails_sent"], by_user(wh, 2)["emails_sent"]) == (3, 1)
    assert (by_cadence(wh, 10)["emails_sent"], by_cadence(wh, 20)["emails_sent"]) == (3, 1)


def test_bounced_and_delivered(wh: Warehouse) -> None:
    assert (team(wh)["emails_bounced"], team(wh)["emails_delivered"]) == (1, 3)
    assert (by_user(wh, 1)["emails_bounced"], by_user(wh, 1)["emails_delivered"]) == (1, 2)
    assert team(wh)["bounce_rate"] == pytest.approx(0.25)


def test_opened_counts_an_email_once_and_never_a_bounced_one(wh: Warehouse) -> None:
    # e1 has 3 views: one opened email; e2 bounced with 2 views (image loads): not opened.
    assert team(wh)["emails_opened"] == 3
    assert by_user(wh, 1)["emails_opened"] == 2


def test_clicked(wh: Warehouse) -> None:
    assert team(wh)["emails_clicked"] == 1
    assert by_user(wh, 2)["emails_clicked"] == 0


def test_replied(wh: Warehouse) -> None:
    assert team(wh)["emails_replied"] == 1
    assert by_cadence(wh, 10)["emails_replied"] == 1


def test_rates_are_over_delivered_emails(wh: Warehouse) -> None:
    day = team(wh)
    assert (day["open_rate"], day["click_rate"], day["reply_rate"]) == pytest.approx((3 / 3, 1 / 3, 1 / 3))
    user1 = by_user(wh, 1)  # delivered e1, e7
    assert (user1["open_rate"], user1["click_rate"], user1["reply_rate"]) == pytest.approx((1.0, 0.5, 0.5))
    # No email at all: rates are NULL, not 0.
    assert by_user(wh, None)["open_rate"] is None


def test_unique_people_emailed(wh: Warehouse) -> None:
    # 101 got e1 and e7: counted once.
    assert team(wh)["people_emailed"] == 3
    assert by_user(wh, 1)["people_emailed"] == 2


def test_calls_and_connected_by_disposition_or_flag(wh: Warehouse) -> None:
    assert (team(wh)["calls"], team(wh)["calls_connected"]) == (4, 2)
    assert (by_user(wh, 2)["calls"], by_user(wh, 2)["calls_connected"]) == (2, 1)  # c4: connected flag only


def test_connect_rate(wh: Warehouse) -> None:
    assert team(wh)["connect_rate"] == pytest.approx(0.5)
    assert by_cadence(wh, 10)["connect_rate"] == pytest.approx(1.0)
    assert team(wh, D2)["connect_rate"] is None  # no calls


def test_calls_by_disposition_and_by_sentiment(wh: Warehouse) -> None:
    outcomes = rows(wh, "call_outcomes", f"activity_day = DATE '{D1}'")
    by_disposition: dict[Any, int] = {}
    by_sentiment: dict[Any, int] = {}
    for r in outcomes:
        by_disposition[r["disposition"]] = by_disposition.get(r["disposition"], 0) + r["calls"]
        by_sentiment[r["sentiment"]] = by_sentiment.get(r["sentiment"], 0) + r["calls"]
    assert by_disposition == {"Connected": 1, "No Answer": 1, "Left Voicemail": 1, None: 1}
    assert by_sentiment == {"Interested": 1, "Not Interested": 1, None: 2}


def test_talk_time(wh: Warehouse) -> None:
    assert (team(wh)["talk_time_seconds"], team(wh)["call_duration_seconds"]) == (420, 445)
    assert sum(r["talk_time_seconds"] for r in rows(wh, "call_outcomes", f"activity_day = DATE '{D1}'")) == 420


def test_meetings_booked_exclude_cancelled_and_count_on_the_booking_day(wh: Warehouse) -> None:
    # m1, m4 on D1 (m2 cancelled); m3 booked 19:00 New York = D2.
    assert (team(wh)["meetings_booked"], team(wh, D2)["meetings_booked"]) == (2, 1)
    # m1 booked by guid g-1 = user 1; m4's booker is unknown: user NULL; m2 (user 2) was cancelled.
    assert (by_user(wh, 1)["meetings_booked"], by_user(wh, None)["meetings_booked"], by_user(wh, 2)["meetings_booked"]) == (1, 1, 0)


def test_no_shows(wh: Warehouse) -> None:
    assert (team(wh)["meetings_no_show"], team(wh, D2)["meetings_no_show"]) == (1, 1)


def test_successes(wh: Warehouse) -> None:
    assert (team(wh)["successes"], team(wh, D2)["successes"]) == (1, 1)
    assert (by_user(wh, 1)["successes"], by_cadence(wh, 10)["successes"]) == (1, 1)


def test_people_touched(wh: Warehouse) -> None:
    # emailed 101, 102, 103; called 101, 104, 103, 106: five people.
    assert team(wh)["people_touched"] == 5
    assert (by_user(wh, 1)["people_touched"], by_user(wh, 2)["people_touched"]) == (3, 2)


def test_people_added_to_cadences(wh: Warehouse) -> None:
    assert (team(wh, D0)["people_added_to_cadences"], team(wh)["people_added_to_cadences"]) == (1, 4)
    assert (by_cadence(wh, 10)["people_added_to_cadences"], by_cadence(wh, 20)["people_added_to_cadences"]) == (2, 2)


def test_median_time_from_membership_to_first_touch(wh: Warehouse) -> None:
    # first touches on D1: 1 h, 24 h, 3.5 h -> median 3.5 h; user 1: 1 h and 24 h -> 12.5 h.
    assert (team(wh)["first_touches"], team(wh)["median_hours_to_first_touch"]) == (3, pytest.approx(3.5))
    assert by_user(wh, 1)["median_hours_to_first_touch"] == pytest.approx(12.5)
    assert by_cadence(wh, 20)["median_hours_to_first_touch"] == pytest.approx(3.5)
    assert team(wh, D2)["median_hours_to_first_touch"] is None


def test_cadence_step_funnel(wh: Warehouse) -> None:
    funnel = {(r["cadence_id"], r["step_id"]): r for r in rows(wh, "cadence_step_funnel", f"activity_day = DATE '{D1}'")}
    assert set(funnel) == {(10, 1001), (10, 1002), (20, 2001)}
    email_step = funnel[(10, 1001)]
    assert (email_step["people_reached"], email_step["emails_sent"], email_step["replies"], email_step["meetings_booked"]) == (2, 3, 1, 1)
    phone_step = funnel[(10, 1002)]
    assert (phone_step["people_reached"], phone_step["calls"], phone_step["calls_connected"]) == (1, 1, 1)
    # m2 was booked from step 2001 but cancelled.
    assert (funnel[(20, 2001)]["people_reached"], funnel[(20, 2001)]["meetings_booked"]) == (1, 0)


def test_a_rebuild_of_the_same_days_changes_nothing(wh: Warehouse) -> None:
    def everything() -> dict[str, list[str]]:
        return {m: sorted(repr(sorted(r.items())) for r in rows(wh, m)) for m in models.MODELS}

    before = everything()
    models.build(wh, models.MODELS, D1, D1)
    assert everything() == before
    assert models.stale_days(wh, D0, D2) == []
