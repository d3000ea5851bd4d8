"""The simulator's data: generated history (generator/) and live activity (activity.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from salesloft_pipeline.simulator.activity import Activity, _Pool, make_ties
from salesloft_pipeline.simulator.catalog import STREAMS
from salesloft_pipeline.simulator.config import SimulatorConfig
from salesloft_pipeline.simulator.generator import SENT_STATUSES, email_subject, populate
from salesloft_pipeline.simulator.store import Change, Store, instant_us

ANCHOR = datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)
FIXTURES = Path(__file__).parent / "fixtures" / "salesloft_real_records.jsonl"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
BIG_STREAMS = (
    "people", "accounts", "cadence_memberships", "emails", "calls", "call_data_records", "meetings", "notes",
    "successes", "actions", "tasks", "crm_activities",
)


def build(seed: int = 7, people: int = 300, days: int = 30) -> tuple[Store, SimulatorConfig]:
    config = SimulatorConfig(seed=seed, people=people, days=days, anchor=ANCHOR)
    store = Store()
    populate(store, config)
    return store, config


def records(store: Store, stream: str) -> list[dict]:
    return [orjson.loads(blob) for blob in store.table(stream).blobs.values()]


def ids(store: Store, stream: str) -> set:
    return set(store.table(stream).blobs)


@pytest.fixture(scope="module")
def small() -> Store:
    return build()[0]


@pytest.fixture(scope="module")
def medium() -> Store:
    """Big enough for stable rates and for bulk-edit bursts of 150+ records."""
    return build(people=1500, days=30)[0]


@pytest.fixture(scope="module")
def fixture_records() -> dict[str, list[dict]]:
    by_stream: dict[str, list[dict]] = {}
    for line in FIXTURES.read_text().splitlines():
        item = json.loads(line)
        stream = "imports" if item["stream"] == "import" else item["stream"]
        by_stream.setdefault(stream, []).append(item["data"])
    return by_stream


# -- the history ------------------------------------------------------------------


def test_same_seed_gives_identical_records_and_another_seed_differs():
    first, second, other = build()[0], build()[0], build(seed=8)[0]
    for stream in first.tables:
        assert first.table(stream).blobs == second.table(stream).blobs, stream
    assert first.table("emails").blobs != other.table("emails").blobs


def test_every_stream_is_filled(small):
    for stream in STREAMS:
        assert len(small.table(stream.name)) > 0, stream.name


def json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def assert_same_shape(expected: dict, actual: dict, where: str) -> None:
    """Every key of the real record is there, with the same JSON type (or null)."""
    missing = set(expected) - set(actual)
    assert not missing, f"{where}: missing {sorted(missing)}"
    for key, value in expected.items():
        if value is None or actual[key] is None:
            continue
        assert json_type(actual[key]) == json_type(value), f"{where}.{key}: {actual[key]!r} vs {value!r}"
        if isinstance(value, dict) and (key == "counts" or "id" in value):
            # counts and references: the same keys exactly (with or without _href)
            assert set(actual[key]) == set(value), f"{where}.{key}: {sorted(actual[key])} vs {sorted(value)}"
            assert_same_shape(value, actual[key], f"{where}.{key}")


def test_records_have_the_shape_of_real_records(small, fixture_records):
    for stream, real in fixture_records.items():
        generated = records(small, stream)
        assert generated, stream
        for expected in real:
            for record in generated:
                assert_same_shape(expected, record, f"{stream}[{record['id']}]")


def test_references_point_at_existing_records(small):
    people, users, cadences, steps = (ids(small, s) for s in ("people", "users", "cadences", "steps"))
    accounts = ids(small, "accounts")
    step_cadence = {s["id"]: s["cadence"]["id"] for s in records(small, "steps")}
    assert set(step_cadence.values()) <= cadences
    for email in records(small, "emails"):
        assert email["recipient"]["id"] in people and email["user"]["id"] in users
        if email["step"]:
            assert step_cadence[email["step"]["id"]] == email["cadence"]["id"]
        for field, stream in (("crm_activity", "crm_activities"), ("action", "actions"), ("email_template", "email_templates")):
            assert email[field] is None or email[field]["id"] in ids(small, stream)
    for membership in records(small, "cadence_memberships"):
        assert membership["person"]["id"] in people and membership["cadence"]["id"] in cadences
        assert membership["user"]["id"] in users
        assert membership["latest_action"] is None or membership["latest_action"]["id"] in ids(small, "actions")
    for call in records(small, "calls"):
        assert call["called_person"]["id"] in people and call["user"]["id"] in users
        assert call["note"] is None or call["note"]["id"] in ids(small, "notes")
        assert call["step"] is None or step_cadence[call["step"]["id"]] == call["cadence"]["id"]
    for note in records(small, "notes"):
        target = people if note["associated_type"] == "person" else accounts
        assert note["associated_with"]["id"] in target
    for stream, field in (("successes", "person"), ("meetings", "person"), ("tasks", "person"),
                          ("actions", "person"), ("crm_activities", "person"), ("call_data_records", "called_person")):
        assert all(r[field]["id"] in people for r in records(small, stream)), stream
    assert all(a["step"]["id"] in steps for a in records(small, "actions"))
    assert all(c["call"]["id"] in ids(small, "calls") for c in records(small, "call_data_records"))
    guids = {u["guid"] for u in records(small, "users")}
    assert all(m["booked_by_user"]["id"] in guids for m in records(small, "meetings"))
    for person in records(small, "people"):
        assert person["owner"]["id"] in users
        assert person["account"] is None or person["account"]["id"] in accounts
        assert person["person_stage"] is None or person["person_stage"]["id"] in ids(small, "person_stages")
        assert person["import"]["id"] in ids(small, "imports")
    assert all(a["owner"]["id"] in users for a in records(small, "accounts"))
    assert all(c["owner"]["id"] in users for c in records(small, "cadences"))
    team_templates = ids(small, "team_templates")
    assert all(a["team_template"]["id"] in team_templates for a in records(small, "team_template_attachments"))


def test_counts_agree_with_the_activity(small):
    emails = records(small, "emails")
    sent = Counter(e["recipient"]["id"] for e in emails if e["status"] in SENT_STATUSES)
    calls = Counter(c["called_person"]["id"] for c in records(small, "calls"))
    for person in records(small, "people"):
        assert person["counts"]["emails_sent"] == sent[person["id"]]
        assert person["counts"]["calls"] == calls[person["id"]]
    per_account = Counter(p["account"]["id"] for p in records(small, "people") if p["account"])
    assert all(a["counts"]["people"] == per_account[a["id"]] for a in records(small, "accounts"))


def test_engagement_rates_are_those_of_a_sales_team(medium):
    emails = records(medium, "emails")
    sent = [e for e in emails if e["status"] in SENT_STATUSES]
    delivered = [e for e in sent if not e["bounced"]]

    def share(part: list, whole: list) -> float:
        return len(part) / len(whole)

    assert 0.02 <= share([e for e in sent if e["bounced"]], sent) <= 0.05
    assert 0.30 <= share([e for e in delivered if e["counts"]["views"] > 0], delivered) <= 0.50
    assert 0.02 <= share([e for e in delivered if e["counts"]["clicks"] > 0], delivered) <= 0.08
    assert 0.03 <= share([e for e in delivered if e["counts"]["replies"] > 0], delivered) <= 0.10
    assert 0.80 <= share(sent, emails) < 1.0
    assert {"sent", "sent_from_gmail", "failed"} <= {e["status"] for e in emails}
    calls = records(medium, "calls")
    assert 0.10 <= share([c for c in calls if c["disposition"] == "Connected"], calls) <= 0.25
    missed = [c for c in calls if c["disposition"] != "Connected"]
    assert share([c for c in missed if c["duration"] is None], missed) > 0.5
    meetings = records(medium, "meetings")
    assert any(m["canceled_at"] for m in meetings) and any(m["no_show"] for m in meetings)
    # Engagement arrives after sending: some emails were updated days after sent_at.
    late = [e for e in delivered if instant_us(e["updated_at"]) - instant_us(e["sent_at"]) > 2 * 86_400_000_000]
    assert late


def test_volume_scales_with_people_and_days(small, medium):
    ratio = len(medium.table("emails")) / len(small.table("emails"))
    assert 4 <= ratio <= 6  # 1500 vs 300 people, same days
    assert len(small.table("users")) == 3 and len(medium.table("users")) == 15


def test_timestamps_have_varied_offsets_and_stay_in_the_window(small):
    start, end = instant_us((ANCHOR - timedelta(days=30)).isoformat()), instant_us(ANCHOR.isoformat())
    offsets = Counter()
    for stream in small.tables:
        for record in records(small, stream):
            for key, value in record.items():
                if isinstance(value, str) and TIMESTAMP.match(value):
                    # An open opportunity's close_date is the expected one: it may be after the anchor.
                    expected_close = stream == "opportunities" and key == "close_date" and not record["is_closed"]
                    assert expected_close or instant_us(value) <= end, (stream, key, value)
                    if key in ("created_at", "updated_at"):
                        assert instant_us(value) >= start, (stream, key, value)
                    offsets[TIMESTAMP.match(value).group(1)] += 1
    assert {"Z", "+00:00"} <= set(offsets) and len(offsets) >= 4


def test_bulk_edits_give_many_records_one_updated_at(medium):
    for stream in ("people", "cadence_memberships"):
        biggest = Counter(r["updated_at"] for r in records(medium, stream)).most_common(1)[0][1]
        assert biggest >= 150, stream


def test_string_ids_where_salesloft_uses_them(small):
    assert all(isinstance(t["id"], str) and len(t["id"]) == 36 for t in records(small, "team_templates"))
    assert all(isinstance(a["team_template"]["id"], str) for a in records(small, "team_template_attachments"))
    assert {u["role"]["id"] for u in records(small, "users")} == {"Admin", "User"}
    assert all(isinstance(m["booked_by_user"]["id"], str) for m in records(small, "meetings"))
    assert all(isinstance(e["personalization"], str) for e in records(small, "emails"))
    assert any(c["counts"]["cadence_people"] is None for c in records(small, "cadences"))


def test_unknown_fields_appear_on_some_records_of_every_big_stream(small, fixture_records):
    for stream in BIG_STREAMS:
        found = records(small, stream)
        presence = Counter(key for record in found for key in record)
        occasional = {key for key, n in presence.items() if n < len(found)}
        known = set().union(*(r.keys() for r in fixture_records.get(stream, [])))
        assert occasional - known, stream


def test_ids_are_sequential_from_realistic_bases(small):
    assert min(ids(small, "people")) >= 100_000_000 and min(ids(small, "emails")) >= 8_000_000
    emails = sorted(records(small, "emails"), key=lambda e: e["id"])
    created = [instant_us(e["created_at"]) for e in emails]
    assert created == sorted(created)  # ids follow creation, so Store.next_id continues them
    assert small.next_id("emails") == emails[-1]["id"] + 1


def test_email_subject_is_deterministic_and_not_stored(small):
    assert email_subject(8_000_123) == email_subject(8_000_123)
    assert len({email_subject(i) for i in range(8_000_000, 8_000_200)}) > 20
    assert all("subject" not in e for e in records(small, "emails"))


# -- time passes ------------------------------------------------------------------


def live(people: int = 200) -> tuple[Store, Activity, list[Change]]:
    store, config = build(people=people, days=30)
    seen: list[Change] = []
    store.listeners.append(seen.append)
    return store, Activity(store, config), seen


def test_an_hour_of_activity_makes_every_main_kind_of_change():
    store, activity, seen = live()
    now = ANCHOR + timedelta(hours=2)
    result = activity.advance(3600, now=now)
    assert result["created"]["emails"] > 0 and result["updated"]["emails"] > 0
    assert result["created"]["calls"] > 0 and result["updated"]["people"] > 0
    assert result["deleted"]["people"] >= 1
    assert sum(n for counts in result.values() for n in counts.values()) == len(seen)
    assert {c.kind for c in seen} >= {"created", "updated", "deleted"}
    assert any(c.stream == "tasks" and c.kind == "completed" for c in seen)
    stamps = [instant_us(c.record["updated_at"]) for c in seen if c.kind != "deleted" and "updated_at" in c.record]
    assert stamps == sorted(stamps)
    assert instant_us((now - timedelta(hours=1)).isoformat()) < stamps[0] and stamps[-1] <= instant_us(now.isoformat())
    for change in seen:
        if change.kind != "deleted":
            assert store.get(change.stream, change.record["id"]) is not None


def test_advances_are_monotonic_and_never_in_the_future():
    _, activity, seen = live()
    first_now = ANCHOR + timedelta(hours=1)
    activity.advance(3600, now=first_now)
    count = len(seen)
    activity.advance(3600, now=first_now + timedelta(minutes=10))
    later = [instant_us(c.record["updated_at"]) for c in seen[count:] if c.kind != "deleted"]
    assert later and min(later) > instant_us(first_now.isoformat())
    assert max(later) <= instant_us((first_now + timedelta(minutes=10)).isoformat())
    assert activity.advance(0, now=first_now) == {"created": {}, "updated": {}, "deleted": {}}


def test_activity_is_proportional_to_the_team_and_deterministic():
    day = ANCHOR + timedelta(days=1)
    small_team = live(200)[1].advance(86_400, now=day)
    again = live(200)[1].advance(86_400, now=day)
    big_team = live(400)[1].advance(86_400, now=day)
    assert small_team == again
    ratio = big_team["created"]["emails"] / small_team["created"]["emails"]
    assert 1.5 <= ratio <= 2.5


def test_a_deleted_person_leaves_memberships_marked_person_deleted():
    store, activity, seen = live()
    activity.advance(3600, now=ANCHOR + timedelta(hours=1))
    deleted = {c.record["id"] for c in seen if c.stream == "people" and c.kind == "deleted"}
    assert deleted and all(store.get("people", p) is None for p in deleted)
    for membership in records(store, "cadence_memberships"):
        if membership["person"]["id"] in deleted:
            assert membership["person_deleted"] and not membership["currently_on_cadence"]


def test_re_adding_a_person_to_a_cadence_reuses_the_membership():
    store, activity, seen = live()
    membership = records(store, "cadence_memberships")[0]
    activity.people = _Pool([membership["person"]["id"]])
    activity.cadence_ids = [membership["cadence"]["id"]]
    before = len(store.table("cadence_memberships"))
    activity.add_to_cadence(instant_us(ANCHOR.isoformat()) + 1)
    assert len(store.table("cadence_memberships")) == before
    change = next(c for c in seen if c.stream == "cadence_memberships")
    assert change.kind == "updated" and change.record["id"] == membership["id"]
    assert change.record["currently_on_cadence"] and change.record["current_state"] == "active"


def test_make_ties_gives_records_one_updated_at():
    store, _ = build(people=100, days=7)
    updated_at, tied = make_ties(store, "people", 40, "2024-06-03T14:00:00.123456-04:00")
    assert updated_at == "2024-06-03T14:00:00.123456-04:00" and len(tied) == 40
    assert all(store.get("people", i)["updated_at"] == updated_at for i in tied)
    now_stamp, tied = make_ties(store, "emails", 5)
    assert TIMESTAMP.match(now_stamp) and len(set(tied)) == 5
