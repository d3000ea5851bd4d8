"""Write-back: only a 422 is SalesLoft's refusal of a row; any other failure stops the run and files nothing
as rejected. Against the simulator over loopback, with real DuckDB files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import httpx
import pytest

from salesloft_pipeline.defs.resources import WarehouseResource
from salesloft_pipeline.defs.writeback import enrollments, people
from salesloft_pipeline.defs.writeback.assets import writeback_people
from salesloft_pipeline.defs.writeback.sending import send_all
from salesloft_pipeline.salesloft import ApiError, SalesloftClient
from salesloft_pipeline.salesloft.auth import FileTokenStore, OAuthTokens
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.warehouse.writeback import Entry, Ledger
from salesloft_pipeline_tests.test_writeback import (
    load_staging,
    by_email,
    fill,
    ledger_rows,
    metadata,
    reset_stats,
    sl,
    stats,
    truth,
    unique,
    writes_sent,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(seed=41, people=40, days=2, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


@pytest.fixture
def busy_token_endpoint() -> Iterator[str]:
    """An OAuth token endpoint that answers every refresh 429 (a real loopback HTTP server)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps({"error": "rate_limited"}).encode()
            self.send_response(429)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/oauth/token"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def materialize(sim: Simulator, url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [writeback_people],
        resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)},
        raise_on_error=False,
    )


def faults(sim: Simulator, upcoming: list[str]) -> None:
    httpx.post(f"{sim.url}/__sim/faults", json={"next": upcoming, "slow_seconds": 0}).raise_for_status()


@pytest.mark.parametrize("status", ["403", "404", "400", "405", "409"])  # to a create
def test_a_refusal_other_than_422_stops_the_run_and_is_not_filed_rejected(
    sim: Simulator, tmp_path: Path, status: str
) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    emails = [f"{unique('status')}@example.com" for _ in range(3)]
    fill(url, [{"email_address": e, "title": "T"} for e in emails])
    reset_stats(sim)
    faults(sim, ["slow", status])  # the email lookup passes (slow by 0 s); the first write gets `status`
    first = materialize(sim, url)
    assert not first.success
    failure = str(first.all_events)
    assert f"HTTP {status} for POST people" in failure and "not a refusal of the row" in failure
    rows = ledger_rows(url, first.dagster_run.run_id)
    assert sorted(r["status"] for r in rows) == ["skipped", "skipped", "skipped"]
    assert [r["http_status"] for r in rows if r["http_status"]] == [int(status)]
    assert stats(sim)["write_outcomes"] == {}

    # Nothing was filed as refused: the next run sends all three.
    second = materialize(sim, url)
    assert second.success
    assert metadata(second, writeback_people.key)["still_rejected_not_resent"] == 0
    assert sorted(r["status"] for r in ledger_rows(url, second.dagster_run.run_id)) == ["ok", "ok", "ok"]
    assert all(len(by_email(sim)[e]) == 1 for e in emails)


@pytest.mark.parametrize("failure", ["unreachable", "busy", "invalid_grant"])
def test_a_failing_oauth_token_endpoint_stops_sending_and_files_nothing(
    sim: Simulator, tmp_path: Path, busy_token_endpoint: str, failure: str
) -> None:
    """The token is fetched inside httpx's auth flow, as the write is about to leave: its errors
    carry the token URL as their path and must not be taken for SalesLoft's answer to the write."""
    url = str(tmp_path / "warehouse.duckdb")
    wh = open_warehouse(url)
    ledger = Ledger(wh)
    emails = [f"{unique('oauth')}@example.com" for _ in range(3)]
    fill(url, [{"email_address": e, "title": "T"} for e in emails])
    with SalesloftClient(sim.api_key, sim.base_url) as api:
        plan = people.plan(api, wh, ledger, "run-1")
    assert len(plan.send) == 3

    token_url, refresh_token = {
        "unreachable": ("http://127.0.0.1:9/oauth/token", "sim-refresh-token"),  # nothing listens on port 9
        "busy": (busy_token_endpoint, "sim-refresh-token"),
        "invalid_grant": (f"{sim.url}/oauth/token", "not-a-refresh-token"),
    }[failure]
    tokens = OAuthTokens(
        "sim-client-id", "sim-client-secret", refresh_token, token_url=token_url, store=FileTokenStore(tmp_path / "t")
    )
    reset_stats(sim)
    with SalesloftClient(base_url=sim.base_url, token_source=tokens) as client:
        with pytest.raises(ApiError) as raised:
            send_all(client, ledger, plan.send)
    assert raised.value.path == token_url
    assert writes_sent(sim) == {}
    rows = ledger_rows(url, "run-1")
    assert sorted(r["status"] for r in rows) == ["skipped", "skipped", "skipped"]
    assert any("token endpoint" in (r["note"] or "") for r in rows)

    with SalesloftClient(sim.api_key, sim.base_url) as api:
        again = people.plan(api, wh, ledger, "run-2")
    assert (len(again.send), again.still_rejected) == (3, 0)


def test_a_later_success_lifts_an_earlier_refusal(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    person = sorted((p for p in truth(sim, "people").values() if p.get("email_address")), key=lambda p: p["id"])[5]
    # A user who is not the person's owner already, so the second run has a change to send.
    user = next(u for u in truth(sim, "users").values() if u["id"] != (person.get("owner") or {}).get("id"))
    email = person["email_address"]

    fill(url, [{"email_address": email, "owner_id": 987654321}])  # no such user: SalesLoft's 422
    first = materialize(sim, url)
    [refused] = ledger_rows(url, first.dagster_run.run_id)
    assert (refused["status"], refused["http_status"]) == ("rejected", 422)

    fill(url, [{"email_address": email, "owner_id": user["id"]}])
    second = materialize(sim, url)
    assert [r["status"] for r in ledger_rows(url, second.dagster_run.run_id)] == ["ok"]

    # Back to the refused value: SalesLoft's latest answer for this person was ok, so it is sent again.
    fill(url, [{"email_address": email, "owner_id": 987654321}])
    reset_stats(sim)
    third = materialize(sim, url)
    assert metadata(third, writeback_people.key)["still_rejected_not_resent"] == 0
    assert writes_sent(sim) == {"PUT /v2/people/{id}": 1}
    [again] = ledger_rows(url, third.dagster_run.run_id)
    assert again["request"] == {"owner_id": 987654321} and again["status"] == "rejected"

    # Unchanged: that refusal is the latest answer now, so it is not sent a fourth time.
    reset_stats(sim)
    fourth = materialize(sim, url)
    assert metadata(fourth, writeback_people.key)["still_rejected_not_resent"] == 1
    assert writes_sent(sim) == {}


def test_only_a_422_counts_as_still_rejected(sim: Simulator, tmp_path: Path) -> None:
    """Rows an earlier version filed `rejected` for a 403 (or any non-422) are planned again."""
    url = str(tmp_path / "warehouse.duckdb")
    wh = open_warehouse(url)
    ledger = Ledger(wh)
    person = sorted((p for p in truth(sim, "people").values() if p.get("email_address")), key=lambda p: p["id"])[6]
    cadence = sorted(truth(sim, "cadences").values(), key=lambda c: c["id"])[0]
    new = f"{unique('old403')}@example.com"
    fill(url, [{"email_address": new, "title": "T"}], [{"person_id": person["id"], "cadence_id": cadence["id"]}])
    enroll_body = {"person_id": person["id"], "cadence_id": cadence["id"]}
    old = datetime.now(timezone.utc) - timedelta(days=1)
    ledger.write(
        [
            Entry(
                "old",
                people.ASSET,
                new,
                "create",
                "rejected",
                "POST",
                "people",
                {"email_address": new, "title": "T"},
                http_status=403,
                answered_at=old,
            ),  # fmt: skip
            Entry(
                "old",
                enrollments.ASSET,
                f"{person['id']}:{cadence['id']}",
                "enroll",
                "rejected",
                "POST",
                "cadence_memberships",
                enroll_body,
                http_status=403,
                answered_at=old,
            ),  # fmt: skip
        ]
    )
    with SalesloftClient(sim.api_key, sim.base_url) as api:
        planned_people = people.plan(api, wh, ledger, "run-1")
        planned_enrollments = enrollments.plan(api, wh, ledger, "run-1")
    assert (len(planned_people.send), planned_people.still_rejected) == (1, 0)
    assert (len(planned_enrollments.send), planned_enrollments.still_rejected) == (1, 0)


def test_an_update_of_a_person_deleted_in_salesloft_is_unresolved_and_the_others_go_on(
    sim: Simulator, tmp_path: Path
) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url, ["people"])
    gone, kept = [p for p in truth(sim, "people").values() if p.get("email_address")][:2]
    httpx.post(f"{sim.url}/__sim/delete", json={"stream": "people", "id": gone["id"]}).raise_for_status()
    fresh = f"{unique('after-delete')}@example.com"
    tag = unique("title")
    fill(url, [{"email_address": gone["email_address"], "title": tag}, {"email_address": kept["email_address"],
              "title": tag}, {"email_address": fresh, "title": tag}])  # fmt: skip
    reset_stats(sim)
    result = materialize(sim, url)
    assert result.success
    rows = {r["row_key"]: r for r in ledger_rows(url, result.dagster_run.run_id)}
    assert rows[gone["email_address"].lower()]["status"] == "unresolved"
    assert rows[gone["email_address"].lower()]["http_status"] == 404
    assert "no longer exists" in rows[gone["email_address"].lower()]["note"]
    assert rows[kept["email_address"].lower()]["status"] == "ok" and rows[fresh]["status"] == "ok"
    assert truth(sim, "people")[kept["id"]]["title"] == tag
    assert gone["id"] not in truth(sim, "people") and len(by_email(sim)[fresh]) == 1
    assert not by_email(sim).get(gone["email_address"].lower())  # not recreated
