"""Conformance of the simulator's writes to docs/simulator.md ("Writes"): people
created and updated, people added to cadences, bulk upsert jobs, the lookups
write-back needs, their webhooks, ground truth and stats. Real loopback HTTP.

The simulator is shared by the module, so every test writes people with
emails of its own."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from salesloft_pipeline_tests.conftest import (
    RATE_HEADERS,
    TIMESTAMP_RE,
    Receiver,
    advance,
    api_client,
    instant,
    iso,
    poll,
    reset_stats,
    set_faults,
    signature,
    stats,
    truth,
    truth_ids,
    truth_map,
    unwrap,
    walk,
)

# 400 people give 9+ cadences, one of them archived.
SIM_OPTIONS = {"people": 400, "days": 10, "webhook_duplicate_rate": 0.0, "webhook_retry_seconds": 0.2}
# A newer feature's field that only some records carry (docs: "New fields appear without notice").
FEATURE_FIELDS = {"buyer_intent", "rhythm_priority"}


def email(tag: str = "p") -> str:
    return f"{tag}.{uuid.uuid4().hex[:12]}@writes.example.com"


def create_person(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("email_address", email())
    response = client.post("/people", json=fields)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data"}, body
    return body["data"]


def refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, (response.status_code, response.text)
    return response.json()


def newest_change(inspect: httpx.Client, *streams: str) -> Any:
    return max(instant(r["updated_at"]) for s in streams for r in truth(inspect, s)["records"] if r["updated_at"])


def me(client: httpx.Client) -> int:
    response = client.get("/me")
    assert response.status_code == 200, response.text
    return response.json()["data"]["id"]


def cadences(inspect: httpx.Client) -> list[dict[str, Any]]:
    records = truth(inspect, "cadences", full=True)["records"]
    if not records:
        pytest.fail("no cadences in the ground truth: cannot check enrollment")
    return records


def open_cadence(inspect: httpx.Client, index: int = 0) -> dict[str, Any]:
    usable = [c for c in cadences(inspect) if not c["archived_at"]]
    return usable[index % len(usable)]


def memberships_of(inspect: httpx.Client, person_id: int, cadence_id: int) -> list[dict[str, Any]]:
    return [
        m
        for m in truth(inspect, "cadence_memberships", full=True)["records"]
        if m["person"]["id"] == person_id and m["cadence"]["id"] == cadence_id
    ]


def enroll(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.post("/cadence_memberships", json=params)


# -- people: create ---------------------------------------------------------------
def test_create_person_answers_the_full_record_and_truth_has_it(client, inspect):
    before = newest_change(inspect, "people", "cadence_memberships", "emails")
    address = email("Create").replace("create", "Create")
    person = create_person(
        client, email_address=address, first_name="Ada", last_name="Lovelace", title="CTO", phone="+15555550123",
        city="London", state=None, country="GB", person_company_name="Engines", tags=["vip", "writes"],
        custom_fields={"Lead Source": "Webinar"}, do_not_contact=False,
    )  # fmt: skip
    assert isinstance(person["id"], int)
    assert person["email_address"] == address
    assert (person["first_name"], person["last_name"], person["display_name"]) == ("Ada", "Lovelace", "Ada Lovelace")
    assert person["title"] == "CTO" and person["phone"] == "+15555550123" and person["city"] == "London"
    assert person["tags"] == ["vip", "writes"]
    assert person["custom_fields"] == {"Lead Source": "Webinar"}
    assert person["do_not_contact"] is False
    assert person["counts"] == {k: 0 for k in person["counts"]} and person["counts"]
    assert person["cadences"] == [] and person["most_recent_cadence"] is None
    assert person["owner"]["id"] == me(client), "owner defaults to the key's user"
    for field in ("created_at", "updated_at"):
        assert TIMESTAMP_RE.match(person[field]), person[field]
    assert person["created_at"] == person["updated_at"]
    assert instant(person["updated_at"]) > before, "a write comes after every earlier change"
    # Same shape as a generated person.
    generated = next(r for r in truth(inspect, "people", full=True)["records"] if r["id"] != person["id"])
    assert set(person) - FEATURE_FIELDS == set(generated) - FEATURE_FIELDS
    # Seen by updated_at polling (from any offset), served like any record, and in the ground truth.
    since = {"updated_at[gte]": iso(instant(person["updated_at"]), 5.5)}
    polled = walk(client, "people", sort_by="updated_at", sort_direction="ASC", **since)
    assert person in polled
    assert client.get(f"/people/{person['id']}").json() == {"data": person}
    assert truth_map(inspect, "people", full=True)[person["id"]] == person


def test_create_person_with_phone_and_last_name_only(client, inspect):
    person = create_person(client, email_address=None, phone="+15555550177", last_name="Nomail")
    assert person["email_address"] is None and person["phone"] == "+15555550177"
    assert person["id"] in truth_ids(inspect, "people")


def test_create_person_ignores_unknown_fields(client):
    person = create_person(client, first_name="Un", last_name="Known", favourite_colour="teal", id=1, counts={"x": 1})
    assert "favourite_colour" not in person
    assert person["id"] != 1 and "x" not in person["counts"]


def test_create_person_with_references(client, inspect):
    accounts = truth(inspect, "accounts", full=True)["records"]
    stages = truth(inspect, "person_stages")["records"]
    users = sorted(truth_ids(inspect, "users"))
    account = accounts[len(accounts) // 2]
    people_before = account["counts"]["people"]
    person = create_person(
        client, first_name="Ref", last_name="Erenced", owner_id=users[-1], account_id=account["id"],
        person_stage_id=str(stages[0]["id"]),
    )  # fmt: skip
    assert person["owner"]["id"] == users[-1]
    assert person["account"]["id"] == account["id"]
    assert person["person_stage"]["id"] == stages[0]["id"]
    assert person["person_company_name"] == account["name"], "an account without a company name gives its name"
    for ref in ("owner", "account", "person_stage"):
        assert set(person[ref]) == {"_href", "id"} and person[ref]["_href"].endswith(f"/{person[ref]['id']}")
    after = truth_map(inspect, "accounts", full=True)[account["id"]]
    assert after["counts"]["people"] == people_before + 1


def test_create_person_form_encoded(client):
    address = email("form")
    response = client.post(
        "/people",
        content=f"email_address={address}&last_name=Form&tags[]=a&tags[]=b&custom_fields[Segment]=SMB".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    person = response.json()["data"]
    assert person["email_address"] == address
    assert person["tags"] == ["a", "b"] and person["custom_fields"] == {"Segment": "SMB"}


def test_duplicate_email_is_refused_case_insensitively(client, inspect):
    first = create_person(client, email_address=email("dup").title())
    generated = next(r for r in truth(inspect, "people", full=True)["records"] if r["email_address"])
    count = len(truth_ids(inspect, "people"))
    for taken in (first["email_address"].lower(), first["email_address"].upper(), generated["email_address"].title()):
        response = client.post("/people", json={"email_address": taken, "first_name": "Again"})
        assert refused(response) == {"errors": {"email_address": ["has already been taken"]}}
    assert len(truth_ids(inspect, "people")) == count, "a refused write changes nothing"


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "Nobody"},
        {"email_address": "", "phone": "+15555550100"},
        {"email_address": None, "last_name": "Only"},
        {"phone": "+15555550100", "last_name": "  "},
    ],
)
def test_neither_email_nor_phone_and_last_name_is_refused(client, fields):
    assert refused(client.post("/people", json=fields)) == {
        "errors": {"base": ["Either email_address or phone and last_name must be provided"]}
    }


@pytest.mark.parametrize("bad", ["not-an-email", "two@@example.com", "no-domain@", "spaces in@example.com", "a@b"])
def test_malformed_email_is_refused(client, bad):
    response = client.post("/people", json={"email_address": bad, "first_name": "Bad"})
    assert refused(response) == {"errors": {"email_address": ["is invalid"]}}


@pytest.mark.parametrize("field", ["owner_id", "account_id", "person_stage_id"])
def test_unknown_reference_is_refused_on_its_field(client, field):
    response = client.post("/people", json={"email_address": email(), field: 987654321})
    assert refused(response) == {"errors": {field: ["does not exist"]}}


def test_every_failing_field_is_reported_at_once(client):
    response = client.post("/people", json={"email_address": "nope", "owner_id": 987654321, "tags": "vip"})
    assert refused(response) == {
        "errors": {"email_address": ["is invalid"], "owner_id": ["does not exist"], "tags": ["is invalid"]}
    }


def test_write_without_a_token_is_401_and_writes_nothing(sim, inspect):
    address = email("noauth")
    response = httpx.post(f"{sim.base_url}/people", json={"email_address": address})
    assert response.status_code == 401
    assert "error" in response.json()
    with api_client(sim) as c:
        assert c.get("/people", params={"email_addresses[]": address}).json()["data"] == []


# -- people: update ---------------------------------------------------------------
def test_update_changes_only_the_given_fields_and_bumps_updated_at(client, inspect):
    person = create_person(client, first_name="Up", last_name="Date", title="Rep", tags=["a"])
    response = client.put(f"/people/{person['id']}", json={"title": "VP Sales", "city": "Paris"})
    assert response.status_code == 200, response.text
    updated = response.json()["data"]
    assert updated["title"] == "VP Sales" and updated["city"] == "Paris"
    unchanged = {k: v for k, v in person.items() if k not in ("title", "city", "updated_at")}
    assert {k: updated[k] for k in unchanged} == unchanged
    assert instant(updated["updated_at"]) > instant(person["updated_at"])
    assert updated["created_at"] == person["created_at"]
    assert truth_map(inspect, "people", full=True)[person["id"]] == updated
    # A save that changes nothing still gives a new updated_at.
    again = client.put(f"/people/{person['id']}", json={"title": "VP Sales"}).json()["data"]
    assert instant(again["updated_at"]) > instant(updated["updated_at"])


def test_update_a_generated_person_is_seen_by_updated_at_polling(client, inspect):
    generated = truth(inspect, "people")["records"][3]
    before = newest_change(inspect, "people", "cadence_memberships")
    client.put(f"/people/{generated['id']}.json", json={"job_seniority": "director"}).raise_for_status()
    seen = walk(client, "people", sort_by="updated_at", sort_direction="ASC", **{"updated_at[gt]": iso(before, -7)})
    assert generated["id"] in [r["id"] for r in seen]
    assert next(r for r in seen if r["id"] == generated["id"])["job_seniority"] == "director"


def test_update_tags_replace_and_custom_fields_merge(client):
    person = create_person(client, last_name="Fields", tags=["a", "b"], custom_fields={"One": "1", "Two": "2"})
    updated = client.put(
        f"/people/{person['id']}", json={"tags": ["c"], "custom_fields": {"Two": None, "Three": "3"}}
    ).json()["data"]
    assert updated["tags"] == ["c"]
    assert updated["custom_fields"] == {"One": "1", "Three": "3"}


def test_update_names_and_email_follow_in_display_fields(client):
    person = create_person(client, first_name="Old", last_name="Name")
    address = email("renamed")
    updated = client.put(f"/people/{person['id']}", json={"first_name": "New", "email_address": address}).json()["data"]
    assert updated["display_name"] == "New Name"
    assert updated["full_email_address"] == f'"New Name" <{address}>'


def test_update_unknown_person_is_404(client):
    for path in ("/people/987654321", "/people/987654321.json", "/people/not-a-number"):
        response = client.put(path, json={"title": "x"})
        assert response.status_code == 404, (path, response.status_code)
        assert response.json() == {"error": "Not Found"}


def test_update_deleted_person_is_404(client, inspect):
    person = create_person(client, last_name="Gone")
    assert inspect.post("/__sim/delete", json={"stream": "people", "id": person["id"]}).status_code == 200
    response = client.put(f"/people/{person['id']}", json={"title": "x"})
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_update_to_an_email_of_another_person_is_refused(client):
    first, second = create_person(client, last_name="One"), create_person(client, last_name="Two")
    response = client.put(f"/people/{second['id']}", json={"email_address": first["email_address"].upper()})
    assert refused(response) == {"errors": {"email_address": ["has already been taken"]}}
    # Its own email, in another case, is not taken.
    own = client.put(f"/people/{second['id']}", json={"email_address": second["email_address"].upper()})
    assert own.status_code == 200, own.text


def test_update_that_removes_every_way_to_reach_the_person_is_refused(client):
    person = create_person(client, first_name="Reach")
    response = client.put(f"/people/{person['id']}", json={"email_address": None})
    assert refused(response) == {"errors": {"base": ["Either email_address or phone and last_name must be provided"]}}
    ok = client.put(f"/people/{person['id']}", json={"email_address": None, "phone": "+15555550111", "last_name": "X"})
    assert ok.status_code == 200 and ok.json()["data"]["email_address"] is None


def test_update_with_invalid_values_is_refused(client):
    person = create_person(client, last_name="Invalid")
    response = client.put(
        f"/people/{person['id']}",
        json={"email_address": "bad@", "account_id": 987654321, "do_not_contact": "maybe", "owner_id": None},
    )
    assert refused(response) == {
        "errors": {
            "email_address": ["is invalid"],
            "account_id": ["does not exist"],
            "do_not_contact": ["is invalid"],
            "owner_id": ["can't be blank"],
        }
    }


# -- lookups ------------------------------------------------------------------------
def test_people_by_email_addresses_case_insensitive(client, inspect):
    mine = create_person(client, last_name="Lookup", email_address=email("lookup").title())
    generated = next(r for r in truth(inspect, "people", full=True)["records"] if r["email_address"])
    wanted = [mine["email_address"].lower(), generated["email_address"].swapcase(), "nobody@nowhere.example.com"]
    response = client.get("/people", params={"email_addresses[]": wanted})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(r["id"] for r in body["data"]) == sorted([mine["id"], generated["id"]])
    assert body["metadata"]["filtering"]["email_addresses"] == wanted
    assert client.get("/people", params={"email_addresses[]": "nobody@nowhere.example.com"}).json()["data"] == []


def test_memberships_by_person_and_cadence(client, inspect):
    records = truth(inspect, "cadence_memberships", full=True)["records"]
    sample = records[len(records) // 2]
    person_id, cadence_id = sample["person"]["id"], sample["cadence"]["id"]
    by_person = {m["id"] for m in records if m["person"]["id"] == person_id}
    by_cadence = {m["id"] for m in records if m["cadence"]["id"] == cadence_id}
    got = walk(client, "cadence_memberships", person_id=person_id)
    assert {m["id"] for m in got} == by_person
    got = walk(client, "cadence_memberships", cadence_id=str(cadence_id))
    assert {m["id"] for m in got} == by_cadence
    both = client.get("/cadence_memberships", params={"person_id": person_id, "cadence_id": cadence_id}).json()
    assert [m["id"] for m in both["data"]] == [sample["id"]]
    assert both["metadata"]["filtering"] == {"person_id": str(person_id), "cadence_id": str(cadence_id)}
    assert client.get("/cadence_memberships", params={"person_id": 987654321}).json()["data"] == []
    response = client.get("/cadence_memberships", params={"person_id": "abc"})
    assert refused(response) == {"errors": {"person_id": ["must be an integer"]}}


def test_cadences_by_name(client, inspect):
    records = cadences(inspect)
    names = [records[0]["name"], records[-1]["name"]]
    expected = {c["id"] for c in records if c["name"] in names}
    got = client.get("/cadences", params={"name[]": names, "per_page": 100}).json()["data"]
    assert {c["id"] for c in got} == expected
    assert client.get("/cadences", params={"name[]": "No Such Cadence"}).json()["data"] == []


# -- cadence memberships ------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["json", "form", "query"])
def test_add_person_to_cadence(client, inspect, encoding):
    person = create_person(client, last_name=f"Enroll-{encoding}")
    cadence = open_cadence(inspect, 1)
    params = {"person_id": person["id"], "cadence_id": cadence["id"]}
    if encoding == "json":
        response = client.post("/cadence_memberships", json=params)
    elif encoding == "form":
        response = client.post("/cadence_memberships", data=params)
    else:
        response = client.post("/cadence_memberships", params=params)
    assert response.status_code == 200, response.text
    membership = response.json()["data"]
    assert membership["person"]["id"] == person["id"] and membership["cadence"]["id"] == cadence["id"]
    assert membership["user"]["id"] == me(client)
    assert membership["currently_on_cadence"] is True and membership["person_deleted"] is False
    assert membership["current_state"] in ("staged", "active")
    assert membership["counts"] and all(v == 0 for v in membership["counts"].values())
    assert instant(membership["added_at"]) >= instant(person["updated_at"])
    generated = truth(inspect, "cadence_memberships", full=True)["records"][0]
    assert set(membership) - FEATURE_FIELDS == set(generated) - FEATURE_FIELDS
    for ref in ("person", "cadence", "user"):
        assert set(membership[ref]) == set(generated[ref])
    assert memberships_of(inspect, person["id"], cadence["id"]) == [membership]
    after = client.get(f"/people/{person['id']}").json()["data"]
    assert after["most_recent_cadence"]["id"] == cadence["id"]
    assert [c["id"] for c in after["cadences"]] == [cadence["id"]]


def test_add_with_a_given_user(client, inspect):
    users = sorted(truth_ids(inspect, "users"))
    person = create_person(client, last_name="WithUser")
    response = enroll(client, person_id=person["id"], cadence_id=open_cadence(inspect)["id"], user_id=users[-1])
    assert response.status_code == 200, response.text
    assert response.json()["data"]["user"]["id"] == users[-1]


def test_enrollment_refusals(client, inspect):
    person = create_person(client, last_name="Refused")
    cadence = open_cadence(inspect, 2)
    archived = [c for c in cadences(inspect) if c["archived_at"]]
    if not archived:
        pytest.fail("no archived cadence in the ground truth: cannot check the refusal")
    cases = [
        ({"person_id": 987654321, "cadence_id": cadence["id"]}, {"person_id": ["not found"]}),
        ({"person_id": person["id"], "cadence_id": 987654321}, {"cadence_id": ["not found"]}),
        ({"person_id": person["id"], "cadence_id": cadence["id"], "user_id": 987654321}, {"user_id": ["not found"]}),
        ({"person_id": person["id"], "cadence_id": archived[0]["id"]}, {"cadence_id": ["is archived"]}),
    ]
    for params, errors in cases:
        assert refused(enroll(client, **params)) == {"errors": errors}, params
    assert memberships_of(inspect, person["id"], cadence["id"]) == []
    assert enroll(client, person_id=person["id"], cadence_id=cadence["id"]).status_code == 200
    again = enroll(client, person_id=person["id"], cadence_id=cadence["id"])
    assert refused(again) == {"errors": {"base": ["person is already on this cadence"]}}
    assert len(memberships_of(inspect, person["id"], cadence["id"])) == 1


def test_enrolling_a_deleted_person_is_refused(client, inspect):
    person = create_person(client, last_name="Deleted")
    inspect.post("/__sim/delete", json={"stream": "people", "id": person["id"]}).raise_for_status()
    response = enroll(client, person_id=person["id"], cadence_id=open_cadence(inspect)["id"])
    assert refused(response) == {"errors": {"person_id": ["not found"]}}


def test_readding_a_removed_person_reuses_the_membership(client, inspect):
    people = truth_ids(inspect, "people")
    archived = {c["id"] for c in cadences(inspect) if c["archived_at"]}
    records = truth(inspect, "cadence_memberships", full=True)["records"]
    candidates = [
        m
        for m in records
        if not m["currently_on_cadence"] and m["person"]["id"] in people and m["cadence"]["id"] not in archived
    ]
    if not candidates:
        pytest.fail("no finished membership of a living person on an open cadence: cannot check re-adds")
    old = candidates[0]
    response = enroll(client, person_id=old["person"]["id"], cadence_id=old["cadence"]["id"])
    assert response.status_code == 200, response.text
    membership = response.json()["data"]
    assert membership["id"] == old["id"], "one membership per person and cadence: a re-add reuses it"
    assert membership["currently_on_cadence"] is True
    assert instant(membership["updated_at"]) > instant(old["updated_at"])
    assert instant(membership["added_at"]) > instant(old["added_at"])
    assert memberships_of(inspect, old["person"]["id"], old["cadence"]["id"]) == [membership]


def test_activity_never_makes_a_second_membership_for_a_written_one(client, inspect):
    person = create_person(client, last_name="Busy")
    enroll(client, person_id=person["id"], cadence_id=open_cadence(inspect)["id"]).raise_for_status()
    written = newest_change(inspect, "people", "cadence_memberships")
    advance(inspect, 6 * 3600)
    records = truth(inspect, "cadence_memberships", full=True)["records"]
    pairs = [(m["person"]["id"], m["cadence"]["id"]) for m in records]
    assert len(pairs) == len(set(pairs)), "two memberships for one person and cadence"
    later = [r for r in truth(inspect, "emails")["records"] if instant(r["updated_at"]) > written]
    assert later, "the activity after the writes is timestamped after them"


# -- bulk jobs ------------------------------------------------------------------------------
def wait_done(client: httpx.Client, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = client.get(f"/bulk_jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()["data"]
        return job if job["state"] == "done" else None

    return poll(done, timeout=30, what=f"bulk job {job_id} to be done")


def new_job(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/bulk_jobs", json={"type": "person/upsert"})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_bulk_upsert_end_to_end_with_an_error_record(client, inspect):
    existing = create_person(client, first_name="Bulk", last_name="Existing", title="Rep")
    fresh = email("bulk-new")
    job = new_job(client)
    assert job["type"] == "person/upsert" and job["state"] == "open" and job["ready_to_execute"] is False
    assert (job["total"], job["processed"], job["errors"]) == (0, 0, 0)
    assert TIMESTAMP_RE.match(job["created_at"])
    records = [
        {"email_address": existing["email_address"].upper(), "title": "Head of Sales", "upsert_key": "email_address"},
        {"email_address": fresh, "first_name": "Brand", "last_name": "New", "tags": ["bulk"], "upsert_key": "email_address"},
        {"email_address": "broken@", "first_name": "Broken", "upsert_key": "email_address"},
        {"email_address": email("bulk-ref"), "owner_id": 987654321, "upsert_key": "email_address"},
    ]  # fmt: skip
    response = client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": records[:2]})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"records": 2}}
    assert client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": records[2:]}).json() == {
        "data": {"records": 2}
    }
    shown = client.get(f"/bulk_jobs/{job['id']}").json()["data"]
    assert shown["state"] == "open" and shown["total"] == 4
    assert client.get("/people", params={"email_addresses[]": fresh}).json()["data"] == [], "nothing runs yet"

    ready = client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True})
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["state"] == "executing" and ready.json()["data"]["ready_to_execute"] is True
    done = wait_done(client, job["id"])
    assert (done["total"], done["processed"], done["errors"]) == (4, 4, 2)

    results = walk(client, f"bulk_jobs/{job['id']}/results", per_page=3)
    assert [r["id"] for r in results] == [1, 2, 3, 4]
    assert [r["status"] for r in results] == ["success", "success", "error", "error"]
    assert [r["record"] for r in results] == records
    assert results[0]["resource"] == {"id": existing["id"]} and results[0]["error"] is None
    assert results[2]["resource"] is None and "email_address" in results[2]["error"]
    assert "owner_id" in results[3]["error"]

    people = truth_map(inspect, "people", full=True)
    assert people[existing["id"]]["title"] == "Head of Sales"
    assert people[existing["id"]]["email_address"] == existing["email_address"].upper()
    created = people[results[1]["resource"]["id"]]
    assert (created["email_address"], created["first_name"], created["tags"]) == (fresh, "Brand", ["bulk"])
    assert not [p for p in people.values() if p["email_address"] in ("broken@",)]
    listed = client.get("/bulk_jobs", params={"per_page": 100}).json()["data"]
    assert job["id"] in [j["id"] for j in listed]


def test_bulk_upsert_by_id(client, inspect):
    person = create_person(client, last_name="ById")
    job = new_job(client)
    data = [{"id": person["id"], "title": "Founder", "upsert_key": "id"}, {"id": 987654321, "upsert_key": "id"}]
    client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": data}).raise_for_status()
    client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True}).raise_for_status()
    assert wait_done(client, job["id"])["errors"] == 1
    results = client.get(f"/bulk_jobs/{job['id']}/results").json()["data"]
    assert [r["status"] for r in results] == ["success", "error"]
    assert truth_map(inspect, "people", full=True)[person["id"]]["title"] == "Founder"


def test_bulk_job_refusals(client):
    bad_type = client.post("/bulk_jobs", json={"type": "account/upsert"})
    assert refused(bad_type) == {"errors": {"type": ["is not included in the list"]}}
    job = new_job(client)
    too_many = [{"email_address": f"n{i}@many.example.com", "upsert_key": "email_address"} for i in range(5001)]
    response = client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": too_many})
    assert "data" in refused(response)["errors"]
    assert "data" in refused(client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": []}))["errors"]
    exactly = client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": too_many[:5000]})
    assert exactly.json() == {"data": {"records": 5000}}
    client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True}).raise_for_status()
    late = client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": too_many[:1]})
    assert refused(late)["errors"]
    assert refused(client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True}))["errors"]
    done = wait_done(client, job["id"])
    assert (done["processed"], done["errors"]) == (5000, 0)
    paged = client.get(f"/bulk_jobs/{job['id']}/results", params={"per_page": 100, "include_paging_counts": "true"})
    assert paged.json()["metadata"]["paging"]["total_count"] == 5000


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/bulk_jobs/987654"),
        ("PUT", "/bulk_jobs/987654"),
        ("POST", "/bulk_jobs/987654/job_data"),
        ("GET", "/bulk_jobs/987654/results"),
    ],
)
def test_unknown_bulk_job_is_404(client, method, path):
    response = client.request(method, path, json={"ready_to_execute": True, "data": [{"email_address": "a@b.co"}]})
    assert response.status_code == 404, response.text
    assert response.json() == {"error": "Not Found"}


# -- bulk jobs made to fail (/__sim/bulk_jobs) -------------------------------------------------
def bulk_failures(inspect: httpx.Client, **settings: Any) -> dict[str, Any]:
    response = inspect.post("/__sim/bulk_jobs", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def wait_ended(client: httpx.Client, job_id: int) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = client.get(f"/bulk_jobs/{job_id}").json()["data"]
        return job if job["state"] not in ("open", "executing") else None

    return poll(ended, timeout=30, what=f"bulk job {job_id} to end")


def run_job(client: httpx.Client, records: list[dict[str, Any]]) -> dict[str, Any]:
    job = new_job(client)
    client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": records}).raise_for_status()
    ready = client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True})
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["state"] == "executing", "a job made to fail starts like any other"
    return wait_ended(client, job["id"])


def emails_in_truth(inspect: httpx.Client) -> set[str]:
    return {(p["email_address"] or "").lower() for p in truth(inspect, "people", full=True)["records"]}


def test_a_job_made_to_fail_applies_its_first_records_then_ends_in_that_state(client, inspect, receiver: Receiver):
    response = client.post(
        "/webhook_subscriptions",
        json={"callback_url": receiver.url, "callback_token": "fail-token", "event_type": "bulk_job_completed"},
    )
    assert response.status_code in (200, 201), response.text
    subscription = unwrap(response.json())["id"]
    records = [
        {"email_address": email("fail-applied"), "last_name": "Applied", "upsert_key": "email_address"},
        {"email_address": "broken@", "upsert_key": "email_address"},
        {"email_address": email("fail-never"), "last_name": "Never", "upsert_key": "email_address"},
        {"email_address": email("fail-never"), "last_name": "Never", "upsert_key": "email_address"},
    ]
    try:
        before = bulk_failures(inspect)["failed_jobs"]
        assert bulk_failures(inspect, fail_next=1, state="failed", applied=2) == {
            "fail_next": 1, "state": "failed", "applied": 2, "failed_jobs": before,
        }  # fmt: skip
        failed = run_job(client, records)
        assert failed["state"] == "failed" and failed["ready_to_execute"] is True
        assert (failed["total"], failed["processed"], failed["errors"]) == (4, 2, 1)
        assert TIMESTAMP_RE.match(failed["finished_at"])
        results = walk(client, f"bulk_jobs/{failed['id']}/results", per_page=100)
        assert [(r["id"], r["status"], r["record"]) for r in results] == [
            (1, "success", records[0]), (2, "error", records[1]),
        ]  # fmt: skip
        emails = emails_in_truth(inspect)
        assert records[0]["email_address"] in emails, "the records before the failure were applied"
        assert not {records[2]["email_address"], records[3]["email_address"]} & emails, "the others never were"
        assert inspect.get("/__sim/bulk_jobs").json() == {
            "fail_next": 0, "state": "failed", "applied": 2, "failed_jobs": [*before, failed["id"]],
        }  # fmt: skip

        announced = poll(
            lambda: [b for b in receiver.bodies("bulk_job_completed", ok_only=True) if b["id"] == failed["id"]],
            what="bulk_job_completed of the failed job",
        )
        assert announced[0] == failed

        # Only the next job was asked to fail: the one after it ends `done` and applies everything.
        after = run_job(client, records[2:])
        assert (after["state"], after["processed"], after["errors"]) == ("done", 2, 0)
        assert {records[2]["email_address"], records[3]["email_address"]} <= emails_in_truth(inspect)
    finally:
        bulk_failures(inspect)
        client.delete(f"/webhook_subscriptions/{subscription}")


def test_failing_jobs_by_default_apply_nothing_and_several_can_fail(client, inspect):
    records = [{"email_address": email("fail-none"), "last_name": "None", "upsert_key": "email_address"}]
    try:
        bulk_failures(inspect, fail_next=2, state="cancelled")
        ended = [run_job(client, records), run_job(client, records)]
        assert [(j["state"], j["total"], j["processed"], j["errors"]) for j in ended] == [("cancelled", 1, 0, 0)] * 2
        for job in ended:
            assert client.get(f"/bulk_jobs/{job['id']}/results").json()["data"] == []
        assert records[0]["email_address"] not in emails_in_truth(inspect)
        assert inspect.get("/__sim/bulk_jobs").json()["failed_jobs"][-2:] == [j["id"] for j in ended]
        assert run_job(client, records)["state"] == "done"
        assert records[0]["email_address"] in emails_in_truth(inspect)
    finally:
        bulk_failures(inspect)


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"fail_next": 1, "state": "done"}, "state"),
        ({"fail_next": 1, "state": "executing"}, "state"),
        ({"fail_next": 1, "state": " "}, "state"),
        ({"fail_next": -1}, "fail_next"),
        ({"fail_next": 1, "applied": -2}, "applied"),
        ({"fail_next": "many"}, "fail_next"),
        ({"fail_next": 1, "typo": True}, "typo"),
    ],
)
def test_bulk_failure_settings_are_validated(client, inspect, settings, field):
    response = inspect.post("/__sim/bulk_jobs", json=settings)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert inspect.get("/__sim/bulk_jobs").json()["fail_next"] == 0, "a refused setting changes nothing"
    assert inspect.post("/__sim/bulk_jobs", content=b"{not json").status_code == 400


# -- reads running during writes -------------------------------------------------------------
def test_reads_during_a_bulk_job_stay_whole(sim, client, inspect):
    job = new_job(client)
    data = [{"email_address": email("conc"), "last_name": "Conc", "upsert_key": "email_address"} for _ in range(1500)]
    client.post(f"/bulk_jobs/{job['id']}/job_data", json={"data": data}).raise_for_status()
    failures: list[Any] = []
    stop = threading.Event()

    def read() -> None:
        with api_client(sim) as c:
            while not stop.is_set():
                response = c.get("/people", params={"per_page": 100, "sort_by": "updated_at", "sort_direction": "DESC"})
                try:
                    body = response.json()
                    assert response.status_code == 200 and len(body["data"]) == 100
                except (AssertionError, json.JSONDecodeError, KeyError) as error:
                    failures.append((response.status_code, response.text[:200], error))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True}).raise_for_status()
        assert wait_done(client, job["id"])["errors"] == 0
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not failures, failures[:3]
    everyone = [r["id"] for r in walk(client, "people", per_page=100)]
    assert len(everyone) == len(set(everyone)) and set(everyone) == truth_ids(inspect, "people")


# -- webhooks ----------------------------------------------------------------------------------
EVENTS = ("person_created", "person_updated", "cadence_membership_created", "cadence_membership_updated",
          "bulk_job_completed")  # fmt: skip


def test_writes_emit_their_webhooks(client, inspect, receiver: Receiver):
    token = "writes-token"
    subscriptions = []
    for event in EVENTS:
        response = client.post(
            "/webhook_subscriptions", json={"callback_url": receiver.url, "callback_token": token, "event_type": event}
        )
        assert response.status_code in (200, 201), response.text
        subscriptions.append(unwrap(response.json())["id"])
    try:
        person = create_person(client, last_name="Hooked")
        updated = client.put(f"/people/{person['id']}", json={"title": "Hooked VP"}).json()["data"]
        membership = enroll(client, person_id=person["id"], cadence_id=open_cadence(inspect)["id"]).json()["data"]
        people = truth_ids(inspect, "people")
        archived = {c["id"] for c in cadences(inspect) if c["archived_at"]}
        readd = next(
            m
            for m in truth(inspect, "cadence_memberships", full=True)["records"]
            if not m["currently_on_cadence"] and m["person"]["id"] in people and m["cadence"]["id"] not in archived
        )
        readded = enroll(client, person_id=readd["person"]["id"], cadence_id=readd["cadence"]["id"]).json()["data"]
        job = new_job(client)
        fresh = email("hook-bulk")
        client.post(
            f"/bulk_jobs/{job['id']}/job_data", json={"data": [{"email_address": fresh, "upsert_key": "email_address"}]}
        ).raise_for_status()
        client.put(f"/bulk_jobs/{job['id']}", json={"ready_to_execute": True}).raise_for_status()
        wait_done(client, job["id"])

        def got(event: str, record_id: Any, check=lambda body: True) -> bool:
            return any(b["id"] == record_id and check(b) for b in receiver.bodies(event, ok_only=True))

        poll(lambda: got("bulk_job_completed", job["id"]), timeout=30, what="bulk_job_completed")
        poll(lambda: got("person_updated", person["id"], lambda b: b["title"] == "Hooked VP"), what="person_updated")
        assert got("person_created", person["id"], lambda b: b == person)
        assert any(b == updated for b in receiver.bodies("person_updated"))
        assert got("cadence_membership_created", membership["id"], lambda b: b == membership)
        assert got("cadence_membership_updated", readded["id"], lambda b: b == readded)
        assert not got("cadence_membership_created", readded["id"]), "a re-add is an update"
        # Deliveries are concurrent: the job's person_created may arrive after its bulk_job_completed.
        poll(lambda: any(b["email_address"] == fresh for b in receiver.bodies("person_created")), what="bulk person_created")
        completed = next(b for b in receiver.bodies("bulk_job_completed") if b["id"] == job["id"])
        assert completed["state"] == "done" and completed["processed"] == 1
        for request in receiver.snapshot():
            body = json.loads(request["raw"])
            assert "data" not in body, "a delivery is the bare resource JSON"
            assert request["headers"]["x-salesloft-signature"] == signature(token, request["raw"])
    finally:
        for subscription_id in subscriptions:
            client.delete(f"/webhook_subscriptions/{subscription_id}")


# -- rate limit, faults, stats -----------------------------------------------------------------
def test_writes_cost_one_and_are_counted(client, inspect):
    reset_stats(inspect)
    created = client.post("/people", json={"email_address": email("stats"), "last_name": "Stats"})
    for header in RATE_HEADERS:
        assert header in created.headers
    assert created.headers["x-ratelimit-endpoint-cost"] == "1"
    person = created.json()["data"]
    client.put(f"/people/{person['id']}", json={"title": "x"}).raise_for_status()
    refused(client.post("/people", json={"email_address": person["email_address"]}))
    enroll(client, person_id=person["id"], cadence_id=open_cadence(inspect)["id"]).raise_for_status()
    job = new_job(client)
    client.get(f"/bulk_jobs/{job['id']}").raise_for_status()
    body = stats(inspect)
    assert body["writes_by_endpoint"] == {
        "POST /v2/people": 2,
        "PUT /v2/people/{id}": 1,
        "POST /v2/cadence_memberships": 1,
        "POST /v2/bulk_jobs": 1,
    }
    assert body["writes_refused"] == {"POST /v2/people": 1}
    assert body["write_outcomes"] == {"person_created": 1, "person_updated": 1, "membership_created": 1}
    assert body["cost"] == 6


def test_a_status_fault_writes_nothing_and_a_dropped_answer_still_writes(sim, client, inspect):
    address = email("fault")
    set_faults(inspect, next=["503"])
    assert client.post("/people", json={"email_address": address}).status_code == 503
    assert client.get("/people", params={"email_addresses[]": address}).json()["data"] == []
    set_faults(inspect, next=["drop"])
    with api_client(sim) as c, pytest.raises(httpx.TransportError):
        c.post("/people", json={"email_address": address})
    found = client.get("/people", params={"email_addresses[]": address}).json()["data"]
    assert [p["email_address"] for p in found] == [address], "the write happened; only its answer was lost"
    again = client.post("/people", json={"email_address": address})
    assert refused(again) == {"errors": {"email_address": ["has already been taken"]}}
