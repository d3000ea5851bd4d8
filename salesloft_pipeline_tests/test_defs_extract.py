"""The Dagster extraction and staging assets against the simulator, on a real DuckDB file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.salesloft import STREAMS, BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse

DAYS = 6
# The scope-gated email_contents stream reads the same emails; the simulator's
# key lacks the scope, so that asset loads nothing (tested separately).
SIMULATED = [s for s in STREAMS if s.required_scope is None]


def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(timezone.utc)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    config = SimulatorConfig(seed=11, people=120, days=DAYS, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


def resources(sim: Simulator, path: Path) -> dict[str, object]:
    return {
        "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
        "warehouse": WarehouseResource(url=str(path)),
    }


def history_range(sim: Simulator) -> tuple[date, date]:
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    return first, datetime.now(timezone.utc).date()


def materialize_range(sim: Simulator, path: Path, keys: list[dg.AssetKey], first: date, last: date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [a for a in EXTRACT_ASSETS if a.key in keys],
        resources=resources(sim, path),
        tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
    )


def materialize_unpartitioned(sim: Simulator, path: Path, assets: list[dg.AssetsDefinition]) -> None:
    assert dg.materialize(assets, resources=resources(sim, path)).success


def truth(sim: Simulator, stream: str) -> dict[object, datetime | None]:
    answer = httpx.get(f"{sim.url}/__sim/truth/{stream}", timeout=60).json()
    return {r["id"]: _utc(r["updated_at"]) for r in answer["records"]}


def staging(path: Path, stream: str) -> dict[object, datetime | None]:
    rows = open_warehouse(str(path)).query(f"SELECT id, updated_at FROM staging.{stream}")
    return {record_id: updated_at for record_id, updated_at in rows}


def load_everything(sim: Simulator, path: Path) -> None:
    first, last = history_range(sim)
    incremental = [raw_asset_key(s) for s in SIMULATED if s.incremental]
    assert materialize_range(sim, path, incremental, first, last).success
    materialize_unpartitioned(sim, path, [a for a in EXTRACT_ASSETS if a.key in {raw_asset_key(s) for s in SIMULATED if not s.incremental}])
    materialize_unpartitioned(sim, path, STAGING_ASSETS)


def test_definitions_load() -> None:
    from salesloft_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"salesloft/{s.name}" for s in STREAMS} <= keys
    assert {f"staging/{s.name}" for s in STREAMS} <= keys


def test_staging_equals_the_simulators_ground_truth_for_every_stream(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    load_everything(sim, path)
    for stream in SIMULATED:
        expected, actual = truth(sim, stream.name), staging(path, stream.name)
        assert set(actual) == set(expected), stream.name
        assert actual == expected, f"{stream.name}: latest updated_at differs"


def test_reruns_and_overlapping_ranges_never_duplicate_and_keep_the_latest_version(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    first, last = history_range(sim)
    keys = [raw_asset_key(BY_NAME["emails"]), raw_asset_key(BY_NAME["people"])]
    assert materialize_range(sim, path, keys, first, last).success
    assert materialize_range(sim, path, keys, first + timedelta(days=2), last).success  # overlaps
    httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 4 * 3600}, timeout=60).raise_for_status()
    assert materialize_range(sim, path, keys, last - timedelta(days=1), last).success
    staging_assets = [a for a in STAGING_ASSETS if a.key.path[-1] in ("emails", "people")]
    materialize_unpartitioned(sim, path, staging_assets)
    wh = open_warehouse(str(path))
    for stream in ("emails", "people"):
        [(duplicates,)] = wh.query(
            f"SELECT count(*) FROM (SELECT _partition, id FROM raw.{stream} GROUP BY 1, 2 HAVING count(*) > 1) AS d"
        )
        assert duplicates == 0
        expected = truth(sim, stream)
        actual = staging(path, stream)
        # Polling never sees deletes (webhooks do): every live record is there, in its latest version.
        assert {i: actual.get(i) for i in expected} == expected


def test_a_rerun_of_a_complete_range_costs_nothing(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    last = first + timedelta(days=2)  # days that ended long ago: complete once loaded
    keys = [raw_asset_key(BY_NAME["calls"])]
    assert materialize_range(sim, path, keys, first, last).success
    before = httpx.get(f"{sim.url}/__sim/stats").json()["cost"]
    result = materialize_range(sim, path, keys, first, last)
    assert result.success
    assert httpx.get(f"{sim.url}/__sim/stats").json()["cost"] == before
    metadata = [e.materialization.metadata for e in result.get_asset_materialization_events()]
    assert metadata and all(m["days_loaded"].value == 0 for m in metadata)


def test_full_refresh_marks_records_missing_from_the_list_as_deleted(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    steps = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["steps"])]
    staging_steps = [a for a in STAGING_ASSETS if a.key.path[-1] == "steps"]
    materialize_unpartitioned(sim, path, steps + staging_steps)
    victim = sorted(staging(path, "steps"))[0]
    httpx.post(f"{sim.url}/__sim/delete", json={"stream": "steps", "id": victim}).raise_for_status()
    materialize_unpartitioned(sim, path, steps + staging_steps)
    assert victim not in staging(path, "steps")
    assert set(staging(path, "steps")) == set(truth(sim, "steps"))
    wh = open_warehouse(str(path))
    assert wh.query("SELECT id, source FROM raw._tombstones WHERE stream = 'steps'") == [(str(victim), "full_refresh")]
    assert wh.query(f"SELECT count(*) FROM raw.steps WHERE id = {victim}") == [(1,)]  # remembered, not live


BACKFILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
    from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource

    base_url, api_key, path, first, last = sys.argv[1:]
    [emails] = [a for a in EXTRACT_ASSETS if a.key.path == ["salesloft", "emails"]]
    result = dg.materialize(
        [emails],
        resources={
            "salesloft": SalesloftResource(api_key=api_key, base_url=base_url, window_seconds=1),
            "warehouse": WarehouseResource(url=path),
        },
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )
    sys.exit(0 if result.success else 1)
    """
)


def test_a_killed_backfill_resumes_and_redoes_at_most_one_day(tmp_path: Path) -> None:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    # A slow budget (10 per second) makes the backfill take long enough to kill it midway.
    config = SimulatorConfig(seed=5, people=300, days=8, anchor=anchor, budget=10, window_seconds=1)
    path = tmp_path / "warehouse.duckdb"
    first = (anchor - timedelta(days=8)).date()
    last = (anchor - timedelta(days=1)).date()
    with Simulator(config).serve() as sim:
        args = [sys.executable, "-c", BACKFILL_SCRIPT, sim.base_url, sim.api_key, str(path), first.isoformat(), last.isoformat()]
        backfill = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        committed: dict = {}
        while len(committed) < 3:
            assert backfill.poll() is None, "the backfill finished before it could be killed: " + backfill.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.5)
            if path.exists():
                committed = open_warehouse(str(path)).loaded_partitions("emails")
        backfill.send_signal(signal.SIGKILL)
        backfill.wait()
        committed = open_warehouse(str(path)).loaded_partitions("emails")
        assert 3 <= len(committed) < (last - first).days + 1

        rerun = subprocess.run(args, capture_output=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
        after = open_warehouse(str(path)).loaded_partitions("emails")
        assert sorted(after) == [first + timedelta(days=n) for n in range((last - first).days + 1)]
        # Days committed before the kill were not read again.
        assert all(after[day] == committed[day] for day in committed)
        wh = open_warehouse(str(path))
        [(rows, distinct)] = wh.query("SELECT count(*), count(DISTINCT id) FROM raw.emails")
        assert rows == distinct
        expected = {
            i for i, t in truth(sim, "emails").items() if t is not None and first <= t.date() <= last
        }
        assert {i for (i,) in wh.query("SELECT id FROM raw.emails")} == expected


def test_backfill_from_the_command_line(sim: Simulator, tmp_path: Path) -> None:
    """`dagster asset materialize --partition-range` as the README shows it."""
    repo = Path(__file__).resolve().parents[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((repo / "dagster.yaml").read_text())
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    last = first + timedelta(days=3)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SALESLOFT_API_KEY": sim.api_key,
        "SALESLOFT_BASE_URL": sim.base_url,
        "SALESLOFT_WAREHOUSE_URL": str(tmp_path / "warehouse.duckdb"),
    }
    command = [
        "dagster", "asset", "materialize", "-m", "salesloft_pipeline.definitions",
        "--select", "salesloft/meetings", "--partition-range", f"{first}...{last}",
    ]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sim.api_key not in run.stdout + run.stderr
    loads = open_warehouse(str(tmp_path / "warehouse.duckdb")).loaded_partitions("meetings")
    assert sorted(loads) == [first + timedelta(days=n) for n in range(4)]
    expected = {i for i, t in truth(sim, "meetings").items() if t is not None and first <= t.date() <= last}
    rows = open_warehouse(str(tmp_path / "warehouse.duckdb")).query("SELECT id FROM raw.meetings")
    assert {i for (i,) in rows} == expected


def test_missing_api_key_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESLOFT_API_KEY", raising=False)
    [users] = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["users"])]
    with pytest.raises(Exception, match="SALESLOFT_API_KEY"):
        dg.materialize(
            [users],
            resources={
                "salesloft": SalesloftResource(api_key=dg.EnvVar("SALESLOFT_API_KEY")),
                "warehouse": WarehouseResource(url=str(tmp_path / "w.duckdb")),
            },
        )


def test_unreachable_base_url_is_named(tmp_path: Path) -> None:
    [users] = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["users"])]
    url = "http://127.0.0.1:9/v2"  # the discard port: nothing listens
    with pytest.raises(Exception, match=r"127\.0\.0\.1:9"):
        dg.materialize(
            [users],
            resources={
                "salesloft": SalesloftResource(api_key="k", base_url=url),
                "warehouse": WarehouseResource(url=str(tmp_path / "w.duckdb")),
            },
        )
