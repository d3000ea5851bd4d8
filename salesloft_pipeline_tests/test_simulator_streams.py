"""The streams docs/simulator.md added with revenue and Conversation Intelligence: their shapes,
the conversations:read scope, calendar windows, sort keys, the unpaged webhook subscriptions,
live changes, and that adding them changed no record of the streams served before.

The generic checks every stream gets (served with and without .json, page walks, single records,
updated_at filters exact or ignored) run over these streams too, in test_simulator_api.py.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest

from salesloft_pipeline_tests.conftest import (
    TIMESTAMP_RE,
    advance,
    api_client,
    instant,
    iso,
    poll,
    reset_stats,
    start_simulator,
    stats,
    truth,
    truth_map,
    unwrap,
    walk,
)

SCOPE = "conversations:read"
SIM_OPTIONS = {"seed": 5, "people": 60, "days": 5, "privileged_scopes": frozenset({SCOPE})}
API = "https://api.salesloft.com/v2"

# The new rows of the streams table of docs/simulator.md: name -> (path under /v2, updated_at filter).
NEW_STREAMS: dict[str, tuple[str, bool]] = {
    "opportunities": ("opportunities", True),
    "opportunity_people": ("opportunity_people", True),
    "opportunity_stages": ("opportunity_stages", True),
    "activity_histories": ("activity_histories", True),
    "calendar_events": ("calendar/events", False),
    "conversations": ("conversations", True),
    "transcriptions": ("transcriptions", True),
    "tags": ("tags", False),
    "saved_list_views": ("saved_list_views", False),
    "custom_roles": ("custom_roles", False),
    "account_types": ("account_types", False),
    "account_team_member_roles": ("account_team_member_roles", False),
    "crm_activity_fields": ("crm_activity_fields", False),
    "crm_account_team_members": ("crm_account_team_members", False),
    "call_instructions": ("action_details/call_instructions", False),
    "pending_emails": ("pending_emails", False),
    "audit_reports": ("audit_reports", False),
    "external_configurations": ("external/configurations", False),
    "external_mappings": ("external/mappings", False),
    "webhook_subscriptions": ("webhook_subscriptions", False),
    "signals_registrations": ("integrations/signals/registrations", False),
    "registrations_plays": ("integrations/signals/registrations/plays", False),
}
# Streams that need the scope, and the field that identifies a record where it is not `id`.
SCOPED = ("conversations", "transcriptions")
KEYS = {"account_types": "name"}
# One unpaged list ({"data": [...]}, no paging metadata).
UNPAGED = ("webhook_subscriptions",)
ANCHOR = datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)


def key_of(stream: str, record: dict[str, Any]) -> Any:
    return record[KEYS.get(stream, "id")]


def records(store: Any, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(blob) for blob in store.table(stream).blobs.values()]


def full(inspect: httpx.Client, stream: str) -> list[dict[str, Any]]:
    return truth(inspect, stream, full=True)["records"]


def is_ref(value: Any, path: str, id_type: type = int) -> bool:
    return (
        isinstance(value, dict) and set(value) == {"id", "_href"} and isinstance(value["id"], id_type)
        and value["_href"] == f"{API}/{path}/{value['id']}"
    )


# -- a small team has them all ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 7])
def test_a_60_person_3_day_team_has_records_of_every_new_stream(seed):
    from salesloft_pipeline.simulator.config import SimulatorConfig
    from salesloft_pipeline.simulator.generator import populate
    from salesloft_pipeline.simulator.store import Store

    store = Store()
    populate(store, SimulatorConfig(seed=seed, people=60, days=3, anchor=ANCHOR))
    empty = [stream for stream in NEW_STREAMS if not len(store.table(stream))]
    assert not empty, f"no records of {empty}"
    assert len(store.table("opportunities")) >= 4
    per_opportunity = Counter(r["opportunity_id"] for r in records(store, "opportunity_people"))
    assert set(per_opportunity) == set(store.table("opportunities").blobs)
    assert set(per_opportunity.values()) <= {1, 2, 3}


def test_the_first_families_make_the_same_records_whatever_comes_after_them():
    """The later families (revenue, conversations, timeline, lists, admin) draw from their own random
    streams and write only their own streams: the first families' records and random stream are those
    of a history without them (custom_fields gains the two opportunity fields, nothing else changes)."""
    import salesloft_pipeline.simulator.generator as gen
    from salesloft_pipeline.simulator.config import SimulatorConfig
    from salesloft_pipeline.simulator.store import Store

    config = SimulatorConfig(seed=4, people=120, days=10, anchor=ANCHOR)
    whole = gen._History(Store(), config)
    whole.run()
    first = gen._History(Store(), config)
    for family in ("lookups", "users_and_groups", "accounts_and_people", "cadences_and_steps", "templates",
                   "memberships", "activity", "finish_memberships", "finish_people_and_accounts", "finish_cadences"):
        getattr(first, family)()
    assert whole.rng.getstate() == first.rng.getstate()
    for stream, table in first.store.tables.items():
        if stream not in NEW_STREAMS:
            assert whole.store.table(stream).blobs == table.blobs, stream
    fields = {r["name"]: r for r in records(whole.store, "custom_fields")}
    assert fields["Deal Source"]["field_type"] == "opportunity" and fields["Contract Start"]["value_type"] == "date"


# -- shapes --------------------------------------------------------------------------------
def test_opportunities_have_salesloft_shapes_and_point_at_the_team(inspect):
    opportunities = full(inspect, "opportunities")
    users, accounts = set(truth_map(inspect, "users")), set(truth_map(inspect, "accounts"))
    people = {p["id"]: p for p in full(inspect, "people")}
    stages = [s["name"] for s in full(inspect, "opportunity_stages") if s["active"]]
    assert len(opportunities) >= 4
    for o in opportunities:
        assert isinstance(o["id"], int)
        assert re.fullmatch(r"\d+\.\d\d", o["amount"]) and 1000 <= float(o["amount"]) <= 250_000, o["amount"]
        assert isinstance(o["probability"], str) and o["probability"].isdigit()
        assert o["stage_name"] in stages and o["currency_iso_code"] == "USD"
        assert o["is_closed"] == (o["stage_name"] in ("Closed Won", "Closed Lost"))
        assert o["is_won"] == (o["stage_name"] == "Closed Won")
        for field in ("owner", "creator"):
            assert is_ref(o[field], "users") and o[field]["id"] in users
        assert is_ref(o["account"], "accounts") and o["account"]["id"] in accounts
        assert o["most_recent_cadence"] is None or is_ref(o["most_recent_cadence"], "cadences")
        assert o["most_recent_step"] is None or is_ref(o["most_recent_step"], "steps")
        person = people[o["opportunity_window_person_id"]]
        assert person["account"]["id"] == o["account"]["id"], "the window person is one of the account's"
        assert isinstance(o["custom_fields"], dict) and set(o["custom_fields"]) <= {
            "Opportunity Stage", "Deal Source", "Contract Start"}
        assert isinstance(o["tags"], list) and o["crm_id"].startswith("006") and len(o["crm_id"]) == 18
        for field in ("created_at", "updated_at", "close_date", "created_date"):
            assert TIMESTAMP_RE.match(o[field]), (field, o[field])
        assert instant(o["updated_at"]) >= instant(o["created_at"])
    assert {o["is_closed"] for o in opportunities} == {True, False}, "some closed, some open"
    assert any(o["custom_fields"] for o in opportunities)


def test_opportunity_people_are_plain_ints_of_people_on_their_accounts(inspect):
    opportunities = {o["id"]: o for o in full(inspect, "opportunities")}
    people = {p["id"]: p for p in full(inspect, "people")}
    rows = full(inspect, "opportunity_people")
    for row in rows:
        assert set(row) == {"id", "created_at", "updated_at", "person_id", "opportunity_id",
                            "opportunity_crm_id", "person_crm_id"}
        assert all(isinstance(row[k], int) for k in ("id", "person_id", "opportunity_id"))
        opportunity = opportunities[row["opportunity_id"]]
        assert row["opportunity_crm_id"] == opportunity["crm_id"]
        assert people[row["person_id"]]["account"]["id"] == opportunity["account"]["id"]
    assert {r["opportunity_id"] for r in rows} == set(opportunities)
    assert {o["opportunity_window_person_id"] for o in opportunities.values()} <= {r["person_id"] for r in rows}


def test_opportunity_stages_are_the_pipeline_in_order(inspect):
    stages = sorted(full(inspect, "opportunity_stages"), key=lambda s: s["order"])
    active = [s["name"] for s in stages if s["active"]]
    assert active == ["Qualification", "Discovery", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
    assert all(set(s) == {"id", "name", "order", "active", "created_at", "updated_at"} for s in stages)


def test_activity_histories_are_the_sent_emails_calls_and_person_notes(inspect):
    histories = full(inspect, "activity_histories")
    emails = {e["id"]: e for e in full(inspect, "emails")}
    calls = {c["id"]: c for c in full(inspect, "calls")}
    notes = {n["id"]: n for n in full(inspect, "notes")}
    guids = {u["guid"] for u in full(inspect, "users")}
    by_type = Counter(h["type"] for h in histories)
    sent = [e for e in emails.values() if e["sent_at"] is not None]
    assert by_type["sent_email"] == len(sent) and by_type["call"] == len(calls)
    assert by_type["note"] == sum(n["associated_type"] == "person" for n in notes.values())
    for h in histories:
        assert re.fullmatch(r"(sent_email|call|note)-\d+", h["id"]) and h["id"].startswith(h["type"] + "-")
        assert h["resource_type"] == "person" and isinstance(h["resource_id"], int)
        assert h["user_guid"] in guids and h["pinned_at"] is None and h["failed_dynamic_resources"] == []
        source_id = int(h["id"].rsplit("-", 1)[1])
        source = {"sent_email": emails, "call": calls, "note": notes}[h["type"]][source_id]
        assert h["static_data"] == {{"sent_email": "email_id", "call": "call_id", "note": "note_id"}[h["type"]]: source_id}
        assert h["updated_at"] == source["updated_at"]
        if h["type"] == "sent_email":
            assert h["occurred_at"] == source["sent_at"] and h["resource_id"] == source["recipient"]["id"]
            assert h["dynamic_data"]["counts"]["views"] == source["counts"]["views"]
            assert "subject" not in h["dynamic_data"], "the subject needs email_contents:read"


def test_calendar_events_are_the_meetings_in_the_bookers_calendars_and_internal_ones(inspect):
    meetings = {m["event_id"]: m for m in full(inspect, "meetings")}
    events = full(inspect, "calendar_events")
    assert set(meetings) <= {e["id"] for e in events}
    guids = {u["guid"] for u in full(inspect, "users")}
    internal = [e for e in events if e["id"] not in meetings]
    assert {e["user_guid"] for e in internal} == guids, "every rep has internal events"
    assert all(len(e["attendees"]) == 2 and e["status"] == "confirmed" for e in internal)
    for event in events:
        assert TIMESTAMP_RE.match(event["start_time"]) and instant(event["end_time"]) > instant(event["start_time"])
        meeting = meetings.get(event["id"])
        if meeting is None:
            continue
        assert isinstance(event["id"], str) and event["user_guid"] == meeting["booked_by_user"]["id"]
        assert instant(event["start_time"]) == instant(meeting["start_time"])
        assert instant(event["end_time"]) == instant(meeting["end_time"])
        assert event["recurring"] is False and isinstance(event["attendees"], list) and event["attendees"]
        assert event["status"] == ("cancelled" if meeting["canceled_at"] else "confirmed")


def test_conversations_and_transcriptions_have_string_ids_and_refs(inspect):
    conversations = full(inspect, "conversations")
    transcriptions = {t["id"]: t for t in full(inspect, "transcriptions")}
    cdrs = {str(c["id"]): c for c in full(inspect, "call_data_records")}
    calls = {c["id"]: c for c in full(inspect, "calls")}
    connected = [c for c in calls.values() if c["disposition"] == "Connected"]
    assert conversations and len(conversations) == len(transcriptions) <= len(connected)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    for c in conversations:
        assert uuid.fullmatch(c["id"]) and isinstance(c["duration"], int) and c["duration"] >= 30_000
        assert (c["language_code"], c["media_type"], c["platform"]) == ("en-US", "audio", "salesloft")
        assert is_ref(c["person"], "people", str)
        assert c["account"] is None or is_ref(c["account"], "accounts", str)
        assert is_ref(c["transcription"], "transcriptions", str)
        assert c["recording"]["_href"] == f"{API}/conversations/{c['id']}/recording"
        call = calls[cdrs[c["call_id"]]["call"]["id"]]
        assert call["disposition"] == "Connected" and c["person"]["id"] == str(call["called_person"]["id"])
        transcription = transcriptions[c["transcription"]["id"]]
        assert is_ref(transcription["conversation"], "conversations", str)
        assert transcription["conversation"]["id"] == c["id"] and transcription["language_code"] == "en-US"
        assert transcription["transcription_sentences"]["_href"].endswith(f"/transcriptions/{transcription['id']}/sentences")


def test_lists_have_their_salesloft_fields(inspect):
    assert all(set(r) == {"name"} for r in full(inspect, "account_types")), "account types have no id"
    assert {"Private", "Public"} <= {r["name"] for r in full(inspect, "account_types")}, "accounts' company_type"
    assert all(set(r) == {"id", "name"} and isinstance(r["id"], int) for r in full(inspect, "tags"))
    roles = full(inspect, "custom_roles")
    assert all(set(r) == {"id", "name"} and isinstance(r["id"], str) for r in roles)
    assert {u["role"]["id"] for u in full(inspect, "users")} <= {r["id"] for r in roles}
    for view in full(inspect, "saved_list_views"):
        assert view["view"] in ("people", "companies") and isinstance(view["view_params"], dict)
        assert "created_at" not in view and "updated_at" not in view
    phone_steps = {s["id"]: s for s in full(inspect, "steps") if s["type"] == "phone"}
    instructions = full(inspect, "call_instructions")
    assert {i["id"] for i in instructions} == set(phone_steps), "one per phone step, at the steps' details"
    assert all(phone_steps[i["id"]]["details"]["id"] == i["id"] for i in instructions)
    for pending in full(inspect, "pending_emails"):
        assert is_ref(pending["mime_email_payload"], "mime_email_payloads") and "@" in pending["mailbox"]
    crm_users = {c["crm_id"] for c in full(inspect, "crm_users")}
    assert all(m["user_crm_id"] in crm_users for m in full(inspect, "crm_account_team_members"))
    for report in full(inspect, "audit_reports"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", report["requested_on"]) and report["since"] <= report["until"]
        assert (report["download_url"] is not None) == (report["status"] == "completed")
    configurations = {c["external_type"] for c in full(inspect, "external_configurations")}
    opportunities = {o["id"]: o for o in full(inspect, "opportunities")}
    for mapping in full(inspect, "external_mappings"):
        assert mapping["external_type"] in configurations and isinstance(mapping["external_id"], str)
        if mapping["object_type"] == "opportunities":
            assert mapping["external_id"] == opportunities[mapping["object_id"]]["crm_id"]
    registrations = {r["id"]: r for r in full(inspect, "signals_registrations")}
    for r in registrations.values():
        assert is_ref(r["integration"], "integrations") and set(r["description"]) == {"en-us"}
    for play in full(inspect, "registrations_plays"):
        assert is_ref(play["signal_registration"], "integrations/signals/registrations")
        assert play["signal_registration"]["id"] in registrations and play["state"] in ("enabled", "draft")
    fields = full(inspect, "crm_activity_fields")
    assert all(isinstance(f["picklist_values"], dict) and f["source"] in ("email", "phone") for f in fields)


# -- the scope -------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", SCOPED)
def test_a_key_without_conversations_read_is_refused_403_naming_the_scope(stream):
    path, _ = NEW_STREAMS[stream]
    with start_simulator(seed=5, people=60, days=5, budget=0) as plain, api_client(plain) as c, \
            httpx.Client(base_url=plain.url, timeout=60) as insp:
        some = truth(insp, stream)["records"][0]["id"]
        reset_stats(insp)
        for url in (f"/{path}", f"/{path}.json", f"/{path}/{some}", f"/{path}/{some}.json"):
            refused = c.get(url, params={"per_page": 10})
            assert refused.status_code == 403, (url, refused.status_code, refused.text)
            assert set(refused.json()) == {"error"} and "scope" in refused.json()["error"]
            assert refused.headers["x-ratelimit-endpoint-cost"] == "1"
        assert stats(insp)["cost"] == 4, "a refused request costs what it would have"
        assert c.get("/people").status_code == 200, "other streams need no scope"


@pytest.mark.parametrize("stream", SCOPED)
def test_with_the_scope_they_are_served(client, inspect, stream):
    path, _ = NEW_STREAMS[stream]
    served = walk(client, path, per_page=2)
    assert {r["id"] for r in served} == {r["id"] for r in truth(inspect, stream)["records"]}


# -- lists without an id, without paging, with their own sorts and windows ------------------------------------
def test_account_types_have_no_single_record_address(client):
    assert client.get("/account_types/Private").status_code == 404
    names = [r["name"] for r in client.get("/account_types").json()["data"]]
    assert names == sorted(names), "listed by name"


def test_webhook_subscriptions_are_one_unpaged_list_of_the_teams_and_truth_follows_the_api(client, inspect):
    body = client.get("/webhook_subscriptions", params={"page": 300, "per_page": 1})
    assert body.headers["x-ratelimit-endpoint-cost"] == "1", "no paging: page depth costs nothing"
    listed = body.json()
    assert set(listed) == {"data"}, "no metadata: SalesLoft's list has no paging"
    team = listed["data"]
    assert len(team) >= 3 and [s["id"] for s in team] == sorted(s["id"] for s in team)
    for s in team:
        assert set(s) == {"id", "user_guid", "tenant_id", "event_type", "enabled", "callback_url", "callback_token"}
    assert {s["id"] for s in team} == {r["id"] for r in truth(inspect, "webhook_subscriptions")["records"]}
    enabled = client.get("/webhook_subscriptions", params={"enabled": "false"}).json()["data"]
    assert enabled and all(s["enabled"] is False for s in enabled)
    # Made, changed and deleted through the API: the truth follows.
    made = unwrap(client.post("/webhook_subscriptions", json={
        "callback_url": "http://127.0.0.1:9/hook", "callback_token": "t", "event_type": "note_created"}).json())
    me = client.get("/me").json()["data"]
    assert (made["user_guid"], made["tenant_id"]) == (me["guid"], team[0]["tenant_id"])
    assert made["id"] > max(s["id"] for s in team)
    client.put(f"/webhook_subscriptions/{made['id']}", json={"enabled": False})
    assert truth_map(inspect, "webhook_subscriptions", full=True)[made["id"]]["enabled"] is False
    assert client.delete(f"/webhook_subscriptions/{made['id']}").status_code == 204
    gone = truth(inspect, "webhook_subscriptions")
    assert made["id"] in gone["deleted"] and made["id"] not in {r["id"] for r in gone["records"]}


def test_the_teams_own_subscriptions_deliver_nothing(inspect):
    team = {r["id"] for r in truth(inspect, "webhook_subscriptions")["records"]}
    advance(inspect, 3600)
    deliveries = inspect.get("/__sim/webhooks").json()["deliveries"]
    assert not [d for d in deliveries if d["subscription_id"] in team]


def test_calendar_events_take_a_start_and_end_time_window_and_sort_by_start_time(client, inspect):
    events = full(inspect, "calendar_events")
    assert len(events) >= 2, "too few meetings to check windows"
    starts = sorted(instant(e["start_time"]) for e in events)
    lower, upper = starts[0] + timedelta(minutes=1), starts[-1]
    expected = {e["id"] for e in events if instant(e["end_time"]) >= lower and instant(e["start_time"]) < upper}
    got = walk(client, "calendar/events", per_page=100, start_time=iso(lower, -5), end_time=iso(upper, 2))
    assert {e["id"] for e in got} == expected
    default = client.get("/calendar/events", params={"per_page": 100}).json()
    assert default["metadata"]["sorting"] == {"sort_by": "start_time", "sort_direction": "DESC"}
    assert [instant(e["start_time"]) for e in default["data"]] == sorted(starts, reverse=True)
    bad = client.get("/calendar/events", params={"start_time": "soon"})
    assert bad.status_code == 422 and "start_time" in bad.json()["errors"]


@pytest.mark.parametrize("path, sort_by, field", [
    ("tags", "name", "name"), ("crm_activity_fields", "title", "title"), ("activity_histories", "occurred_at", None),
    ("conversations", "duration", "duration"),
])
def test_streams_sort_by_their_own_keys(client, path, sort_by, field):
    records = walk(client, path, per_page=100, sort_by=sort_by, sort_direction="ASC")
    values = [instant(r[sort_by]) if field is None else r[field] for r in records]
    assert values == sorted(values)
    assert client.get("/people", params={"sort_by": sort_by}).status_code == 422, "not a sort key of people"


# -- time passes -------------------------------------------------------------------------------------
def test_live_opportunities_open_move_on_and_change_amount(inspect):
    before = {o["id"]: o for o in full(inspect, "opportunities")}
    people_before = {r["id"] for r in truth(inspect, "opportunity_people")["records"]}
    answer = advance(inspect, 2 * 3600)
    after = {o["id"]: o for o in full(inspect, "opportunities")}
    new = set(after) - set(before)
    assert len(new) == answer["created"]["opportunities"] >= 1
    rows = {r["id"]: r for r in full(inspect, "opportunity_people")}
    for opportunity_id in new:
        o = after[opportunity_id]
        assert o["stage_name"] == "Qualification" and not o["is_closed"]
        assert any(r["opportunity_id"] == opportunity_id and r["person_id"] == o["opportunity_window_person_id"]
                   for i, r in rows.items() if i not in people_before)
    changed = [i for i in before if after[i] != before[i]]
    assert changed, "no stage change or amount edit"
    for i in changed:
        assert instant(after[i]["updated_at"]) > instant(before[i]["updated_at"])
        assert after[i]["stage_name"] != before[i]["stage_name"] or after[i]["amount"] != before[i]["amount"]


def test_live_conversations_follow_connected_calls_and_are_announced(client, inspect, receiver):
    response = client.post("/webhook_subscriptions", json={
        "callback_url": receiver.url, "callback_token": "ci", "event_type": "conversation_created"})
    subscription = unwrap(response.json())["id"]
    try:
        before = set(truth_map(inspect, "conversations"))
        stamp = max(instant(r["updated_at"]) for r in truth(inspect, "conversations")["records"])
        answer = advance(inspect, 3600)
        after = {c["id"]: c for c in full(inspect, "conversations")}
        new = set(after) - before
        assert len(new) == answer["created"]["conversations"] == answer["created"]["transcriptions"] >= 1
        transcribed = {t["conversation"]["id"] for t in full(inspect, "transcriptions")}
        assert new <= transcribed
        incremental = walk(client, "conversations", per_page=100, **{"updated_at[gt]": iso(stamp)})
        assert new <= {c["id"] for c in incremental}
        announced = poll(lambda: {b["id"] for b in receiver.bodies("conversation_created", ok_only=True)} >= new,
                         what="conversation_created deliveries")
        assert announced
    finally:
        client.delete(f"/webhook_subscriptions/{subscription}")


def test_live_emails_calls_and_meetings_reach_the_timelines_and_calendars(inspect):
    advance(inspect, 3600)
    histories = set(truth_map(inspect, "activity_histories"))
    sent = {f"sent_email-{e['id']}" for e in full(inspect, "emails") if e["sent_at"]}
    assert sent <= histories and {f"call-{i}" for i in truth_map(inspect, "calls")} <= histories
    assert {m["event_id"] for m in full(inspect, "meetings")} <= set(truth_map(inspect, "calendar_events"))


def test_the_first_live_changes_happen_as_without_the_later_ones(monkeypatch):
    """The later changes draw from their own random streams: the first ones' changes are the same
    whether the later ones happen or not."""
    from salesloft_pipeline.simulator import activity as live
    from salesloft_pipeline.simulator.config import SimulatorConfig
    from salesloft_pipeline.simulator.generator import populate
    from salesloft_pipeline.simulator.store import Store

    first_streams = {
        "people", "accounts", "cadence_memberships", "emails", "calls", "call_data_records", "meetings", "notes",
        "successes", "tasks",
    }

    def changes(later: bool) -> list[tuple[str, str, bytes]]:
        config = SimulatorConfig(seed=9, people=120, days=5, anchor=ANCHOR)
        store = Store()
        populate(store, config)
        seen: list[tuple[str, str, bytes]] = []
        store.listeners.append(
            lambda c: seen.append((c.stream, c.kind, orjson.dumps(c.record))) if c.stream in first_streams else None
        )
        with monkeypatch.context() as patch:
            if not later:
                patch.setattr(live, "LATER_CHANGES", {})
                patch.setattr(live, "DERIVED", {})
            activity = live.Activity(store, config)
            for hours in (1, 5, 30):
                activity.advance(3600 * hours / 2, now=ANCHOR + timedelta(hours=hours))
        return seen

    assert changes(later=True) == changes(later=False)
