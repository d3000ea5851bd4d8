"""`salesloft-pipeline doctor` against the simulator: one line per check, what to fix, no secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from salesloft_pipeline.cli import main
from salesloft_pipeline_tests.postgres import postgres_url  # noqa: F401 - fixture

SECRET = "whsec-doctor-test-0123456789"
SCOPE = "email_contents:read"
CONVERSATIONS = "conversations:read"  # Conversation Intelligence: conversations and transcriptions
GRANTED = frozenset({SCOPE, CONVERSATIONS})


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    """A simulator whose key was granted every scope beyond the default ones."""
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(people=30, days=3, budget=600, privileged_scopes=GRANTED)).serve() as s:
        yield s


@pytest.fixture(scope="module")
def unscoped_sim() -> Iterator[Any]:
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(people=30, days=3, budget=600)).serve() as s:
        yield s


def doctor(tmp_path: Path, **overrides: str | None) -> Any:
    env: dict[str, str | None] = {
        "SALESLOFT_PIPELINE_HOME": str(tmp_path / "home"),
        "SALESLOFT_WAREHOUSE_URL": str(tmp_path / "warehouse.duckdb"),
        "SALESLOFT_EVENTS_URL": str(tmp_path / "events.sqlite"),
        "SALESLOFT_WEBHOOK_SECRET": SECRET,
        "PGCONNECT_TIMEOUT": None,
    }
    env.update(overrides)
    return CliRunner().invoke(main, ["doctor"], env=env, catch_exceptions=False)


def lines(result: Any, level: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(level + " ")]


def api_env(sim: Any, api_key: str | None = None) -> dict[str, str]:
    return {"SALESLOFT_API_KEY": api_key or sim.api_key, "SALESLOFT_BASE_URL": sim.base_url}


def test_all_ok(sim: Any, tmp_path: Path) -> None:
    before = sim.stats.cost
    result = doctor(tmp_path, **api_env(sim))
    assert result.exit_code == 0, result.output
    assert not lines(result, "WARN") and not lines(result, "FAIL"), result.output
    ok = lines(result, "OK")
    assert len(ok) == 8, result.output  # key, zone, budget, the two scopes, warehouse, event store, secret
    assert "engagement days are counted in US/Eastern, the team's zone (the key's user's)" in result.output
    me = next(line for line in ok if "key accepted" in line)
    assert sim.base_url in me and "signed in as" in me and "@" in me
    assert re.search(r"API budget: \d+ cost left this minute", result.output)
    assert f"stream email_contents: scope {SCOPE} granted" in result.output
    assert f"streams conversations, transcriptions: scope {CONVERSATIONS} granted" in result.output
    assert f"duckdb:{tmp_path / 'warehouse.duckdb'}" in result.output and "(created" in result.output
    assert (tmp_path / "warehouse.duckdb").exists()
    assert f"sqlite:{tmp_path / 'events.sqlite'}" in result.output
    assert "webhook secret set" in result.output
    assert "0 FAIL" in result.output
    assert SECRET not in result.output and sim.api_key not in result.output
    assert sim.stats.cost - before == 3  # /me and one page of one item per scope: cheap on the team's budget


def test_the_reporting_zone_is_reported_and_a_bad_one_fails_naming_the_variable(sim: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_REPORTING_TIMEZONE="Asia/Kolkata")
    assert "engagement days are counted in Asia/Kolkata (from SALESLOFT_REPORTING_TIMEZONE;" in result.output
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_REPORTING_TIMEZONE="Eastern Time")
    assert result.exit_code == 1
    [fail] = lines(result, "FAIL")
    assert "SALESLOFT_REPORTING_TIMEZONE must be an IANA time zone name" in fail and "'Eastern Time'" in fail


def test_wrong_key_fails_naming_the_variable(sim: Any, tmp_path: Path) -> None:
    wrong = "not-the-key-5f3a9c0e17"
    result = doctor(tmp_path, **api_env(sim, api_key=wrong))
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert "SalesLoft refused the key in SALESLOFT_API_KEY" in fail
    assert "Fix:" in fail and "SALESLOFT_API_KEY" in fail.split("Fix:")[1]
    assert wrong not in result.output
    # The other checks still ran.
    assert "warehouse" in result.output and "event store" in result.output


def test_unset_key_fails(tmp_path: Path) -> None:
    result = doctor(tmp_path, SALESLOFT_API_KEY=None, SALESLOFT_BASE_URL="http://127.0.0.1:9/v2")
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert "SALESLOFT_API_KEY is not set" in fail


def test_missing_scope_warns(unscoped_sim: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, **api_env(unscoped_sim))
    assert result.exit_code == 0, result.output
    [contents, conversations] = lines(result, "WARN")
    assert f"stream email_contents will be skipped: the key lacks scope {SCOPE}" in contents
    assert f"grant scope {SCOPE} to the key in SALESLOFT_API_KEY" in contents
    assert f"streams conversations, transcriptions will be skipped: the key lacks scope {CONVERSATIONS}" in conversations
    assert f"grant scope {CONVERSATIONS} to the key in SALESLOFT_API_KEY to read conversations, transcriptions" in conversations
    assert "2 WARN, 0 FAIL" in result.output


def test_unreachable_base_url_fails_naming_it(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v2"
    result = doctor(tmp_path, SALESLOFT_API_KEY="some-key-1234", SALESLOFT_BASE_URL=url)
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert f"unreachable at {url}" in fail
    assert "SALESLOFT_BASE_URL" in fail.split("Fix:")[1]
    assert "some-key-1234" not in result.output


def test_low_budget_warns(tmp_path: Path) -> None:
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(people=10, days=2, budget=40, privileged_scopes=GRANTED)
    with Simulator(config).serve() as small:
        result = doctor(tmp_path, **api_env(small))
    assert result.exit_code == 0, result.output
    [warn] = lines(result, "WARN")
    assert "API budget: only 39 cost left this minute" in warn


def test_bad_warehouse_url_fails_without_its_password(sim: Any, tmp_path: Path) -> None:
    password = "hunter2-doctor-pw"
    url = f"postgresql://nobody:{password}@127.0.0.1:1/x"
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_WAREHOUSE_URL=url)
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert "warehouse postgresql://nobody:***@127.0.0.1:1/x unreachable" in fail
    assert "SALESLOFT_WAREHOUSE_URL" in fail.split("Fix:")[1]
    assert password not in result.output


def test_bad_warehouse_scheme_fails(sim: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_WAREHOUSE_URL="mysql://root:pw1234@db/x")
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert "SALESLOFT_WAREHOUSE_URL" in fail and "pw1234" not in result.output


def test_bad_event_store_fails_without_its_password(sim: Any, tmp_path: Path) -> None:
    password = "s3cret-events-pw"
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_EVENTS_URL=f"postgresql://nobody:{password}@127.0.0.1:1/x")
    assert result.exit_code == 1, result.output
    [fail] = lines(result, "FAIL")
    assert "event store postgresql://nobody:***@127.0.0.1:1/x unreachable" in fail
    assert "SALESLOFT_EVENTS_URL" in fail.split("Fix:")[1]
    assert password not in result.output


def test_missing_secret_warns(sim: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_WEBHOOK_SECRET=None)
    assert result.exit_code == 0, result.output
    [warn] = lines(result, "WARN")
    assert "SALESLOFT_WEBHOOK_SECRET is not set" in warn and "not be accepted" in warn


def test_default_warehouse_goes_under_the_home(sim: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_WAREHOUSE_URL=None, SALESLOFT_EVENTS_URL=None)
    assert result.exit_code == 0, result.output
    assert f"duckdb:{tmp_path / 'home' / 'warehouse.duckdb'}" in result.output
    assert f"sqlite:{tmp_path / 'home' / 'events.sqlite'}" in result.output


def test_postgres_warehouse_and_event_store(sim: Any, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    from sqlalchemy.engine import make_url

    # The test server trusts local connections: a password in the URL is accepted and must stay hidden.
    password = "pw-never-shown-42"
    url = make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    result = doctor(tmp_path, **api_env(sim), SALESLOFT_WAREHOUSE_URL=url, SALESLOFT_EVENTS_URL=url)
    assert result.exit_code == 0, result.output
    shown = make_url(url).render_as_string(hide_password=True)
    assert f"OK    warehouse {shown} answers" in result.output
    assert f"OK    event store {shown} answers" in result.output
    assert password not in result.output
