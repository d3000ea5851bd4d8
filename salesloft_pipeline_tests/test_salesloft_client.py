"""The client: pacing, retries, typed errors and secrecy, over loopback HTTP against the simulator."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import httpx
import pytest

from salesloft_pipeline.salesloft import (
    ApiError,
    AuthError,
    ConfigError,
    Extraction,
    Pacer,
    RateLimitError,
    SalesloftClient,
    TransportError,
    extract,
)

SIM = {"seed": 5, "people": 120, "days": 10, "budget": 0}


def start_simulator(**options: Any):
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    return Simulator(SimulatorConfig(**{**SIM, **options})).serve()


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with start_simulator() as running:
        yield running


@pytest.fixture
def inspect(sim: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=60.0) as c:
        c.post("/__sim/faults", json={"next": [], "rate": 0.0, "external_spend": 0, "spend_now": 0})
        c.post("/__sim/budget", json={"budget": 0, "window_seconds": 2})
        c.post("/__sim/stats/reset")
        yield c
        c.post("/__sim/faults", json={"next": [], "rate": 0.0, "external_spend": 0, "spend_now": 0})
        c.post("/__sim/budget", json={"budget": 0, "window_seconds": 2})


def make_client(sim: Any, **options: Any) -> SalesloftClient:
    options = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0, **options}
    return SalesloftClient(sim.api_key, sim.base_url, **options)


def truth_ids(inspect: httpx.Client, stream: str) -> set[Any]:
    return {r["id"] for r in inspect.get(f"/__sim/truth/{stream}").json()["records"]}


def read_all(client: SalesloftClient, stream: str) -> list[Any]:
    return [record.id for record in extract(client, stream)]


def sim_stats(inspect: httpx.Client) -> dict[str, Any]:
    return inspect.get("/__sim/stats").json()


# -- pacing, on a simulated clock ------------------------------------------------------
class FakeTeamBudget:
    """A fixed-window budget on a server whose clock runs `skew` seconds ahead of ours."""

    def __init__(self, budget: int, window: float, skew: float = 0.0, external_per_window: int = 0) -> None:
        self.budget, self.window, self.skew = budget, window, skew
        self.external_per_window = external_per_window
        self.now = 1_000_000.37  # local clock
        self.spent: dict[int, int] = {}
        self.rate_limited = 0

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def server_time(self) -> float:
        return self.now + self.skew

    def request(self, pacer: Pacer) -> None:
        pacer.wait_turn(1)
        sent = self.now
        self.now += random.uniform(0.0005, 0.002)
        window = int(self.server_time() // self.window)
        external = int(self.external_per_window * ((self.server_time() % self.window) / self.window))
        left = self.budget - self.spent.get(window, 0) - external
        headers = {"x-ratelimit-endpoint-cost": "1", "date": formatdate(self.server_time(), usegmt=True)}
        if left < 1:
            self.rate_limited += 1
            headers["x-ratelimit-remaining-minute"] = str(max(0, left))
        else:
            self.spent[window] = self.spent.get(window, 0) + 1
            headers["x-ratelimit-remaining-minute"] = str(left - 1)
        self.now += random.uniform(0.0005, 0.002)
        pacer.observe(headers, sent, self.now, rate_limited=left < 1)


@pytest.mark.parametrize("skew", [0.0, 3.7, -41.2])
@pytest.mark.parametrize("window", [1.0, 10.0, 60.0])
def test_pacer_alone_uses_its_share_and_never_gets_a_429(skew: float, window: float) -> None:
    random.seed(1)
    team = FakeTeamBudget(budget=100, window=window, skew=skew)
    pacer = Pacer(share=0.9, window_seconds=window, clock=lambda: team.now, sleep=team.sleep)
    for _ in range(2000):
        team.request(pacer)
    assert team.rate_limited == 0
    full_windows = sorted(team.spent)[1:-1]
    assert max(team.spent.values()) <= 90
    # Every window in between gets the whole share: none is skipped.
    assert all(team.spent.get(w) == 90 for w in range(full_windows[0], full_windows[-1] + 1))


def test_pacer_waits_for_the_window_when_the_team_spends_the_budget() -> None:
    random.seed(2)
    team = FakeTeamBudget(budget=100, window=10.0, external_per_window=60)
    pacer = Pacer(share=0.9, window_seconds=10.0, clock=lambda: team.now, sleep=team.sleep)
    for _ in range(500):
        team.request(pacer)
    # What others spend comes out of what is left; the reserve absorbs their spending between our requests.
    assert team.rate_limited == 0
    assert max(team.spent.values()) <= 90


def test_pacer_reserve_follows_the_budget_it_learns() -> None:
    pacer = Pacer(share=0.9, window_seconds=60)
    pacer.observe({"x-ratelimit-remaining-minute": "599", "x-ratelimit-endpoint-cost": "1"}, 0.0, 0.1)
    assert pacer.reserve == 60
    assert Pacer(share=0.75, budget=600).reserve == 150


# -- client against the simulator ------------------------------------------------
def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESLOFT_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SALESLOFT_API_KEY"):
        SalesloftClient()


def test_settings_come_from_the_environment(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLOFT_API_KEY", sim.api_key)
    monkeypatch.setenv("SALESLOFT_BASE_URL", sim.base_url)
    with SalesloftClient() as client:
        assert client.base_url == sim.base_url
        assert client.get("people", [("per_page", 1)]).status == 200
    monkeypatch.delenv("SALESLOFT_BASE_URL")
    with SalesloftClient() as client:
        assert client.base_url == "https://api.salesloft.com/v2"


def test_requests_carry_the_user_agent_and_a_bearer_token(sim: Any) -> None:
    seen: list[httpx.Request] = []
    with make_client(sim) as client:
        client._http.event_hooks["request"].append(seen.append)
        client.get("people", [("per_page", 1)])
    assert seen[0].headers["user-agent"].startswith("salesloft-pipeline/")
    assert seen[0].headers["authorization"] == f"Bearer {sim.api_key}"


def test_401_says_the_key_was_refused_and_names_the_variable(sim: Any, inspect: httpx.Client) -> None:
    token = "wrong-secret-token-123"
    with SalesloftClient(token, sim.base_url) as client:
        with pytest.raises(AuthError) as raised:
            list(extract(client, "people"))
    message = str(raised.value)
    assert "refused" in message and "SALESLOFT_API_KEY" in message and "people" in message
    assert raised.value.status == 401 and raised.value.attempts == 1
    assert token not in message and token not in repr(raised.value)


def test_5xx_bursts_are_retried_without_loss_or_duplicates(sim: Any, inspect: httpx.Client) -> None:
    expected = truth_ids(inspect, "people")
    inspect.post("/__sim/faults", json={"next": ["503", "500", "502", "503"]})
    with make_client(sim) as client:
        ids = read_all(client, "people")
        assert client.stats.retries == 4
    assert len(ids) == len(set(ids)) and set(ids) == expected
    stats = sim_stats(inspect)
    assert stats["deepest_page"] <= 1 and set(stats["requests_by_cost"]) == {"1"}


@pytest.mark.parametrize("fault", ["slow", "drop", "truncate"])
def test_timeouts_dropped_connections_and_truncated_bodies_are_retried(
    sim: Any, inspect: httpx.Client, fault: str
) -> None:
    expected = truth_ids(inspect, "emails")
    inspect.post("/__sim/faults", json={"next": [fault, fault], "slow_seconds": 2.0})
    with make_client(sim, timeout=0.5) as client:
        ids = read_all(client, "emails")
        assert client.stats.retries == 2
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_random_faults_lose_and_duplicate_nothing(sim: Any, inspect: httpx.Client) -> None:
    expected = truth_ids(inspect, "cadence_memberships")
    inspect.post(
        "/__sim/faults",
        json={"rate": 0.3, "kinds": ["5xx", "slow", "drop", "truncate"], "slow_seconds": 1.0},
    )
    with make_client(sim, timeout=0.3, max_attempts=10) as client:
        ids = read_all(client, "cadence_memberships")
        assert client.stats.retries > 0
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_when_5xx_retries_run_out_the_error_names_status_path_and_attempts(
    sim: Any, inspect: httpx.Client
) -> None:
    inspect.post("/__sim/faults", json={"next": ["500"] * 3})
    with make_client(sim, max_attempts=3) as client:
        with pytest.raises(ApiError) as raised:
            list(extract(client, "calls"))
    error = raised.value
    assert (error.status, error.path, error.attempts) == (500, "activities/calls", 3)
    assert "HTTP 500" in str(error) and "activities/calls" in str(error) and "3 attempts" in str(error)


def test_when_transport_retries_run_out_the_error_is_typed(sim: Any, inspect: httpx.Client) -> None:
    inspect.post("/__sim/faults", json={"next": ["drop", "truncate", "drop"]})
    with make_client(sim, max_attempts=3) as client:
        with pytest.raises(TransportError) as raised:
            list(extract(client, "notes"))
    assert raised.value.attempts == 3 and raised.value.path == "notes" and raised.value.status is None
    assert "after 3 attempts" in str(raised.value)


def test_422_is_not_retried(sim: Any, inspect: httpx.Client) -> None:
    with make_client(sim) as client:
        with pytest.raises(ApiError) as raised:
            client.get("people", [("sort_by", "nonsense")])
        assert client.stats.requests == 1
    assert raised.value.status == 422 and raised.value.attempts == 1


def test_a_429_from_budget_spent_elsewhere_waits_for_the_window(sim: Any, inspect: httpx.Client) -> None:
    expected = truth_ids(inspect, "emails")
    inspect.post("/__sim/budget", json={"budget": 40, "window_seconds": 1})
    with make_client(sim, window_seconds=1) as client:
        client.get("people", [("per_page", 1)])  # the pacer learns the budget
        inspect.post("/__sim/faults", json={"spend_now": 40})
        ids = read_all(client, "emails")
        assert client.stats.rate_limited >= 1
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_rate_limit_error_when_the_budget_never_comes_back(sim: Any, inspect: httpx.Client) -> None:
    inspect.post("/__sim/faults", json={"next": ["429", "429", "429"]})
    with make_client(sim, window_seconds=1, max_rate_limit_waits=2) as client:
        with pytest.raises(RateLimitError) as raised:
            client.get("people")
    assert raised.value.status == 429 and "people" in str(raised.value)


def test_alone_the_client_never_causes_a_429_and_keeps_the_reserve(sim: Any, inspect: httpx.Client) -> None:
    streams = ["emails", "calls", "people", "actions"]
    expected = {stream: truth_ids(inspect, stream) for stream in streams}
    budget, window = 5, 1
    inspect.post("/__sim/budget", json={"budget": budget, "window_seconds": window})
    inspect.post("/__sim/stats/reset")
    with make_client(sim, window_seconds=window) as client:
        for stream in streams:
            assert set(read_all(client, stream)) == expected[stream]
        requests = client.stats.requests
        assert client.stats.rate_limited == 0
    assert requests > 2 * budget  # the extraction needed several windows
    assert sim_stats(inspect)["rate_limited"] == 0


def test_the_pacer_keeps_its_share_per_window(sim: Any, inspect: httpx.Client) -> None:
    budget, window = 20, 1
    inspect.post("/__sim/budget", json={"budget": budget, "window_seconds": window})
    sent_in_window: dict[int, int] = {}
    with make_client(sim, window_seconds=window, budget_share=0.5) as client:

        def count(response: httpx.Response) -> None:
            remaining = int(response.headers["x-ratelimit-remaining-minute"])
            w = int(parsedate_to_datetime(response.headers["date"]).timestamp() // window)
            sent_in_window[w] = max(sent_in_window.get(w, 0), budget - remaining)

        client._http.event_hooks["response"].append(count)
        for _ in range(40):
            client.get("people", [("per_page", 1)])
    assert len(sent_in_window) >= 3
    assert max(sent_in_window.values()) <= math.ceil(budget * 0.5)


def test_missing_scope_skips_only_that_stream(sim: Any, inspect: httpx.Client) -> None:
    with make_client(sim) as client:
        contents = extract(client, "email_contents")
        assert list(contents) == []
        assert contents.skipped and "email_contents" in contents.skipped and "scope" in contents.skipped
        # The others carry on.
        assert set(read_all(client, "emails")) == truth_ids(inspect, "emails")


def test_with_the_scope_email_contents_carry_the_subject() -> None:
    with start_simulator(privileged_scopes=frozenset({"email_contents:read"})) as sim:
        with make_client(sim) as client:
            extraction = Extraction(client, "email_contents")
            records = list(extraction)
        with httpx.Client(base_url=sim.url) as inspect:
            expected = truth_ids(inspect, "emails")
    assert records and extraction.skipped is None
    assert all(isinstance(r.subject, str) for r in records)
    # The same ground truth as emails: every email once.
    assert sorted(r.id for r in records) == sorted(expected)


def test_the_token_appears_in_no_log_exception_or_repr(
    sim: Any, inspect: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = sim.api_key
    texts: list[str] = []
    inspect.post("/__sim/faults", json={"next": ["503", "drop", "truncate", "slow"], "slow_seconds": 1.0})
    with make_client(sim, timeout=0.3) as client:
        texts += [repr(client), str(client.__dict__), repr(client.pacer), repr(client._http.auth)]
        list(extract(client, "people"))
        inspect.post("/__sim/faults", json={"next": ["500"] * 5})
        with pytest.raises(ApiError) as raised:
            list(extract(client, "people"))
        texts += [str(raised.value), repr(raised.value), repr(raised.value.__cause__)]
    with SalesloftClient(secret + "x", sim.base_url) as refused:
        with pytest.raises(AuthError) as refused_error:
            refused.get("people")
        texts += [str(refused_error.value), repr(refused)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)
    for text in texts:
        assert secret not in text
