"""The simulator's webhooks (docs/simulator.md, "Webhooks"): the subscriptions
API, signed deliveries of the matching events, retries, drops and duplicates,
received by a real HTTP server on loopback."""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from salesloft_pipeline_tests.conftest import (
    Receiver,
    advance,
    api_client,
    instant,
    poll,
    signature,
    start_simulator,
    stats,
    truth,
    unwrap,
)

RETRY = 0.2
SIM_OPTIONS = {"people": 60, "days": 5, "webhook_retry_seconds": RETRY, "webhook_duplicate_rate": 0.0}
SMALL = {"seed": 4, "people": 25, "days": 3, "budget": 0, "webhook_retry_seconds": RETRY}


def subscribe(client: httpx.Client, url: str, token: str, event: str) -> dict[str, Any]:
    response = client.post(
        "/webhook_subscriptions", json={"callback_url": url, "callback_token": token, "event_type": event}
    )
    assert response.status_code in (200, 201), response.text
    record = unwrap(response.json())
    assert record["callback_url"] == url
    assert record["callback_token"] == token
    assert record["event_type"] == event
    assert record["enabled"] is True
    return record


def subscriptions(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/webhook_subscriptions")
    assert response.status_code == 200, response.text
    records = unwrap(response.json())
    assert isinstance(records, list), response.text
    return records


def sim_webhooks(inspect: httpx.Client) -> dict[str, Any]:
    response = inspect.get("/__sim/webhooks")
    assert response.status_code == 200, response.text
    return response.json()


def settle(inspect: httpx.Client, receivers: list[Receiver], timeout: float = 30.0) -> None:
    """Waits until nothing is pending and the receivers stopped getting requests."""
    last = [-1]
    stable_since = [time.monotonic()]

    def quiet():
        count = sum(len(r.snapshot()) for r in receivers)
        if count != last[0]:
            last[0] = count
            stable_since[0] = time.monotonic()
            return False
        return sim_webhooks(inspect)["pending"] == 0 and time.monotonic() - stable_since[0] > 5 * RETRY

    poll(quiet, timeout=timeout, interval=0.1, what="webhook deliveries to settle")


def advance_until(inspect, receivers, done, rounds: int = 10, seconds: float = 3 * 3600) -> list[dict]:
    answers = []
    for _ in range(rounds):
        answers.append(advance(inspect, seconds))
        settle(inspect, receivers)
        if done():
            break
    return answers


def check_delivery(request: dict[str, Any], token: str, events: set[str]) -> dict[str, Any]:
    headers = request["headers"]
    assert headers.get("x-salesloft-event") in events, headers
    sig = headers.get("x-salesloft-signature", "")
    assert re.fullmatch(r"[0-9a-f]{40}", sig), f"signature is not lowercase hex SHA1: {sig!r}"
    assert sig == signature(token, request["raw"]), "signature is not HMAC-SHA1(callback_token, raw body)"
    body = json.loads(request["raw"])
    assert isinstance(body, dict) and "id" in body, body
    assert "data" not in body and "metadata" not in body, "delivery must be the bare resource JSON"
    return body


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_subscriptions_left(client, inspect):
    yield
    for record in subscriptions(client):
        client.delete(f"/webhook_subscriptions/{record['id']}")
    poll(lambda: sim_webhooks(inspect)["pending"] == 0, timeout=30, what="pending deliveries to end")


# -- the subscriptions API ---------------------------------------------------------------
def test_subscription_crud(client, receiver):
    response = client.post(
        "/webhook_subscriptions",
        json={"callback_url": receiver.url, "callback_token": "tok-0", "event_type": "note_created"},
    )
    assert response.headers["x-ratelimit-endpoint-cost"] == "1"
    put = client.put(f"/webhook_subscriptions/{unwrap(response.json())['id']}", json={"enabled": False})
    assert put.headers["x-ratelimit-endpoint-cost"] == "1"
    created = subscribe(client, receiver.url, "tok-1", "person_updated")
    sub_id = created["id"]
    assert set(created) >= {"id", "callback_url", "callback_token", "event_type", "enabled"}
    assert sub_id in [s["id"] for s in subscriptions(client)]
    for suffix in ("", ".json"):
        one = client.get(f"/webhook_subscriptions/{sub_id}{suffix}")
        assert one.status_code == 200, one.text
        assert unwrap(one.json())["id"] == sub_id
        assert one.headers["x-ratelimit-endpoint-cost"] == "1"
    listed = client.get("/webhook_subscriptions.json")
    assert listed.status_code == 200 and sub_id in [s["id"] for s in unwrap(listed.json())]
    updated = client.put(f"/webhook_subscriptions/{sub_id}", json={"enabled": False})
    assert updated.status_code == 200, updated.text
    assert unwrap(updated.json())["enabled"] is False
    assert unwrap(client.get(f"/webhook_subscriptions/{sub_id}").json())["enabled"] is False
    assert client.put(f"/webhook_subscriptions/{sub_id}", json={"enabled": True}).status_code == 200
    assert unwrap(client.get(f"/webhook_subscriptions/{sub_id}").json())["enabled"] is True
    deleted = client.delete(f"/webhook_subscriptions/{sub_id}")
    assert deleted.status_code in (200, 204), deleted.text
    assert deleted.headers["x-ratelimit-endpoint-cost"] == "1"
    gone = client.get(f"/webhook_subscriptions/{sub_id}")
    assert gone.status_code == 404
    assert gone.json() == {"error": "Not Found"}
    assert sub_id not in [s["id"] for s in subscriptions(client)]


def test_subscriptions_need_the_token(sim, receiver):
    with httpx.Client(base_url=sim.base_url, timeout=30) as anonymous:
        assert anonymous.get("/webhook_subscriptions").status_code == 401
        response = anonymous.post(
            "/webhook_subscriptions",
            json={"callback_url": receiver.url, "callback_token": "t", "event_type": "person_updated"},
        )
        assert response.status_code == 401
        assert set(response.json()) == {"error"}


def test_subscriptions_appear_in_sim_webhooks(client, inspect, receiver):
    created = subscribe(client, receiver.url, "tok-2", "call_created")
    listed = sim_webhooks(inspect)["subscriptions"]
    assert created["id"] in [s["id"] for s in listed]


# -- deliveries -----------------------------------------------------------------------------
def test_deliveries_are_signed_bare_records_of_the_subscribed_events(client, inspect, receiver):
    token = "s3cret-token"
    events = {"person_updated", "email_updated", "call_created"}
    for event in events:
        subscribe(client, receiver.url, token, event)
    people_before = {r["id"]: r["updated_at"] for r in truth(inspect, "people")["records"]}
    emails_before = {r["id"] for r in truth(inspect, "emails")["records"]} | set(truth(inspect, "emails")["deleted"])

    def got_all_kinds():
        seen = {r["headers"].get("x-salesloft-event") for r in receiver.snapshot()}
        return {"person_updated", "email_updated"} <= seen

    answers = advance_until(inspect, [receiver], got_all_kinds)
    assert got_all_kinds(), f"missing events after {len(answers)} advances: {answers}"
    requests = receiver.snapshot()
    by_event: dict[str, list[dict]] = defaultdict(list)
    for request in requests:
        assert request["path"] == "/hook"
        body = check_delivery(request, token, events)
        by_event[request["headers"]["x-salesloft-event"]].append(body)
    # Every person changed since subscribing was announced with its current version.
    people_now = truth(inspect, "people", full=True)
    current = {r["id"]: r for r in people_now["records"]}
    changed = {i for i, r in current.items() if i in people_before and r["updated_at"] != people_before[i]}
    assert changed
    delivered = defaultdict(list)
    for body in by_event["person_updated"]:
        delivered[body["id"]].append(body)
        assert body["id"] in people_before, "person_updated for a person that never existed"
    for person_id in changed:
        assert person_id in delivered, f"person {person_id} changed but no person_updated was delivered"
        latest = max(delivered[person_id], key=lambda b: instant(b["updated_at"]))
        assert latest == current[person_id], "the last delivery differs from the record"
    # New emails are announced by email_updated (there is no email_created).
    emails_now = {r["id"] for r in truth(inspect, "emails")["records"]}
    new_emails = emails_now - emails_before
    email_ids = {b["id"] for b in by_event["email_updated"]}
    assert new_emails, "no new emails were sent"
    assert new_emails <= email_ids, f"{len(new_emails - email_ids)} new emails were not announced"


def test_deleted_records_are_announced_with_deleted_events(client, inspect, receiver):
    token = "del-token"
    events = {"person_deleted", "note_deleted", "task_deleted", "account_deleted"}
    for event in events:
        subscribe(client, receiver.url, token, event)
    streams = {"person_deleted": "people", "note_deleted": "notes", "task_deleted": "tasks",
               "account_deleted": "accounts"}
    before = {s: set(truth(inspect, s)["deleted"]) for s in streams.values()}
    answers = advance_until(inspect, [receiver], lambda: bool(receiver.snapshot()), rounds=12, seconds=12 * 3600)
    assert receiver.snapshot(), f"no *_deleted delivery after {len(answers)} advances: {answers}"
    delivered: dict[str, set] = defaultdict(set)
    for request in receiver.snapshot():
        body = check_delivery(request, token, events)
        delivered[request["headers"]["x-salesloft-event"]].add(body["id"])
    for event, stream in streams.items():
        newly = set(truth(inspect, stream)["deleted"]) - before[stream]
        assert delivered[event] == newly, (event, delivered[event], newly)


def test_disabled_and_deleted_subscriptions_get_nothing(client, inspect, make_receiver):
    live, disabled, removed = make_receiver(), make_receiver(), make_receiver()
    subscribe(client, live.url, "a", "person_updated")
    off = subscribe(client, disabled.url, "b", "person_updated")
    gone = subscribe(client, removed.url, "c", "person_updated")
    assert client.put(f"/webhook_subscriptions/{off['id']}", json={"enabled": False}).status_code == 200
    assert client.delete(f"/webhook_subscriptions/{gone['id']}").status_code in (200, 204)
    advance_until(inspect, [live, disabled, removed], lambda: bool(live.snapshot()))
    assert live.snapshot(), "the enabled subscription got nothing"
    assert disabled.snapshot() == []
    assert removed.snapshot() == []


def test_each_subscription_signs_with_its_own_token(client, inspect, make_receiver):
    first, second = make_receiver(), make_receiver()
    subscribe(client, first.url, "token-one", "person_updated")
    subscribe(client, second.url, "token-two", "person_updated")
    advance_until(inspect, [first, second], lambda: bool(first.snapshot() and second.snapshot()))
    assert first.snapshot() and second.snapshot()
    for request in first.snapshot():
        check_delivery(request, "token-one", {"person_updated"})
    for request in second.snapshot():
        check_delivery(request, "token-two", {"person_updated"})
    assert sorted(r["raw"] for r in first.snapshot()) == sorted(r["raw"] for r in second.snapshot())


def test_only_changes_after_subscribing_are_delivered(client, inspect, receiver):
    advance(inspect, 3600)
    time.sleep(5 * RETRY)
    subscribe(client, receiver.url, "late", "person_updated")
    time.sleep(10 * RETRY)
    assert receiver.snapshot() == []


# The webhook column of the streams table: stream -> {change kind: event types}.
EVENTS = {
    "users": {"created": {"user_created"}, "updated": {"user_updated"}},
    "people": {"created": {"person_created"}, "updated": {"person_updated"}, "deleted": {"person_deleted"}},
    "accounts": {"created": {"account_created"}, "updated": {"account_updated"}, "deleted": {"account_deleted"}},
    "cadences": {"created": {"cadence_created"}, "updated": {"cadence_updated"}, "deleted": {"cadence_deleted"}},
    "cadence_memberships": {"created": {"cadence_membership_created"}, "updated": {"cadence_membership_updated"}},
    "steps": {"created": {"step_created"}, "updated": {"step_updated"}, "deleted": {"step_deleted"}},
    "emails": {"created": {"email_updated"}, "updated": {"email_updated"}},
    "calls": {"created": {"call_created"}, "updated": {"call_updated"}},
    "meetings": {"created": {"meeting_booked"}, "updated": {"meeting_updated"}},
    "notes": {"created": {"note_created"}, "updated": {"note_updated"}, "deleted": {"note_deleted"}},
    "successes": {"created": {"success_created"}},
    "tasks": {"created": {"task_created"}, "updated": {"task_updated", "task_completed"},
              "deleted": {"task_deleted"}},
    "call_data_records": {"created": {"call_data_record_created"}, "updated": {"call_data_record_updated"}},
}


def test_every_change_is_delivered_as_its_matching_event(client, inspect, receiver):
    token = "all-events"
    all_events = {e for kinds in EVENTS.values() for events in kinds.values() for e in events}
    for event in sorted(all_events):
        subscribe(client, receiver.url, token, event)
    before = {s: truth(inspect, s) for s in EVENTS}
    answer = advance(inspect, 6 * 3600)
    settle(inspect, [receiver])
    after = {s: truth(inspect, s) for s in EVENTS}
    got: dict[str, set] = defaultdict(set)  # event -> ids
    owner = {e: s for s, kinds in EVENTS.items() for events in kinds.values() for e in events}
    for request in receiver.snapshot():
        body = check_delivery(request, token, all_events)
        event = request["headers"]["x-salesloft-event"]
        stream = owner[event]
        known = {r["id"] for r in after[stream]["records"]} | set(after[stream]["deleted"])
        assert body["id"] in known, f"{event} delivered a body whose id is no {stream} record"
        got[event].add(body["id"])
    missing = []
    for stream, kinds in EVENTS.items():
        old = {r["id"]: r["updated_at"] for r in before[stream]["records"]}
        new = {r["id"]: r["updated_at"] for r in after[stream]["records"]}
        old_gone, new_gone = set(before[stream]["deleted"]), set(after[stream]["deleted"])
        expected = {
            "created": (set(new) | new_gone) - set(old) - old_gone,
            "updated": {i for i in set(old) & set(new) if old[i] != new[i]},
            "deleted": new_gone - old_gone,
        }
        for kind, ids in expected.items():
            if kind not in kinds:
                continue
            announced = set().union(*(got[e] for e in kinds[kind]))
            if ids - announced:
                missing.append((stream, kind, sorted(ids - announced)[:5], len(ids - announced)))
    assert not missing, f"changes without their event (stream, kind, ids, count): {missing}; advance: {answer}"
    assert sum(len(v) for v in got.values()) > 0


# -- retries, drops, duplicates -----------------------------------------------------------------
def _distinct(receiver: Receiver) -> dict[tuple[str, bytes], list[dict]]:
    groups: dict[tuple[str, bytes], list[dict]] = defaultdict(list)
    for request in receiver.snapshot():
        groups[(request["headers"].get("x-salesloft-event", ""), request["raw"])].append(request)
    return groups


def test_failed_deliveries_are_retried_until_they_succeed():
    with start_simulator(**SMALL, webhook_duplicate_rate=0.0) as other, api_client(other) as c, \
            httpx.Client(base_url=other.url, timeout=60) as insp, Receiver() as hook:
        hook.fail_each = 2
        subscribe(c, hook.url, "retry-token", "person_updated")
        advance_until(insp, [hook], lambda: bool(hook.snapshot()))
        groups = _distinct(hook)
        assert groups, "nothing delivered"
        for (event, _), attempts in groups.items():
            assert [a["status"] for a in attempts] == [500, 500, 200], "expected 2 failures then success"
            times = [a["time"] for a in attempts]
            assert all(b - a >= RETRY * 0.75 for a, b in zip(times, times[1:])), (
                f"retries closer than --webhook-retry-seconds={RETRY}: {times}"
            )
            check_delivery(attempts[-1], "retry-token", {"person_updated"})
        deliveries = [d for d in sim_webhooks(insp)["deliveries"] if d["event_type"] == "person_updated"]
        assert len(deliveries) == len(groups)
        assert all(d["delivered"] is True and d["attempts"] == 3 for d in deliveries), deliveries
        s = stats(insp)["webhook_deliveries"]
        assert s["dropped"] == 0 and s["duplicates"] == 0
        assert s["sent"] >= len(groups)


def test_a_delivery_failing_four_times_is_dropped():
    with start_simulator(**SMALL, webhook_duplicate_rate=0.0) as other, api_client(other) as c, \
            httpx.Client(base_url=other.url, timeout=60) as insp, Receiver() as hook:
        hook.fail_each = 1000
        hook.fail_status = 503
        subscribe(c, hook.url, "drop-token", "person_updated")
        advance_until(insp, [hook], lambda: bool(hook.snapshot()))
        groups = _distinct(hook)
        assert groups
        time.sleep(10 * RETRY)  # a fifth attempt would have come by now
        groups = _distinct(hook)
        for key, attempts in groups.items():
            assert len(attempts) == 4, f"{len(attempts)} attempts: expected 1 + 3 retries"
        deliveries = [d for d in sim_webhooks(insp)["deliveries"] if d["event_type"] == "person_updated"]
        assert len(deliveries) == len(groups)
        assert all(d["delivered"] is False and d["attempts"] == 4 for d in deliveries), deliveries
        assert stats(insp)["webhook_deliveries"]["dropped"] == len(groups)


def test_connection_errors_are_retried_then_dropped():
    with start_simulator(**SMALL, webhook_duplicate_rate=0.0) as other, api_client(other) as c, \
            httpx.Client(base_url=other.url, timeout=60) as insp:
        subscribe(c, f"http://127.0.0.1:{closed_port()}/hook", "nobody", "person_updated")
        for _ in range(10):
            answer = advance(insp, 3 * 3600)
            if answer["updated"].get("people"):
                break
        else:
            pytest.fail("no person changed in 30 simulated hours")

        def finished():
            info = sim_webhooks(insp)
            deliveries = [d for d in info["deliveries"] if d["event_type"] == "person_updated"]
            return info["pending"] == 0 and deliveries and all(d["attempts"] == 4 for d in deliveries)

        poll(finished, timeout=30, what="4 attempts of each delivery")
        deliveries = [d for d in sim_webhooks(insp)["deliveries"] if d["event_type"] == "person_updated"]
        assert all(d["delivered"] is False for d in deliveries)
        s = stats(insp)["webhook_deliveries"]
        assert s["dropped"] == len(deliveries)
        assert s["failed"] >= len(deliveries)


def test_duplicate_rate_sends_deliveries_twice():
    with start_simulator(**SMALL, webhook_duplicate_rate=1.0) as other, api_client(other) as c, \
            httpx.Client(base_url=other.url, timeout=60) as insp, Receiver() as hook:
        subscribe(c, hook.url, "dup", "person_updated")
        advance_until(insp, [hook], lambda: bool(hook.snapshot()))
        groups = _distinct(hook)
        assert groups
        counts = Counter(len(v) for v in groups.values())
        assert set(counts) == {2}, f"with duplicate rate 1.0 every delivery comes twice: {counts}"
        for attempts in groups.values():
            check_delivery(attempts[0], "dup", {"person_updated"})
        assert stats(insp)["webhook_deliveries"]["duplicates"] == len(groups)


def test_no_duplicates_at_rate_zero(client, inspect, receiver):
    subscribe(client, receiver.url, "once", "person_updated")
    advance_until(inspect, [receiver], lambda: len(receiver.snapshot()) >= 3)
    groups = _distinct(receiver)
    assert groups
    assert all(len(v) == 1 for v in groups.values())
