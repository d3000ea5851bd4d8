"""Conformance of the simulator's REST API to docs/simulator.md: streams,
single records, envelope and paging, sorting, filters, auth, timestamps and
time passing. Real loopback HTTP, compared with /__sim/truth."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from salesloft_pipeline_tests.conftest import (
    FILTER_STREAMS,
    NO_FILTER_STREAMS,
    PAGED_STREAMS,
    RATE_HEADERS,
    STREAMS,
    TIMESTAMP_RE,
    advance,
    api_client,
    instant,
    iso,
    offset_of,
    reset_stats,
    start_simulator,
    stats,
    truth,
    truth_ids,
    truth_map,
    walk,
)
from salesloft_pipeline_tests.test_simulator_streams import KEYS, NEW_STREAMS, SCOPED, UNPAGED

# The key may read the scope-gated streams (conversations, transcriptions): the checks below cover them too.
SIM_OPTIONS = {"privileged_scopes": frozenset({"conversations:read"})}
# Streams a 150-person team certainly has records of.
CORE = ["users", "people", "accounts", "cadences", "cadence_memberships", "steps", "emails", "calls"]
# The whole streams table of docs/simulator.md: the first streams and those added with revenue and
# Conversation Intelligence (test_simulator_streams.py checks what is particular to them).
ALL_STREAMS = {**STREAMS, **NEW_STREAMS}
ALL_PAGED = PAGED_STREAMS + [s for s in NEW_STREAMS if s not in UNPAGED]
ALL_FILTER = FILTER_STREAMS + [s for s, (_, filtered) in NEW_STREAMS.items() if filtered]
ALL_NO_FILTER = NO_FILTER_STREAMS + [s for s, (_, filtered) in NEW_STREAMS.items() if not filtered]
# Account types have no id, so no single-record address (test_simulator_streams.py checks the 404).
WITH_IDS = [s for s in ALL_STREAMS if s not in KEYS]
assert set(SCOPED) <= set(ALL_FILTER)


def ids_of(records: list[dict[str, Any]], stream: str = "") -> list[Any]:
    """The records' keys: their ids (names for account types, which have none)."""
    key = KEYS.get(stream, "id")
    return [r[key] for r in records]


def some_id(inspect: httpx.Client, stream: str) -> Any:
    records = truth(inspect, stream)["records"]
    if not records:
        pytest.fail(f"ground truth of {stream} is empty: cannot check it")
    return records[len(records) // 2]["id"]


# -- streams, paths, .json --------------------------------------------------------
@pytest.mark.parametrize("stream", list(ALL_STREAMS))
def test_every_stream_is_served_at_its_path_with_and_without_json(client, inspect, stream):
    path, _ = ALL_STREAMS[stream]
    plain = client.get(f"/{path}", params={"per_page": 100})
    dotted = client.get(f"/{path}.json", params={"per_page": 100})
    assert plain.status_code == 200, (path, plain.status_code, plain.text[:300])
    assert dotted.status_code == 200, (f"{path}.json", dotted.status_code, dotted.text[:300])
    assert plain.headers["content-type"].startswith("application/json")
    assert isinstance(plain.json()["data"], list)
    assert ids_of(plain.json()["data"], stream) == ids_of(dotted.json()["data"], stream)
    assert set(ids_of(plain.json()["data"], stream)) <= truth_ids(inspect, stream)


@pytest.mark.parametrize("stream", CORE)
def test_core_streams_have_records(inspect, stream):
    assert truth(inspect, stream)["records"], f"{stream} has no records in a 150-person team"


@pytest.mark.parametrize("stream", ALL_PAGED)
def test_page_walk_returns_exactly_the_ground_truth(client, inspect, stream):
    path, _ = ALL_STREAMS[stream]
    expected = truth_ids(inspect, stream)
    records = walk(client, path, per_page=100)
    got = ids_of(records, stream)
    assert len(got) == len(set(got)), f"{stream}: the walk returned duplicates"
    assert set(got) == expected


@pytest.mark.parametrize("stream", ["people", "emails", "cadence_memberships", "team_templates"])
def test_small_page_walk_returns_exactly_the_ground_truth(client, inspect, stream):
    path, _ = STREAMS[stream]
    expected = truth_ids(inspect, stream)
    got = ids_of(walk(client, path, per_page=7))
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_groups_have_no_paging_metadata_and_list_everything(client, inspect):
    response = client.get("/groups")
    assert response.status_code == 200
    body = response.json()
    assert "paging" not in body.get("metadata", {}), body.get("metadata")
    assert set(ids_of(body["data"])) == truth_ids(inspect, "groups")


def test_users_list_everything_without_page_and_page_with_it(client, inspect):
    expected = truth_ids(inspect, "users")
    whole = client.get("/users")
    assert whole.status_code == 200
    got = ids_of(whole.json()["data"])
    assert set(got) == expected and len(got) == len(expected)
    assert got == sorted(got), "users default sort is id ASC"
    paged = client.get("/users", params={"page": 1, "per_page": 1})
    assert paged.status_code == 200
    body = paged.json()
    assert len(body["data"]) == 1
    assert body["data"][0]["id"] == min(expected)
    assert body["metadata"]["paging"]["per_page"] == 1
    assert body["metadata"]["paging"]["current_page"] == 1
    if len(expected) > 1:
        assert body["metadata"]["paging"]["next_page"] == 2


def test_users_page_only_when_page_is_given_in_a_bigger_team():
    with start_simulator(seed=1, people=3000, days=1, budget=0) as big, api_client(big) as c, \
            httpx.Client(base_url=big.url, timeout=60) as insp:
        expected = sorted(truth_ids(insp, "users"))
        assert len(expected) > 25, f"only {len(expected)} users in a 3000-person team"
        whole = c.get("/users")
        assert whole.status_code == 200
        assert ids_of(whole.json()["data"]) == expected, "without page, /users lists every user, id ASC"
        first = c.get("/users", params={"page": 1}).json()
        assert ids_of(first["data"]) == expected[:25]
        assert first["metadata"]["paging"]["next_page"] == 2
        assert ids_of(walk(c, "users", per_page=25)) == expected


# -- single records ---------------------------------------------------------------
@pytest.mark.parametrize("stream", WITH_IDS)
def test_single_record_with_and_without_json_matches_truth(client, inspect, stream):
    path, _ = ALL_STREAMS[stream]
    full = truth(inspect, stream, full=True)["records"]
    if not full:
        pytest.fail(f"ground truth of {stream} is empty: cannot check single records")
    record = full[len(full) // 2]
    for suffix in ("", ".json"):
        response = client.get(f"/{path}/{record['id']}{suffix}")
        assert response.status_code == 200, (path, suffix, response.status_code, response.text[:300])
        body = response.json()
        assert set(body) == {"data"}, f"single record envelope is {{'data': ...}}, got keys {set(body)}"
        assert body["data"]["id"] == record["id"]
        expected = dict(record)
        if stream == "emails":
            expected.pop("subject", None)
        assert body["data"] == expected


@pytest.mark.parametrize("stream", ["people", "emails", "team_templates", "searches"])
def test_single_record_unknown_id_is_404_not_found(client, stream):
    path, _ = STREAMS[stream]
    missing = "00000000-0000-0000-0000-000000000000" if stream == "team_templates" else 987654321
    for suffix in ("", ".json"):
        response = client.get(f"/{path}/{missing}{suffix}")
        assert response.status_code == 404, (path, suffix, response.status_code)
        assert response.json() == {"error": "Not Found"}


def test_list_records_equal_single_records(client, inspect):
    full = truth_map(inspect, "people", full=True)
    page = client.get("/people", params={"per_page": 10}).json()["data"]
    for record in page:
        assert record == full[record["id"]]


# -- envelope and paging ------------------------------------------------------------
def test_list_envelope_and_paging_metadata(client, inspect):
    n = len(truth_ids(inspect, "people"))
    assert n > 20
    first = client.get("/people", params={"per_page": 10})
    assert first.status_code == 200
    body = first.json()
    assert set(body) >= {"metadata", "data"}
    meta = body["metadata"]
    assert isinstance(meta["filtering"], dict)
    assert meta["paging"]["per_page"] == 10
    assert meta["paging"]["current_page"] == 1
    assert meta["paging"]["next_page"] == 2
    assert meta["paging"]["prev_page"] is None
    assert meta["sorting"]["sort_by"] == "updated_at"
    assert meta["sorting"]["sort_direction"].upper() == "DESC"
    assert "total_count" not in meta["paging"] and "total_pages" not in meta["paging"]
    second = client.get("/people", params={"per_page": 10, "page": 2}).json()["metadata"]["paging"]
    assert second["current_page"] == 2 and second["prev_page"] == 1 and second["next_page"] == 3


def test_default_page_size_is_25(client, inspect):
    assert len(truth_ids(inspect, "people")) > 25
    body = client.get("/people").json()
    assert len(body["data"]) == 25
    assert body["metadata"]["paging"]["per_page"] == 25
    assert body["metadata"]["paging"]["current_page"] == 1


@pytest.mark.parametrize("asked, clamped", [(0, 1), (-5, 1), (101, 100), (1000, 100), (100, 100), (1, 1)])
def test_per_page_is_clamped(client, inspect, asked, clamped):
    assert len(truth_ids(inspect, "people")) > 100
    response = client.get("/people", params={"per_page": asked})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == clamped
    assert body["metadata"]["paging"]["per_page"] == clamped


def test_page_past_the_end_is_empty(client, inspect):
    n = len(truth_ids(inspect, "people"))
    page = n // 100 + 5
    response = client.get("/people", params={"per_page": 100, "page": page})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == []
    assert body["metadata"]["paging"]["current_page"] == page
    assert body["metadata"]["paging"]["next_page"] is None


def test_include_paging_counts(client, inspect):
    n = len(truth_ids(inspect, "emails"))
    response = client.get("/activities/emails", params={"per_page": 30, "include_paging_counts": "true"})
    paging = response.json()["metadata"]["paging"]
    assert paging["total_count"] == n
    assert paging["total_pages"] == math.ceil(n / 30)


def test_partial_last_page_has_no_next_page(client, inspect):
    ids = sorted(truth_ids(inspect, "people"))[:7]
    body = client.get("/people", params={"ids[]": ids, "per_page": 5, "page": 2}).json()
    assert len(body["data"]) == 2
    assert body["metadata"]["paging"]["next_page"] is None


def test_exactly_full_last_page_points_to_an_empty_page(client, inspect):
    ids = sorted(truth_ids(inspect, "people"))[:10]
    last = client.get("/people", params={"ids[]": ids, "per_page": 5, "page": 2}).json()
    assert len(last["data"]) == 5
    assert last["metadata"]["paging"]["next_page"] == 3
    after = client.get("/people", params={"ids[]": ids, "per_page": 5, "page": 3}).json()
    assert after["data"] == []
    assert after["metadata"]["paging"]["next_page"] is None


def test_exact_last_page_option_ends_on_the_full_page():
    with start_simulator(seed=5, people=30, days=3, budget=0, exact_last_page=True) as other:
        with api_client(other) as c:
            ids = sorted(ids_of(c.get("/people", params={"per_page": 100}).json()["data"]))[:10]
            assert len(ids) == 10
            last = c.get("/people", params={"ids[]": ids, "per_page": 5, "page": 2}).json()
            assert len(last["data"]) == 5
            assert last["metadata"]["paging"]["next_page"] is None
            first = c.get("/people", params={"ids[]": ids, "per_page": 5, "page": 1}).json()
            assert first["metadata"]["paging"]["next_page"] == 2


# -- sorting -------------------------------------------------------------------------
def test_default_sort_is_updated_at_desc(client, inspect):
    records = walk(client, "people", per_page=50)
    instants = [instant(r["updated_at"]) for r in records]
    assert instants == sorted(instants, reverse=True)


@pytest.mark.parametrize("direction", ["ASC", "asc", "Asc"])
def test_sort_updated_at_asc_any_case_ties_by_id(client, inspect, direction):
    expected = sorted(truth(inspect, "people")["records"], key=lambda r: (instant(r["updated_at"]), r["id"]))
    records = walk(client, "people", per_page=40, sort_by="updated_at", sort_direction=direction)
    assert ids_of(records) == ids_of(expected)


@pytest.mark.parametrize("direction", ["DESC", "desc"])
def test_sort_updated_at_desc_any_case(client, inspect, direction):
    records = walk(client, "activities/emails", per_page=100, sort_by="updated_at", sort_direction=direction)
    instants = [instant(r["updated_at"]) for r in records]
    assert instants == sorted(instants, reverse=True)
    assert set(ids_of(records)) == truth_ids(inspect, "emails")


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_sort_by_created_at(client, inspect, direction):
    records = walk(client, "people", per_page=100, sort_by="created_at", sort_direction=direction)
    created = [instant(r["created_at"]) for r in records]
    assert created == sorted(created, reverse=direction == "DESC")
    assert set(ids_of(records)) == truth_ids(inspect, "people")


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_sort_by_id(client, inspect, direction):
    records = walk(client, "accounts", per_page=100, sort_by="id", sort_direction=direction)
    ids = ids_of(records)
    assert ids == sorted(truth_ids(inspect, "accounts"), reverse=direction == "DESC")


def test_sorting_metadata_echoes_the_request(client):
    meta = client.get("/people", params={"sort_by": "created_at", "sort_direction": "asc"}).json()["metadata"]
    assert meta["sorting"]["sort_by"] == "created_at"
    assert meta["sorting"]["sort_direction"].upper() == "ASC"


def test_ties_are_ordered_by_id_so_a_walk_is_stable(client, inspect):
    response = inspect.post("/__sim/ties", json={"stream": "people", "count": 30})
    assert response.status_code == 200, response.text
    tie = response.json()
    assert len(tie["ids"]) == 30
    moment = instant(tie["updated_at"])
    current = truth_map(inspect, "people")
    for record_id in tie["ids"]:
        assert instant(current[record_id]["updated_at"]) == moment
    window = {"updated_at[gte]": iso(moment, -4), "updated_at[lte]": iso(moment, 5.5)}
    asc = walk(client, "people", per_page=7, sort_by="updated_at", sort_direction="ASC", **window)
    assert ids_of(asc) == sorted(tie["ids"])
    desc = walk(client, "people", per_page=7, sort_by="updated_at", sort_direction="DESC", **window)
    assert sorted(ids_of(desc)) == sorted(tie["ids"]) and len(desc) == 30
    # The same page asked twice answers the same records.
    params = {"per_page": 7, "page": 3, "sort_by": "updated_at", **window}
    assert ids_of(client.get("/people", params=params).json()["data"]) == ids_of(
        client.get("/people", params=params).json()["data"]
    )
    # And a default-sort walk of the whole list still sees everyone once.
    everyone = ids_of(walk(client, "people", per_page=9))
    assert len(everyone) == len(set(everyone)) and set(everyone) == set(current)


def test_ties_with_a_given_updated_at(client, inspect):
    moment = datetime(2024, 3, 5, 10, 11, 12, 345678, tzinfo=timezone.utc)
    response = inspect.post(
        "/__sim/ties", json={"stream": "accounts", "count": 5, "updated_at": iso(moment, -5)}
    )
    assert response.status_code == 200, response.text
    tie = response.json()
    assert instant(tie["updated_at"]) == moment
    got = walk(client, "accounts", per_page=100, **{"updated_at[gte]": iso(moment), "updated_at[lte]": iso(moment)})
    assert sorted(ids_of(got)) == sorted(tie["ids"])


# -- filters -------------------------------------------------------------------------
def _instants(inspect, stream):
    return {r["id"]: instant(r["updated_at"]) for r in truth(inspect, stream)["records"]}


@pytest.mark.parametrize("stream", ALL_FILTER)
def test_updated_at_filters_match_truth(client, inspect, stream):
    path, _ = ALL_STREAMS[stream]
    moments = _instants(inspect, stream)
    if len(moments) < 3:
        pytest.fail(f"{stream} has {len(moments)} records: too few to check filters")
    ordered = sorted(set(moments.values()))
    mid = ordered[len(ordered) // 2]
    low, high = ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]
    cases = {
        "gt": ({"updated_at[gt]": iso(mid, -4)}, lambda m: m > mid),
        "gte": ({"updated_at[gte]": iso(mid, 0)}, lambda m: m >= mid),
        "lt": ({"updated_at[lt]": iso(mid, 5.5)}, lambda m: m < mid),
        "lte": ({"updated_at[lte]": iso(mid, -7)}, lambda m: m <= mid),
        "range": (
            {"updated_at[gte]": iso(low, -5), "updated_at[lt]": iso(high, 2)},
            lambda m: low <= m < high,
        ),
    }
    for name, (params, admits) in cases.items():
        expected = {i for i, m in moments.items() if admits(m)}
        got = ids_of(walk(client, path, per_page=100, sort_by="updated_at", sort_direction="ASC", **params))
        assert len(got) == len(set(got))
        assert set(got) == expected, f"{stream} {name} {params}: {len(got)} returned, {len(expected)} expected"
        counted = client.get(f"/{path}", params={**params, "include_paging_counts": "true", "per_page": 100})
        assert counted.json()["metadata"]["paging"]["total_count"] == len(expected), (stream, name)


def test_updated_at_filter_has_microsecond_precision(client, inspect):
    moments = _instants(inspect, "people")
    record_id, moment = sorted(moments.items(), key=lambda kv: kv[1])[len(moments) // 2]
    us = timedelta(microseconds=1)

    def hit(**bounds: str) -> bool:
        records = walk(client, "people", per_page=100, **bounds)
        return record_id in ids_of(records)

    assert hit(**{"updated_at[gte]": iso(moment, -4)})
    assert hit(**{"updated_at[lte]": iso(moment, 3)})
    assert hit(**{"updated_at[gt]": iso(moment - us, -5)})
    assert hit(**{"updated_at[lt]": iso(moment + us, 0)})
    assert not hit(**{"updated_at[gt]": iso(moment, -5)})
    assert not hit(**{"updated_at[lt]": iso(moment, 9)})
    assert not hit(**{"updated_at[gte]": iso(moment + us, 1)})
    assert not hit(**{"updated_at[lte]": iso(moment - us, -11)})
    z = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert hit(**{"updated_at[gte]": z, "updated_at[lte]": z})


@pytest.mark.parametrize("stream", ALL_NO_FILTER)
def test_updated_at_is_an_unknown_filter_on_streams_without_it(client, inspect, stream):
    path, _ = ALL_STREAMS[stream]
    expected = truth_ids(inspect, stream)
    params = {"updated_at[gt]": "2999-01-01T00:00:00.000000Z", "per_page": 100}
    if stream == "users":
        params["page"] = 1
    response = client.get(f"/{path}", params=params)
    assert response.status_code == 200, response.text
    got = ids_of(response.json()["data"], stream)
    assert set(got) == (expected if len(expected) <= 100 else set(got))
    assert len(got) == min(len(expected), 100)


def test_ids_filter_returns_only_existing_ids(client, inspect):
    existing = sorted(truth_ids(inspect, "people"))[3:6]
    response = client.get("/people", params={"ids[]": [*existing, 987654321, 987654322]})
    assert response.status_code == 200
    assert sorted(ids_of(response.json()["data"])) == existing


def test_ids_filter_with_string_ids(client, inspect):
    existing = sorted(truth_ids(inspect, "team_templates"))[:2]
    assert all(isinstance(i, str) for i in existing)
    response = client.get(
        "/team_templates", params={"ids[]": [*existing, "00000000-0000-0000-0000-000000000000"]}
    )
    assert response.status_code == 200
    assert sorted(ids_of(response.json()["data"])) == existing


def test_unknown_filters_are_ignored(client):
    plain = client.get("/people", params={"per_page": 50})
    noisy = client.get(
        "/people", params={"per_page": 50, "colour": "blue", "foo[bar]": "1", "owner_id[]": "x", "q": "?"}
    )
    assert noisy.status_code == 200, noisy.text
    assert ids_of(noisy.json()["data"]) == ids_of(plain.json()["data"])


@pytest.mark.parametrize(
    "params, field",
    [
        ({"updated_at[gt]": "yesterday"}, "updated_at"),
        ({"updated_at[gte]": "2024-13-45T00:00:00Z"}, "updated_at"),
        ({"updated_at[lt]": "12345abc"}, "updated_at"),
        ({"page": "abc"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"per_page": "ten"}, "per_page"),
        ({"sort_by": "name"}, "sort_by"),
        ({"sort_by": "updated_at; drop table"}, "sort_by"),
        ({"sort_direction": "sideways"}, "sort_direction"),
    ],
)
def test_invalid_values_answer_422(client, params, field):
    response = client.get("/people", params=params)
    assert response.status_code == 422, (params, response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"errors"}, body
    errors = body["errors"]
    assert isinstance(errors, dict) and errors
    for key, messages in errors.items():
        assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages)
    assert any(field in key for key in errors), f"422 should name {field}: {errors}"


# -- auth ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Bearer"}, {"Authorization": "sim-api-key"}],
)
def test_missing_or_wrong_token_is_401_with_no_cost(sim, inspect, headers):
    with httpx.Client(base_url=sim.base_url, headers=headers, timeout=30) as anonymous:
        before = stats(inspect)["cost"]
        person = some_id(inspect, "people")
        for path in ("/people", "/people.json", f"/people/{person}", "/activities/emails", "/webhook_subscriptions"):
            response = anonymous.get(path)
            assert response.status_code == 401, (path, headers, response.status_code)
            body = response.json()
            assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
        assert stats(inspect)["cost"] == before


def test_sim_endpoints_take_no_token_and_are_not_under_v2(sim, client):
    assert httpx.get(f"{sim.url}/__sim/stats", timeout=30).status_code == 200
    assert client.get("/__sim/stats").status_code == 404
    assert client.get("/__sim/truth/people").status_code == 404


# -- headers on every /v2 response --------------------------------------------------------
def test_rate_limit_and_date_headers_on_every_response(client, inspect):
    person = some_id(inspect, "people")
    responses = [
        client.get("/people"),
        client.get("/people.json", params={"page": 3}),
        client.get(f"/people/{person}"),
        client.get(f"/people/{person}.json"),
        client.get("/people/987654321"),
        client.get("/people", params={"sort_by": "nope"}),
        client.get("/groups"),
        client.get("/users"),
        client.get("/webhook_subscriptions"),
    ]
    for response in responses:
        for header in RATE_HEADERS:
            assert header in response.headers, (response.request.url, response.status_code, header)
            assert re.fullmatch(r"\d+", response.headers[header]), response.headers[header]
        assert "date" in response.headers, response.request.url
    assert responses[0].headers["x-ratelimit-endpoint-cost"] == "1"
    assert responses[2].headers["x-ratelimit-endpoint-cost"] == "1"


# -- timestamps ---------------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["people", "emails", "accounts", "cadence_memberships", "calls"])
def test_timestamps_have_microseconds_and_varying_offsets(client, stream):
    path, _ = STREAMS[stream]
    records = walk(client, path, per_page=100)
    offsets = set()
    for record in records:
        for key in ("updated_at", "created_at"):
            value = record.get(key)
            if value is not None:
                assert TIMESTAMP_RE.match(value), (stream, record["id"], key, value)
                offsets.add(offset_of(value))
                instant(value)
    assert len(offsets) >= 2, f"{stream}: every timestamp has offset {offsets}"


def test_timestamps_across_streams_use_utc_and_local_offsets(client):
    offsets = set()
    for path in ("people", "activities/emails", "accounts", "activities/calls"):
        for record in client.get(f"/{path}", params={"per_page": 100}).json()["data"]:
            offsets.add(offset_of(record["updated_at"]))
    assert offsets & {"Z", "+00:00"}, offsets
    assert any(o not in ("Z", "+00:00") for o in offsets), offsets


# -- emails' privileged subject ----------------------------------------------------------------
def test_emails_carry_no_subject_unless_asked(client):
    for record in client.get("/activities/emails", params={"per_page": 100}).json()["data"]:
        assert "subject" not in record


def test_subject_without_scope_is_422_as_salesloft_answers_and_with_scope_is_served(client):
    denied = client.get("/activities/emails", params={"scoped_fields[]": "subject"})
    assert denied.status_code == 422, denied.text
    assert denied.json() == {
        "error": "Requested scoped field(s) could not be returned, required scope access not included."
    }
    scopes = frozenset({"email_contents:read"})
    with start_simulator(seed=3, people=20, days=3, budget=0, privileged_scopes=scopes) as other:
        with api_client(other) as c:
            granted = c.get("/activities/emails", params={"scoped_fields[]": "subject", "per_page": 20})
            assert granted.status_code == 200, granted.text
            assert granted.json()["data"]
            assert all("subject" in r for r in granted.json()["data"])
            plain = c.get("/activities/emails", params={"per_page": 20}).json()["data"]
            assert all("subject" not in r for r in plain)


# -- inspection ------------------------------------------------------------------------------
def test_truth_lists_id_and_updated_at_and_full_gives_records(inspect):
    slim = truth(inspect, "accounts")
    assert set(slim) >= {"stream", "records", "deleted"}
    assert all(set(r) >= {"id", "updated_at"} for r in slim["records"])
    full = truth(inspect, "accounts", full=True)
    assert [r["id"] for r in full["records"]] == [r["id"] for r in slim["records"]]
    assert all("name" in r and "created_at" in r for r in full["records"])


def test_stats_count_requests_cost_and_deepest_page(client, inspect):
    person = some_id(inspect, "people")
    reset_stats(inspect)
    zero = stats(inspect)
    assert zero["requests"] == 0 and zero["cost"] == 0 and zero["rate_limited"] == 0
    client.get("/people")
    client.get("/people", params={"page": 2})
    client.get("/activities/emails", params={"page": 120})
    client.get("/people", params={"page": 200})
    client.get(f"/people/{person}")
    now = stats(inspect)
    assert now["requests"] == 5
    assert now["cost"] == 1 + 1 + 3 + 8 + 1
    assert {k: v for k, v in now["requests_by_cost"].items() if v} == {"1": 3, "3": 1, "8": 1}
    assert now["deepest_page"] == 200
    assert now["by_stream"].get("people") == 4 and now["by_stream"].get("emails") == 1


def test_stats_shape_lists_every_counter(inspect):
    reset_stats(inspect)
    now = stats(inspect)
    assert set(now) >= {"requests", "cost", "requests_by_cost", "rate_limited", "deepest_page",
                        "faults_injected", "by_stream", "webhook_deliveries"}, set(now)
    assert now["faults_injected"] == {"status": 0, "slow": 0, "drop": 0, "truncate": 0}, now["faults_injected"]
    assert now["webhook_deliveries"] == {"sent": 0, "failed": 0, "dropped": 0, "duplicates": 0}


# -- time passes ---------------------------------------------------------------------------------
CHANGING = ["people", "accounts", "emails", "calls", "meetings", "notes", "tasks", "cadence_memberships"]


def _snapshot(inspect):
    return {s: truth(inspect, s, full=True) for s in CHANGING}


def test_advance_changes_match_its_answer_and_the_api(client, inspect):
    before = _snapshot(inspect)
    started = datetime.now(timezone.utc)
    answer = advance(inspect, 6 * 3600)
    finished = datetime.now(timezone.utc)
    after = _snapshot(inspect)
    assert sum(answer["created"].values()) > 0, answer
    assert sum(answer["updated"].values()) > 0, answer
    not_bumped, before_high_water, missed_by_incremental = [], [], []
    for stream in CHANGING:
        old = {r["id"]: r for r in before[stream]["records"]}
        new = {r["id"]: r for r in after[stream]["records"]}
        old_deleted, new_deleted = set(before[stream]["deleted"]), set(after[stream]["deleted"])
        created = (set(new) | new_deleted) - (set(old) | old_deleted)
        assert len(created) == answer["created"].get(stream, 0), (stream, answer)
        assert len(new_deleted - old_deleted) == answer["deleted"].get(stream, 0), (stream, answer)
        assert not (set(new) & new_deleted), f"{stream}: ids both live and deleted"
        changed = {i for i in set(old) & set(new) if old[i] != new[i]}
        assert len(changed) <= answer["updated"].get(stream, 0), (stream, len(changed), answer)
        stream_max = max((instant(r["updated_at"]) for r in old.values()), default=None)
        for i in changed | (created & set(new)):
            moment = instant(new[i]["updated_at"])
            assert moment <= finished + timedelta(seconds=2), (stream, i, new[i]["updated_at"], finished)
            if i in old and not moment > instant(old[i]["updated_at"]):
                not_bumped.append((stream, i, old[i]["updated_at"], new[i]["updated_at"]))
            if stream_max is not None and not (moment >= stream_max or moment >= started - timedelta(seconds=1)):
                before_high_water.append((stream, i, new[i]["updated_at"], iso(stream_max)))
        # An incremental read from the previous high-water mark sees exactly the changes.
        if stream_max is not None:
            path, _ = STREAMS[stream]
            got = ids_of(walk(client, path, per_page=100, sort_by="updated_at", sort_direction="ASC",
                              **{"updated_at[gt]": iso(stream_max, -4)}))
            expected = {i for i, r in new.items() if instant(r["updated_at"]) > stream_max}
            assert set(got) == expected, stream
            missed = (changed | (created & set(new))) - expected
            if missed:
                missed_by_incremental.append((stream, len(missed), sorted(missed)[:5], iso(stream_max)))
        # The list API agrees with the truth after the change.
        path, _ = STREAMS[stream]
        assert set(ids_of(walk(client, path, per_page=100))) == set(new), stream
    assert not not_bumped, f"changed without a later updated_at (stream, id, before, after): {not_bumped}"
    assert not missed_by_incremental, (
        f"changes an updated_at[gt]=<previous max> read misses (stream, count, ids, previous max): "
        f"{missed_by_incremental}"
    )
    assert not before_high_water, (
        f"changes timestamped before the stream's latest updated_at (stream, id, new, latest): {before_high_water}"
    )


def test_a_change_after_a_bulk_edit_still_moves_updated_at_forward():
    """A record tied at "now" (a bulk edit) and then edited must get a later updated_at."""
    with start_simulator(seed=12, people=150, days=20, budget=0) as other, \
            httpx.Client(base_url=other.url, timeout=60) as insp:
        tie = insp.post("/__sim/ties", json={"stream": "people", "count": 60}).json()
        tied_at = instant(tie["updated_at"])
        edited = []
        for _ in range(6):
            advance(insp, 6 * 3600)
            now = truth_map(insp, "people")
            edited = [(i, now[i]["updated_at"]) for i in tie["ids"]
                      if i in now and instant(now[i]["updated_at"]) != tied_at]
            if edited:
                break
        assert edited, "no tied person was edited in 36 simulated hours"
        backwards = [(i, u) for i, u in edited if instant(u) < tied_at]
        assert not backwards, f"tied at {tie['updated_at']}, then edited with an earlier updated_at: {backwards}"


def _collect_changes(inspect, rounds: int, seconds: float, until) -> dict[str, Any]:
    """Advances up to `rounds` times, accumulating what changed, until `until(acc)`."""
    acc: dict[str, Any] = {"answers": [], "pairs": {s: [] for s in CHANGING}}
    for _ in range(rounds):
        before = _snapshot(inspect)
        acc["answers"].append(advance(inspect, seconds))
        after = _snapshot(inspect)
        acc["pairs"] = {s: acc["pairs"][s] + [(before[s], after[s])] for s in CHANGING}
        if until(acc):
            break
    return acc


def _email_gains(pairs) -> list[tuple[dict, dict]]:
    gains = []
    for before, after in pairs:
        old = {r["id"]: r for r in before["records"]}
        for record in after["records"]:
            prev = old.get(record["id"])
            if prev is None:
                continue
            counts, prev_counts = record.get("counts") or {}, prev.get("counts") or {}
            if any((counts.get(k) or 0) > (prev_counts.get(k) or 0) for k in ("views", "clicks", "replies")):
                gains.append((prev, record))
    return gains


def test_older_emails_gain_opens_and_replies_days_after_sending(inspect):
    acc = _collect_changes(inspect, 8, 6 * 3600, lambda a: any(
        instant(new["updated_at"]) - instant(new["sent_at"]) >= timedelta(days=1)
        for _, new in _email_gains(a["pairs"]["emails"]) if new.get("sent_at")
    ))
    gains = _email_gains(acc["pairs"]["emails"])
    assert gains, "no email gained views, clicks or replies"
    late = [new for _, new in gains
            if new.get("sent_at") and instant(new["updated_at"]) - instant(new["sent_at"]) >= timedelta(days=1)]
    assert late, "no email gained opens/replies a day or more after it was sent"
    for prev, new in gains:
        assert instant(new["updated_at"]) > instant(prev["updated_at"])


def test_people_are_edited_and_new_activities_appear(inspect):
    acc = _collect_changes(inspect, 4, 6 * 3600, lambda a: False)
    edited = 0
    for before, after in acc["pairs"]["people"]:
        old = {r["id"]: r for r in before["records"]}
        for record in after["records"]:
            prev = old.get(record["id"])
            if prev and {k: v for k, v in prev.items() if k != "updated_at"} != {
                k: v for k, v in record.items() if k != "updated_at"
            }:
                edited += 1
                assert instant(record["updated_at"]) > instant(prev["updated_at"])
    assert edited > 0, "no person was edited"
    created = {s: sum(a["created"].get(s, 0) for a in acc["answers"]) for s in CHANGING}
    assert created["emails"] > 0 and created["calls"] > 0, created
    assert sum(created[s] for s in ("meetings", "notes", "tasks", "cadence_memberships")) > 0, created


def test_deleted_records_vanish_and_memberships_get_person_deleted(client, inspect):
    acc = _collect_changes(
        inspect, 12, 12 * 3600, lambda a: any(set(after["deleted"]) - set(before["deleted"])
                                              for before, after in a["pairs"]["people"]))
    deleted_people = set()
    for before, after in acc["pairs"]["people"]:
        deleted_people |= set(after["deleted"]) - set(before["deleted"])
    assert deleted_people, "no person was deleted in 6 simulated days"
    any_deleted = {s: sum(a["deleted"].get(s, 0) for a in acc["answers"]) for s in CHANGING}
    live_people = truth_ids(inspect, "people")
    for person_id in deleted_people:
        assert person_id not in live_people
        assert client.get(f"/people/{person_id}").status_code == 404
        assert client.get(f"/people/{person_id}.json").json() == {"error": "Not Found"}
    listed = set(ids_of(walk(client, "people", per_page=100)))
    assert not (listed & deleted_people)
    memberships = truth(inspect, "cadence_memberships", full=True)["records"]
    theirs = [m for m in memberships if (m.get("person") or {}).get("id") in deleted_people]
    for membership in theirs:
        assert membership["person_deleted"] is True, membership
        served = client.get(f"/cadence_memberships/{membership['id']}").json()["data"]
        assert served["person_deleted"] is True
    others = [m for m in memberships if (m.get("person") or {}).get("id") in live_people]
    assert all(m["person_deleted"] is False for m in others)
    assert any_deleted["people"] >= len(deleted_people)


def test_live_mode_keeps_changing_the_world():
    with start_simulator(seed=9, people=40, days=3, budget=0, live=True, live_speed=3600) as live:
        with httpx.Client(base_url=live.url, timeout=30) as insp:
            start = {s: {r["id"]: r["updated_at"] for r in truth(insp, s)["records"]}
                     for s in ("people", "emails", "calls")}

            def changed():
                for s, old in start.items():
                    now = {r["id"]: r["updated_at"] for r in truth(insp, s)["records"]}
                    if now != old:
                        return True
                return False

            deadline = time.monotonic() + 45
            while not changed():
                assert time.monotonic() < deadline, "--live changed nothing in 45 s at 3600x"
                time.sleep(0.5)
            time.sleep(2)
            # Changes are timestamped at wall-clock time: nothing is updated in the future.
            now = datetime.now(timezone.utc) + timedelta(seconds=5)
            for s in ("people", "emails", "calls", "notes", "tasks", "meetings"):
                future = [r for r in truth(insp, s)["records"] if instant(r["updated_at"]) > now]
                assert not future, f"{s}: {len(future)} records updated after now, e.g. {future[:2]}"


def test_live_activity_can_be_paused_for_a_quiet_team_and_resumed() -> None:
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    # 12 simulated hours a real second: a team of 200 changes something every second.
    with Simulator(SimulatorConfig(seed=5, people=200, days=2, live=True, live_speed=43_200)).serve() as sim:
        def changes() -> int:
            return sum(len(httpx.get(f"{sim.url}/__sim/truth/{s}", timeout=30).json()["records"])
                       for s in ("emails", "calls", "notes"))

        assert httpx.post(f"{sim.url}/__sim/live", json={"paused": "yes"}, timeout=10).status_code == 422
        assert httpx.post(f"{sim.url}/__sim/live", json={"paused": True}, timeout=10).json() == {"live": True, "paused": True}
        time.sleep(1.5)  # a tick that may have begun before the pause ends
        quiet = changes()
        time.sleep(2.5)
        assert changes() == quiet
        assert httpx.post(f"{sim.url}/__sim/live", json={"paused": False}, timeout=10).json()["paused"] is False
        time.sleep(2.5)
        assert changes() > quiet
