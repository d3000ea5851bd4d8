"""Staging in a long-running deployment: requested over a partly loaded history,
merging only what changed, recording nothing when nothing did.

Against the simulator over loopback HTTP, on a real DuckDB file and the real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
import pytest
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.partitions import DAILY
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS, staging_asset_key
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

EMAILS = BY_NAME["emails"]
[RAW_EMAILS] = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(EMAILS)]
[STAGING_EMAILS] = [a for a in STAGING_ASSETS if a.key == staging_asset_key(EMAILS)]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(seed=23, people=80, days=4, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield str(tmp_path / "warehouse.duckdb")
    else:
        with fresh_database("slp_staging") as database:
            yield database


def resources(sim: Simulator, url: str) -> dict[str, object]:
    return {
        "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
        "warehouse": WarehouseResource(url=url),
    }


def load_days(sim: Simulator, url: str, instance: dg.DagsterInstance, first: date, last: date, force: bool = False) -> None:
    result = dg.materialize(
        [RAW_EMAILS],
        resources=resources(sim, url),
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config={"ops": {"salesloft__emails": {"config": {"force": force}}}},
    )
    assert result.success


def test_staging_is_requested_when_only_some_days_of_the_history_are_loaded(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    today = datetime.now(timezone.utc).date()
    assert len(DAILY.get_partition_keys()) > 30  # SALESLOFT_START_DATE is long before the days loaded
    with dg.DagsterInstance.ephemeral() as instance:
        defs = dg.Definitions(assets=[RAW_EMAILS, STAGING_EMAILS], resources=resources(sim, url))
        first_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first_tick.total_requested == 0
        load_days(sim, url, instance, today - timedelta(days=1), today)  # 2 of hundreds of days
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first_tick.cursor)
        assert tick.get_num_requested(STAGING_EMAILS.key) == 1
        # Handled: not asked for again until raw changes again.
        dg.materialize([STAGING_EMAILS], resources=resources(sim, url), instance=instance)
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert quiet.get_num_requested(STAGING_EMAILS.key) == 0


def test_a_staging_materialization_by_another_run_does_not_swallow_a_raw_update(sim: Simulator, tmp_path: Path) -> None:
    """A webhook apply merges the stream while the extraction is committing days: staging is still asked for."""
    url = str(tmp_path / "warehouse.duckdb")
    today = datetime.now(timezone.utc).date()
    with dg.DagsterInstance.ephemeral() as instance:
        defs = dg.Definitions(assets=[RAW_EMAILS, STAGING_EMAILS], resources=resources(sim, url))
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        load_days(sim, url, instance, today - timedelta(days=1), today)
        # What the webhook apply job logs after merging emails (defs/webhooks/jobs.py), from a run of its own.
        dg.materialize([STAGING_EMAILS], resources=resources(sim, url), instance=instance)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.get_num_requested(STAGING_EMAILS.key) == 1


def staging_materializations(instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(staging_asset_key(EMAILS), limit=100).records
    return [r.asset_materialization for r in records if r.asset_materialization is not None]


def test_a_reload_that_changes_nothing_leaves_staging_alone_and_a_change_is_merged(sim: Simulator, url: str) -> None:
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=4)
    with dg.DagsterInstance.ephemeral() as instance:
        load_days(sim, url, instance, first, today)
        assert dg.materialize([STAGING_EMAILS], resources=resources(sim, url), instance=instance).success
        [built] = staging_materializations(instance)
        assert built.metadata["build"].value == "full"

        # The schedule reads the same days again and finds the same versions.
        load_days(sim, url, instance, first, today, force=True)
        result = dg.materialize([STAGING_EMAILS], resources=resources(sim, url), instance=instance)
        assert result.success
        assert result.get_asset_materialization_events() == []
        assert len(staging_materializations(instance)) == 1

        # An hour of live changes in SalesLoft: only the changed emails are merged.
        changes = httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 3600}, timeout=60).json()
        touched = changes["created"].get("emails", 0) + changes["updated"].get("emails", 0)
        assert touched > 0
        load_days(sim, url, instance, today - timedelta(days=1), today)
        result = dg.materialize([STAGING_EMAILS], resources=resources(sim, url), instance=instance)
        [event] = result.get_asset_materialization_events()
        assert event.materialization.metadata["build"].value == "merged"
        assert 0 < event.materialization.metadata["ids_merged"].value <= touched

        # The merged table is exactly what a full rebuild gives.
        wh = open_warehouse(url)
        merged = sorted(wh.query("SELECT id, updated_at, status, views, replies FROM staging.emails"))
        build_staging(wh, EMAILS, force=True)
        assert sorted(wh.query("SELECT id, updated_at, status, views, replies FROM staging.emails")) == merged
        truth = httpx.get(f"{sim.url}/__sim/truth/emails", timeout=60).json()["records"]
        in_days = {r["id"] for r in truth if datetime.fromisoformat(r["updated_at"]).astimezone(timezone.utc).date() >= first}
        assert in_days <= {row[0] for row in merged}
