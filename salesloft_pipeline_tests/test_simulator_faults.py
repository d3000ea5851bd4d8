"""Fault injection (docs/simulator.md, "Faults"): set at start (--fault-rate)
or at run time through POST /__sim/faults; 5xx, slow, dropped and truncated
answers, counted under /__sim/stats."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from salesloft_pipeline_tests.conftest import (
    api_client,
    reset_stats,
    set_faults,
    start_simulator,
    stats,
)

SIM_OPTIONS = {"people": 30, "days": 3, "budget": 0}


@pytest.fixture(autouse=True)
def _no_faults_after(inspect):
    yield
    set_faults(inspect)


def is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
        return True
    except orjson.JSONDecodeError:
        return False


def test_fault_settings_are_replaced_and_reported(inspect):
    answer = set_faults(inspect, next=["500", "slow"], rate=0.25, kinds=["5xx", "drop"], slow_seconds=1.5)
    assert answer["next"] == ["500", "slow"]
    assert answer["rate"] == 0.25
    assert sorted(answer["kinds"]) == ["5xx", "drop"]
    assert answer["slow_seconds"] == 1.5
    current = inspect.get("/__sim/faults")
    assert current.status_code == 200
    assert current.json()["next"] == ["500", "slow"] and current.json()["rate"] == 0.25
    # POST replaces everything: keys left out go back to their defaults.
    cleared = set_faults(inspect, next=["503"])
    assert cleared["next"] == ["503"] and cleared["rate"] == 0.0
    assert cleared["external_spend"] == 0
    assert inspect.get("/__sim/faults").json()["rate"] == 0.0


@pytest.mark.parametrize("status", ["500", "502", "503", "504", "429"])
def test_next_status_fault_then_normal(client, inspect, status):
    reset_stats(inspect)
    set_faults(inspect, next=[status])
    faulty = client.get("/people")
    assert faulty.status_code == int(status)
    body = faulty.json()
    assert isinstance(body, dict) and ("error" in body or "errors" in body), body
    after = client.get("/people")
    assert after.status_code == 200 and is_json(after.content)
    assert stats(inspect)["faults_injected"].get("status", 0) == 1
    assert inspect.get("/__sim/faults").json()["next"] == []


def test_next_faults_come_in_order_one_per_request(client, inspect):
    set_faults(inspect, next=["500", "503", "truncate"], slow_seconds=1.0)
    first, second, third, fourth = (client.get("/people") for _ in range(4))
    assert first.status_code == 500
    assert second.status_code == 503
    assert third.status_code == 200 and not is_json(third.content)
    assert fourth.status_code == 200 and is_json(fourth.content)


def test_slow_fault_delays_the_answer(client, inspect):
    reset_stats(inspect)
    set_faults(inspect, next=["slow"], slow_seconds=1.5)
    started = time.monotonic()
    slow = client.get("/people")
    elapsed = time.monotonic() - started
    assert slow.status_code == 200 and is_json(slow.content)
    assert elapsed >= 1.4, f"slow fault answered in {elapsed:.2f}s"
    assert stats(inspect)["faults_injected"].get("slow", 0) == 1


def test_drop_fault_closes_the_connection(sim, inspect):
    reset_stats(inspect)
    set_faults(inspect, next=["drop"])
    with api_client(sim) as c:
        with c.stream("GET", "/people") as response:
            assert response.status_code == 200, "drop closes the connection after the headers"
            with pytest.raises(httpx.TransportError):
                response.read()
    with api_client(sim) as c:
        assert c.get("/people").status_code == 200
    assert stats(inspect)["faults_injected"].get("drop", 0) == 1


def test_truncate_fault_sends_a_200_with_a_cut_json_body(client, inspect):
    reset_stats(inspect)
    whole = client.get("/people", params={"per_page": 50}).content
    set_faults(inspect, next=["truncate"])
    cut = client.get("/people", params={"per_page": 50})
    assert cut.status_code == 200
    assert cut.content, "truncated body is empty"
    assert not is_json(cut.content)
    assert len(cut.content) < len(whole)
    assert stats(inspect)["faults_injected"].get("truncate", 0) == 1


def test_faults_apply_to_single_records_and_json_paths(client, inspect):
    set_faults(inspect, next=["500", "500"])
    assert client.get("/people.json").status_code == 500
    assert client.get("/accounts").status_code == 500
    assert client.get("/accounts").status_code == 200


def test_random_5xx_at_rate_one_and_none_at_rate_zero(client, inspect):
    reset_stats(inspect)
    set_faults(inspect, rate=1.0, kinds=["5xx"])
    statuses = [client.get("/people").status_code for _ in range(20)]
    assert all(500 <= s <= 599 for s in statuses), statuses
    assert stats(inspect)["faults_injected"].get("status", 0) == 20
    set_faults(inspect, rate=0.0)
    assert all(client.get("/people").status_code == 200 for _ in range(20))


def test_random_fault_rate_is_a_share_of_requests(client, inspect):
    set_faults(inspect, rate=0.5, kinds=["5xx"])
    statuses = [client.get("/people").status_code for _ in range(200)]
    faults = sum(1 for s in statuses if s >= 500)
    assert 55 <= faults <= 145, f"{faults} faults in 200 requests at rate 0.5"


def test_random_kinds_are_respected(sim, inspect):
    reset_stats(inspect)
    set_faults(inspect, rate=1.0, kinds=["truncate"])
    with api_client(sim) as c:
        for _ in range(5):
            response = c.get("/people")
            assert response.status_code == 200 and not is_json(response.content)
    counted = stats(inspect)["faults_injected"]
    assert counted.get("truncate", 0) == 5 and counted.get("status", 0) == 0 and counted.get("drop", 0) == 0


def test_sim_endpoints_never_get_faults(inspect):
    set_faults(inspect, rate=1.0, kinds=["5xx", "drop", "truncate"])
    for _ in range(10):
        response = inspect.get("/__sim/stats")
        assert response.status_code == 200 and is_json(response.content)


def test_fault_rate_given_at_start():
    with start_simulator(seed=6, people=15, days=2, budget=0, fault_rate=1.0) as other:
        with httpx.Client(base_url=other.url, timeout=30) as insp:
            settings = insp.get("/__sim/faults").json()
            assert settings["rate"] == 1.0
        with api_client(other, timeout=1.0) as c:
            for _ in range(6):
                try:
                    response = c.get("/people")
                except httpx.TransportError:  # dropped, or slow past our timeout
                    continue
                assert response.status_code >= 500 or not is_json(response.content), response.status_code
