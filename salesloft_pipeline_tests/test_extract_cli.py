"""`salesloft-pipeline extract` against the simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from salesloft_pipeline.cli import main

SIM = {"seed": 9, "people": 100, "days": 10, "budget": 0}


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(**SIM)).serve() as running:
        yield running


def run(sim: Any, *args: str, api_key: str | None = None) -> Any:
    env = {"SALESLOFT_API_KEY": api_key or sim.api_key, "SALESLOFT_BASE_URL": sim.base_url}
    return CliRunner().invoke(main, ["extract", *args], env=env, catch_exceptions=False)


def truth(sim: Any, stream: str) -> list[dict[str, Any]]:
    return httpx.get(f"{sim.url}/__sim/truth/{stream}", timeout=30).json()["records"]


def summary_of(result: Any) -> dict[str, Any]:
    return json.loads(result.stderr.strip().splitlines()[-1])


def test_extract_writes_json_lines_and_a_summary(sim: Any) -> None:
    result = run(sim, "people")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["id"] for r in records} == {r["id"] for r in truth(sim, "people")}
    summary = summary_of(result)
    assert summary["records"] == len(records)
    assert summary["requests"] >= 1 and summary["api_cost"] == summary["requests"]
    assert summary["rate_limited"] == 0
    # Timestamps come out in UTC.
    assert all(r["updated_at"].endswith("Z") for r in records)


def test_since_and_until_select_an_exact_window(sim: Any) -> None:
    rows = sorted((datetime.fromisoformat(r["updated_at"]), r["id"]) for r in truth(sim, "emails"))
    since, until = rows[len(rows) // 3][0], rows[2 * len(rows) // 3][0]
    since_text = since.astimezone(timezone(timedelta(hours=-4))).isoformat(timespec="microseconds")
    result = run(sim, "emails", "--since", since_text, "--until", until.isoformat())
    assert result.exit_code == 0, result.stderr
    ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert sorted(ids) == sorted(rid for at, rid in rows if since <= at < until)


def test_out_writes_to_a_file(sim: Any, tmp_path: Path) -> None:
    out = tmp_path / "groups.jsonl"
    result = run(sim, "groups", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    ids = {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert ids == {r["id"] for r in truth(sim, "groups")}


def test_a_refused_key_says_so_and_never_shows_it(sim: Any) -> None:
    key = "not-the-right-key-4711"
    result = run(sim, "people", api_key=key)
    assert result.exit_code == 1
    assert "refused" in result.stderr and "SALESLOFT_API_KEY" in result.stderr
    assert key not in result.stderr + result.stdout


def test_a_missing_key_names_the_variable(sim: Any) -> None:
    result = CliRunner().invoke(main, ["extract", "people"], env={"SALESLOFT_API_KEY": ""})
    assert result.exit_code == 1 and "SALESLOFT_API_KEY" in result.stderr


def test_an_unknown_stream_lists_the_known_ones(sim: Any) -> None:
    result = run(sim, "nope")
    assert result.exit_code == 2 and "people" in result.stderr


def test_a_stream_without_its_scope_is_skipped_with_the_scope_named(sim: Any) -> None:
    result = run(sim, "email_contents")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "email_contents" in summary_of(result)["skipped"]


# The streams issue 13 added to the registry (the widest open connector's, and the revenue ones).
ADDED_STREAMS = (
    "opportunities", "opportunity_people", "opportunity_stages", "activity_histories", "calendar_events",
    "conversations", "transcriptions", "tags", "saved_list_views", "custom_roles", "account_types",
    "account_team_member_roles", "crm_activity_fields", "crm_account_team_members", "call_instructions",
    "pending_emails", "audit_reports", "external_configurations", "external_mappings", "webhook_subscriptions",
    "signals_registrations", "registrations_plays",
)


def key_of(record: dict[str, Any]) -> Any:
    return record.get("id", record.get("name"))  # account types have no id: their name is the key


@pytest.mark.parametrize("stream", [s for s in ADDED_STREAMS if s not in ("conversations", "transcriptions")])
def test_extract_reads_every_record_of_each_added_stream(sim: Any, stream: str) -> None:
    result = run(sim, stream)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {key_of(r) for r in truth(sim, stream)}
    assert expected, f"the simulated team has no {stream}"
    assert [key_of(r) for r in records] and {key_of(r) for r in records} == expected
    assert len(records) == len(expected)
    summary = summary_of(result)
    assert summary["records"] == len(records) and summary["api_cost"] == summary["requests"]


@pytest.mark.parametrize("stream", ["conversations", "transcriptions"])
def test_conversation_intelligence_is_skipped_without_its_scope_and_read_with_it(sim: Any, stream: str) -> None:
    result = run(sim, stream)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "conversations:read" in summary_of(result)["skipped"]
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(**SIM, privileged_scopes=frozenset({"conversations:read"}))).serve() as granted:
        result = run(granted, stream)
        assert result.exit_code == 0, result.stderr
        ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
        assert ids and set(ids) == {r["id"] for r in truth(granted, stream)}
        assert all(isinstance(i, str) for i in ids)


def test_webhook_subscriptions_are_read_without_their_signing_secret(sim: Any) -> None:
    served = httpx.get(f"{sim.url}/__sim/truth/webhook_subscriptions?full=true", timeout=30).json()["records"]
    assert served and all(r.get("callback_token") for r in served)  # SalesLoft sends each one's secret
    result = run(sim, "webhook_subscriptions")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(served) and all("callback_token" not in r for r in records)
    for secret in {r["callback_token"] for r in served}:
        assert secret not in result.stdout and secret not in result.stderr
