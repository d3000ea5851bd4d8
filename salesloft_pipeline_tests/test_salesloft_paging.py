"""Keyset and full-refresh paging against the simulator: exact id sets, exact windows, ties, cost 1."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from salesloft_pipeline.salesloft import STREAMS, SalesloftClient, extract
from salesloft_pipeline.salesloft.paging import format_instant, iter_records, parse_instant
from salesloft_pipeline.salesloft.streams import BY_NAME, CONVERSATIONS_SCOPE

# The key has Conversation Intelligence's scope, so conversations and transcriptions are read too;
# email_contents (the emails again, with a privileged scope) is tested in test_salesloft_client.
SIM = {"seed": 3, "people": 150, "days": 12, "budget": 0, "privileged_scopes": frozenset({CONVERSATIONS_SCOPE})}
READABLE = [s.name for s in STREAMS if s.name != "email_contents"]
INCREMENTAL = [s.name for s in STREAMS if s.incremental and s.name != "email_contents"]


def start_simulator(**options: Any):
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    return Simulator(SimulatorConfig(**{**SIM, **options})).serve()


@pytest.fixture(scope="module", params=[False, True], ids=["next-page-on-full-last", "exact-last-page"])
def sim(request: pytest.FixtureRequest) -> Iterator[Any]:
    with start_simulator(exact_last_page=request.param) as running:
        running.exact_last_page = request.param
        yield running


@pytest.fixture
def inspect(sim: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=60.0) as c:
        c.post("/__sim/stats/reset")
        yield c


@pytest.fixture
def client(sim: Any) -> Iterator[SalesloftClient]:
    with SalesloftClient(sim.api_key, sim.base_url, timeout=10.0) as c:
        yield c


def truth(inspect: httpx.Client, stream: str) -> list[dict[str, Any]]:
    return inspect.get(f"/__sim/truth/{stream}").json()["records"]


def versions(records: list[Any]) -> list[tuple[Any, datetime | None]]:
    return [(r.id, r.updated_at) for r in records]


def sorted_truth(inspect: httpx.Client, stream: str) -> list[tuple[datetime, Any]]:
    return sorted((parse_instant(r["updated_at"]), r["id"]) for r in truth(inspect, stream))


def test_instants_are_parsed_and_spelled_as_utc() -> None:
    moment = parse_instant("2021-09-16T11:03:06.789805-04:00")
    assert moment == parse_instant("2021-09-16T15:03:06.789805Z")
    assert format_instant(moment) == "2021-09-16T15:03:06.789805Z"
    assert parse_instant(None) is None and parse_instant("soon") is None


@pytest.mark.parametrize("stream", READABLE)
def test_every_stream_yields_exactly_the_ground_truth(
    stream: str, sim: Any, inspect: httpx.Client, client: SalesloftClient
) -> None:
    expected = {r["id"] for r in truth(inspect, stream)}
    extraction = extract(client, stream)
    ids = [r.id for r in extraction]
    assert extraction.invalid == []
    assert len(ids) == len(set(ids)), "a record was read twice"
    assert set(ids) == expected
    stats = inspect.get("/__sim/stats").json()
    assert set(stats["requests_by_cost"]) <= {"1"}, stats["requests_by_cost"]
    if BY_NAME[stream].incremental:
        assert stats["deepest_page"] <= 1


@pytest.mark.parametrize("stream", ["people", "emails", "cadence_memberships", "team_templates"])
def test_windows_are_exact_at_both_edges(stream: str, inspect: httpx.Client, client: SalesloftClient) -> None:
    rows = sorted_truth(inspect, stream)
    since, until = rows[len(rows) // 4][0], rows[3 * len(rows) // 4][0]
    expected = {rid for at, rid in rows if since <= at < until}
    # The bounds may be given in any offset: they are instants.
    eastern = timezone(timedelta(hours=-5))
    records = list(extract(client, stream, since.astimezone(eastern), until))
    assert {r.id for r in records} == expected
    assert len(records) == len(expected)
    # One microsecond either side moves exactly the edge records.
    tick = timedelta(microseconds=1)
    wider = {r.id for r in extract(client, stream, since - tick, until + tick)}
    assert wider == {rid for at, rid in rows if since - tick <= at <= until}


def test_an_exactly_full_last_page_is_neither_lost_nor_read_twice(
    sim: Any, inspect: httpx.Client, client: SalesloftClient
) -> None:
    rows = sorted_truth(inspect, "emails")
    assert len(rows) > 300
    # A window of exactly 100 records, whose edges are not shared with neighbours.
    start = next(
        i for i in range(1, len(rows) - 101)
        if rows[i - 1][0] < rows[i][0] < rows[i + 100][0] > rows[i + 99][0]
    )
    since, until = rows[start][0], rows[start + 100][0]
    ids = [r.id for r in extract(client, "emails", since, until)]
    assert sorted(ids, key=str) == sorted((rid for _, rid in rows[start : start + 100]), key=str)
    expected_requests = 1 if sim.exact_last_page else 2
    assert client.stats.requests == expected_requests


@pytest.mark.parametrize("at_lower_bound", [False, True], ids=["tie-inside-window", "tie-at-since"])
def test_250_records_sharing_one_updated_at_are_each_read_once(
    at_lower_bound: bool, inspect: httpx.Client, client: SalesloftClient
) -> None:
    ties = inspect.post("/__sim/ties", json={"stream": "emails", "count": 250}).json()
    tied_at = parse_instant(ties["updated_at"])
    assert len(ties["ids"]) == 250
    inspect.post("/__sim/stats/reset")
    rows = sorted_truth(inspect, "emails")
    before = [at for at, _ in rows if at < tied_at]
    since = tied_at if at_lower_bound else before[-30]
    records = list(extract(client, "emails", since))
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == {rid for at, rid in rows if at >= since}
    assert set(ties["ids"]) <= set(ids)
    stats = inspect.get("/__sim/stats").json()
    assert set(stats["requests_by_cost"]) == {"1"} and stats["deepest_page"] <= 3


def test_records_changed_during_a_sync_are_read_by_the_next_one(
    inspect: httpx.Client, client: SalesloftClient
) -> None:
    for stream in ("emails", "people", "opportunities", "opportunity_people", "conversations", "transcriptions",
                   "activity_histories"):
        first: list[tuple[Any, datetime | None]] = []
        midway = min(50, len(truth(inspect, stream)) // 2)  # a small team has a few opportunities
        for i, record in enumerate(extract(client, stream)):
            first.append((record.id, record.updated_at))
            if i == midway:
                changes = inspect.post("/__sim/advance", json={"seconds": 3 * 3600}).json()
                assert changes["updated"].get(stream) or changes["created"].get(stream)
        assert len(first) > midway, f"{stream}: the team changed during none of the sync"
        assert len(first) == len(set(first)), "a version was read twice"
        cursor = max(at for _, at in first if at is not None)
        second = versions(list(extract(client, stream, cursor)))
        assert len(second) == len(set(second))
        read = set(first) | set(second)
        for row in truth(inspect, stream):
            assert (row["id"], parse_instant(row["updated_at"])) in read, (stream, row)


def test_efficiency_is_close_to_100_records_per_unit_of_cost(
    inspect: httpx.Client, client: SalesloftClient
) -> None:
    # A stream no other test here edits: ties of more than a page cost a few extra requests.
    count = sum(1 for _ in iter_records(client, BY_NAME["crm_activities"]))
    assert count >= 300
    # Each page repeats at most the one record at its lower bound: 99 new records per unit of cost.
    assert client.stats.cost <= -(-count // 99) + 1


# -- edits between two given requests: the simulator cannot be made to do this on cue, so
# -- a minimal in-memory list endpoint (httpx.MockTransport) stands in for it here.
class ListEndpoint:
    """One SalesLoft list with updated_at filters, (updated_at, id) order, pages and counts."""

    def __init__(self, rows: dict[int, datetime], exact_last_page: bool = False) -> None:
        self.rows = rows
        self.exact_last_page = exact_last_page
        self.requests: list[dict[str, str]] = []
        self.before_request: Any = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if self.before_request:
            self.before_request(self, params)
        self.requests.append(params)
        tests = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
        bounds = [
            (tests[op], parse_instant(params[f"updated_at[{op}]"])) for op in tests if f"updated_at[{op}]" in params
        ]
        matching = sorted((at, rid) for rid, at in self.rows.items() if all(test(at, b) for test, b in bounds))
        page, per_page = int(params.get("page", 1)), int(params.get("per_page", 25))
        chunk = matching[(page - 1) * per_page : page * per_page]
        more = len(matching) > page * per_page or (not self.exact_last_page and len(chunk) == per_page)
        # Offsets vary between records, as on SalesLoft.
        data = [
            {"id": rid, "updated_at": at.astimezone(timezone(timedelta(hours=-(rid % 7)))).isoformat()}
            for at, rid in chunk
        ]
        paging = {"per_page": per_page, "current_page": page, "next_page": page + 1 if more else None,
                  "prev_page": page - 1 or None, "total_count": len(matching)}
        return httpx.Response(200, json={"metadata": {"paging": paging}, "data": data},
                              headers={"x-ratelimit-endpoint-cost": "1", "x-ratelimit-remaining-minute": "1000000"})


def fake_client(endpoint: ListEndpoint) -> SalesloftClient:
    return SalesloftClient("k", "http://salesloft.test/v2", transport=httpx.MockTransport(endpoint))


T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_a_tied_record_edited_during_the_tie_walk_does_not_hide_another() -> None:
    rows = {i: T0 for i in range(1, 251)} | {i: T0 + timedelta(seconds=i) for i in range(251, 300)}
    endpoint = ListEndpoint(rows)

    def edit_once(endpoint: ListEndpoint, params: dict[str, str]) -> None:
        # Right before page 2 of the tie walk, record 5 is edited: 101 moves onto page 1.
        if params.get("updated_at[lte]") and params.get("page") == "2" and endpoint.rows[5] == T0:
            endpoint.rows[5] = T0 + timedelta(hours=1)

    endpoint.before_request = edit_once
    with fake_client(endpoint) as client:
        seen = [(r["id"], parse_instant(r["updated_at"])) for r in iter_records(client, BY_NAME["people"], T0)]
    assert len(seen) == len(set(seen))
    assert {rid for rid, _ in seen} == set(rows)
    assert (5, T0 + timedelta(hours=1)) in seen  # the edited record, at its new version
    assert all(int(p.get("page", 1)) <= 3 for p in endpoint.requests)


@pytest.mark.parametrize("exact_last_page", [False, True])
def test_random_tie_patterns_and_windows_are_exact(exact_last_page: bool) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(
        offsets=st.lists(st.integers(0, 6), min_size=0, max_size=450).map(sorted),
        ties=st.lists(st.sampled_from([100, 101, 199, 200, 250]), max_size=2),
        window=st.tuples(st.integers(-1, 8), st.integers(0, 9)),
    )
    def check(offsets: list[int], ties: list[int], window: tuple[int, int]) -> None:
        instants = [T0 + timedelta(milliseconds=o) for o in offsets]
        for n, size in enumerate(ties):
            instants += [T0 + timedelta(milliseconds=3 + n)] * size
        rows = {i: at for i, at in enumerate(instants, start=1)}
        since, until = T0 + timedelta(milliseconds=window[0]), T0 + timedelta(milliseconds=window[1])
        endpoint = ListEndpoint(rows, exact_last_page)
        with fake_client(endpoint) as client:
            ids = [r["id"] for r in iter_records(client, BY_NAME["people"], since, until)]
        assert len(ids) == len(set(ids))
        assert set(ids) == {rid for rid, at in rows.items() if since <= at < until}
        assert all(int(p.get("page", 1)) <= 100 for p in endpoint.requests)

    check()
