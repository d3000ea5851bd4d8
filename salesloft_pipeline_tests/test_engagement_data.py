"""A small hand-built SalesLoft dataset for the engagement tests (no tests here), and how to load it.

Every answer the tests expect is worked out by hand in the comments below
(D1 = 2025-03-03, D2 = 2025-03-04, times UTC unless an offset is written).
Records are shaped like the real ones in fixtures/salesloft_real_records.jsonl.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any


from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.defs.extract.tables import all_raw_tables, raw_table
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

API = "https://api.salesloft.com/v2"
D0, D1, D2 = date(2025, 3, 2), date(2025, 3, 3), date(2025, 3, 4)


def ref(path: str, record_id: Any) -> dict[str, Any] | None:
    return None if record_id is None else {"_href": f"{API}/{path}/{record_id}", "id": record_id}


def email(i, user, person, sent_at, cadence=None, step=None, status="sent", bounced=False, views=0, clicks=0,
          replies=0, updated_at=None) -> dict[str, Any]:
    created = sent_at or "2025-03-03T08:00:00.000000Z"
    return {
        "id": i, "created_at": created, "updated_at": updated_at or sent_at or created,
        "recipient_email_address": f"p{person}@example.com", "status": status, "bounced": bounced,
        "send_after": created, "sent_at": sent_at, "view_tracking": True, "click_tracking": True, "headers": {},
        "personalization": "100.0",
        "counts": {"clicks": clicks, "views": views, "replies": replies, "unique_devices": min(views, 1),
                   "unique_locations": min(views, 1), "attachments": 0},
        "user": ref("users", user), "recipient": ref("people", person), "mailing": {"id": 3_000_000 + i},
        "action": None, "task": None, "crm_activity": None, "cadence": ref("cadences", cadence),
        "step": ref("steps", step), "email_template": None,
    }


def call(i, user, person, created_at, disposition, sentiment=None, duration=None, cadence=None, step=None,
         **extra) -> dict[str, Any]:
    return {
        "id": i, "to": "+15550100", "duration": duration, "sentiment": sentiment, "disposition": disposition,
        "created_at": created_at, "updated_at": created_at, "recordings": [], "user": ref("users", user),
        "action": None, "called_person": ref("people", person), "crm_activity": None, "note": None,
        "cadence": ref("cadences", cadence), "step": ref("steps", step), **extra,
    }


def meeting(i, guid, person, created_at, cadence=None, step=None, canceled_at=None, no_show=False) -> dict[str, Any]:
    return {
        "id": i, "title": f"Meeting with {person}", "start_time": "2025-03-10T15:00:00.000000Z",
        "end_time": "2025-03-10T15:30:00.000000Z", "created_at": created_at,
        "updated_at": canceled_at or created_at, "event_source": "internal", "canceled_at": canceled_at,
        "all_day": False, "no_show": no_show, "status": "canceled" if canceled_at else "booked",
        "person": ref("people", person), "cadence": ref("cadences", cadence), "step": ref("steps", step),
        "booked_by_user": {"_href": f"{API}/users/{guid}", "id": guid},
    }


def success(i, user, person, at, cadence=None, step=None) -> dict[str, Any]:
    return {
        "id": i, "created_at": at, "updated_at": at, "succeeded_at": at, "success_window_started_at": at,
        "user": ref("users", user), "person": ref("people", person), "latest_email": None, "latest_call": None,
        "latest_action": None, "latest_cadence": ref("cadences", cadence), "latest_step": ref("steps", step),
        "counts": {"total_emails": 0, "total_calls": 0, "total_other_touches": 0},
    }


def membership(i, user, person, cadence, added_at) -> dict[str, Any]:
    return {
        "id": i, "added_at": added_at, "created_at": added_at, "updated_at": added_at, "person_deleted": False,
        "currently_on_cadence": True, "current_state": "active", "cadence": ref("cadences", cadence),
        "person": ref("people", person), "user": ref("users", user), "latest_action": None,
        "counts": {"views": 0, "clicks": 0, "replies": 0, "calls": 0, "sent_emails": 0, "bounces": 0},
    }


def user(i, guid) -> dict[str, Any]:
    return {"id": i, "guid": guid, "created_at": "2024-01-01T00:00:00.000000Z",
            "updated_at": "2024-01-01T00:00:00.000000Z", "name": f"User {i}", "email": f"u{i}@example.com",
            "active": True, "team_admin": False, "time_zone": "US/Eastern", "group": None, "team": {"id": 1},
            "role": {"id": "Admin"}}


# Users 1 (guid g-1) and 2 (guid g-2); people 101..106; cadence 10 (email step
# 1001, phone step 1002) and cadence 20 (email step 2001).
USERS = [user(1, "g-1"), user(2, "g-2")]
EMAILS = [
    # D1: sent e1, e2, e4, e7 (4); bounced e2 (1); delivered 3; opened e1, e4, e7 (3: e1's three views count
    # once, e2's views do not count: it bounced); clicked e1 (1); replied e1 (1); people emailed 101, 102, 103.
    email(1, 1, 101, "2025-03-03T09:00:00.000000Z", 10, 1001, views=3, clicks=1, replies=1,
          updated_at="2025-03-03T12:00:00.000000Z"),
    email(2, 1, 102, "2025-03-03T05:00:00.000000-05:00", 10, 1001, bounced=True, views=2),  # 10:00Z
    email(4, 2, 103, "2025-03-04T00:30:00.000000+01:00", 20, 2001, views=1),  # 23:30Z on D1, not D2
    email(7, 1, 101, "2025-03-03T11:00:00.000000Z", 10, 1001, views=1),
    # D2: e3 was sent on the evening of D1 in New York, which is D2 in UTC; no cadence.
    email(3, 1, 105, "2025-03-03T20:00:00.000000-05:00"),
    # Never sent: no activity day.
    email(5, 2, 104, None, status="scheduled"),
    email(6, 2, 103, None, status="failed"),
]
CALLS = [
    # D1: 4 calls; connected c1 (disposition) and c4 (the record's connected flag): 2, connect rate 0.5;
    # talk time 300 + 120 = 420 s; all durations 300 + 25 + 120 = 445 s.
    call(11, 1, 101, "2025-03-03T14:00:00.000000Z", "Connected", "Interested", 300, 10, 1002),
    call(12, 1, 104, "2025-03-03T10:00:00.000000-05:00", "No Answer"),  # 15:00Z
    call(13, 2, 103, "2025-03-03T16:00:00.000000Z", "Left Voicemail", None, 25, 20, None),
    call(14, 2, 106, "2025-03-03T17:00:00.000000Z", None, "Not Interested", 120, connected=True),
]
MEETINGS = [
    # D1 booked and not cancelled: m1, m4 (2); no-shows: m4 (1). m2 was cancelled. m3 was booked on D2 (UTC).
    meeting(21, "g-1", 101, "2025-03-03T12:00:00.000000Z", 10, 1001),
    meeting(22, "g-2", 103, "2025-03-03T13:00:00.000000Z", 20, 2001, canceled_at="2025-03-03T18:00:00.000000Z"),
    meeting(23, "g-1", 106, "2025-03-03T19:00:00.000000-05:00", no_show=True),  # 00:00Z on D2
    meeting(24, "g-unknown", 104, "2025-03-03T16:00:00.000000Z", no_show=True),  # booker not a known user
]
SUCCESSES = [
    success(31, 1, 101, "2025-03-03T07:05:00.000000-05:00", 10, 1001),  # 12:05Z, D1
    success(32, 2, 103, "2025-03-04T09:00:00.000000Z"),  # D2
]
MEMBERSHIPS = [
    # People added on D1: 101, 103, 105, 106 (4); on D0: 102.
    # First touches (first email sent or call made in the cadence at or after added_at):
    #   mb41 (101 on 10, added D1 08:00): e1 at 09:00 -> 3600 s, on D1;
    #   mb42 (102 on 10, added D0 10:00): e2 at D1 10:00 (a bounce is still a touch) -> 86400 s, on D1;
    #   mb43 (103 on 20, added D1 20:00): c3 at 16:00 came before it; e4 at 23:30 -> 12600 s, on D1;
    #   mb44 (105 on 20) and mb45 (106 on 10): no touch in their cadence.
    # D1: 3 first touches, median 12600 s = 3.5 h.
    membership(41, 1, 101, 10, "2025-03-03T08:00:00.000000Z"),
    membership(42, 1, 102, 10, "2025-03-02T10:00:00.000000Z"),
    membership(43, 2, 103, 20, "2025-03-03T15:00:00.000000-05:00"),  # 20:00Z
    membership(44, 2, 105, 20, "2025-03-03T09:00:00.000000Z"),
    membership(45, 1, 106, 10, "2025-03-03T10:00:00.000000Z"),
]
DATASET: dict[str, list[dict[str, Any]]] = {
    "users": USERS, "emails": EMAILS, "calls": CALLS, "meetings": MEETINGS, "successes": SUCCESSES,
    "cadence_memberships": MEMBERSHIPS,
}


def _day(value: str) -> date:
    return datetime.fromisoformat(value).astimezone(timezone.utc).date()


def load(wh: Warehouse, dataset: Mapping[str, list[dict[str, Any]]] = DATASET) -> None:
    """Loads records as the extraction does: each into the partition of its updated_at day."""
    wh.setup(all_raw_tables())
    for stream, records in dataset.items():
        table = raw_table(BY_NAME[stream])
        if not table.partitioned:
            wh.replace_snapshot(table, records)
            continue
        by_day: dict[date, list[dict[str, Any]]] = {}
        for record in records:
            by_day.setdefault(_day(record["updated_at"]), []).append(record)
        for day, day_records in by_day.items():
            wh.replace_partition(table, day, day_records)


def rebuild_staging(wh: Warehouse) -> None:
    for stream in models.INPUT_STREAMS:
        build_staging(wh, BY_NAME[stream])


@contextmanager
def warehouse_on(engine: str, tmp_dir) -> Iterator[Warehouse]:  # type: ignore[no-untyped-def]
    if engine == "duckdb":
        yield open_warehouse(str(tmp_dir / f"engagement-{uuid.uuid4().hex[:6]}.duckdb"))
    else:
        with fresh_database("slp_engagement") as url:
            yield open_warehouse(url)
