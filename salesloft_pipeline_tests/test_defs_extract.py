"""The Dagster extraction and staging assets against the simulator, on a real DuckDB file and the real Postgres."""

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
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.salesloft import STREAMS, BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

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


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The warehouse of one test: a DuckDB file, or a fresh database on the test Postgres."""
    if request.param == "duckdb":
        yield str(tmp_path / "warehouse.duckdb")
    else:
        with fresh_database("slp_extract") as database:
            yield database


def resources(sim: Simulator, url: str) -> dict[str, object]:
    return {
        "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
        "warehouse": WarehouseResource(url=url),
    }


def history_range(sim: Simulator) -> tuple[date, date]:
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    return first, datetime.now(timezone.utc).date()


def materialize_range(
    sim: Simulator, url: str, keys: list[dg.AssetKey], first: date, last: date, force: bool = False
) -> dg.ExecuteInProcessResult:
    """`force`: read every day again, complete or not (what the look-back schedule asks for)."""
    return dg.materialize(
        [a for a in EXTRACT_ASSETS if a.key in keys],
        resources=resources(sim, url),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config={"ops": {"__".join(k.path): {"config": {"force": True}} for k in keys}} if force else None,
    )


def materialize_unpartitioned(sim: Simulator, url: str, assets: list[dg.AssetsDefinition]) -> None:
    assert dg.materialize(assets, resources=resources(sim, url)).success


def truth(sim: Simulator, stream: str) -> dict[object, datetime | None]:
    answer = httpx.get(f"{sim.url}/__sim/truth/{stream}", timeout=60).json()
    return {r["id"]: _utc(r["updated_at"]) for r in answer["records"]}


def staging(url: str, stream: str) -> dict[object, datetime | None]:
    rows = open_warehouse(url).query(f"SELECT id, updated_at FROM staging.{stream}")
    return {record_id: updated_at for record_id, updated_at in rows}


def load_everything(sim: Simulator, url: str) -> None:
    first, last = history_range(sim)
    incremental = [raw_asset_key(s) for s in SIMULATED if s.incremental]
    assert materialize_range(sim, url, incremental, first, last).success
    materialize_unpartitioned(sim, url, [a for a in EXTRACT_ASSETS if a.key in {raw_asset_key(s) for s in SIMULATED if not s.incremental}])
    materialize_unpartitioned(sim, url, STAGING_ASSETS)


def test_definitions_load() -> None:
    from salesloft_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"salesloft/{s.name}" for s in STREAMS} <= keys
    assert {f"staging/{s.name}" for s in STREAMS} <= keys


def test_staging_equals_the_simulators_ground_truth_for_every_stream(sim: Simulator, url: str) -> None:
    load_everything(sim, url)
    for stream in SIMULATED:
        expected, actual = truth(sim, stream.name), staging(url, stream.name)
        assert set(actual) == set(expected), stream.name
        assert actual == expected, f"{stream.name}: latest updated_at differs"


def test_reruns_and_overlapping_ranges_never_duplicate_and_keep_the_latest_version(sim: Simulator, url: str) -> None:
    first, last = history_range(sim)
    keys = [raw_asset_key(BY_NAME["emails"]), raw_asset_key(BY_NAME["people"])]
    assert materialize_range(sim, url, keys, first, last).success
    assert materialize_range(sim, url, keys, first + timedelta(days=2), last).success  # overlaps
    httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 4 * 3600}, timeout=60).raise_for_status()
    # The advance's changes are stamped over the last 4 hours: before 04:00 UTC some land in
    # yesterday, a day the first runs read complete, which a plain rerun skips (it costs nothing):
    # read the last two days again as the look-back schedule does, forced.
    assert materialize_range(sim, url, keys, last - timedelta(days=1), last, force=True).success
    staging_assets = [a for a in STAGING_ASSETS if a.key.path[-1] in ("emails", "people")]
    materialize_unpartitioned(sim, url, staging_assets)
    wh = open_warehouse(url)
    for stream in ("emails", "people"):
        [(duplicates,)] = wh.query(
            f"SELECT count(*) FROM (SELECT _partition, id FROM raw.{stream} GROUP BY 1, 2 HAVING count(*) > 1) AS d"
        )
        assert duplicates == 0
        expected = truth(sim, stream)
        actual = staging(url, stream)
        # Polling never sees deletes (webhooks do): every live record is there, in its latest version.
        assert {i: actual.get(i) for i in expected} == expected


def test_a_rerun_of_a_complete_range_costs_nothing(sim: Simulator, url: str) -> None:
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    last = first + timedelta(days=2)  # days that ended long ago: complete once loaded
    keys = [raw_asset_key(BY_NAME["calls"])]
    assert materialize_range(sim, url, keys, first, last).success
    before = httpx.get(f"{sim.url}/__sim/stats").json()["cost"]
    result = materialize_range(sim, url, keys, first, last)
    assert result.success
    assert httpx.get(f"{sim.url}/__sim/stats").json()["cost"] == before
    # Nothing was read, so nothing is marked materialized again.
    assert result.get_asset_materialization_events() == []

    forced = dg.materialize(
        [a for a in EXTRACT_ASSETS if a.key in keys],
        resources=resources(sim, url),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config={"ops": {"salesloft__calls": {"config": {"force": True}}}},  # as the README shows
    )
    assert forced.success
    assert httpx.get(f"{sim.url}/__sim/stats").json()["cost"] > before
    # One materialization a day read, with that day's own row count.
    events = forced.get_asset_materialization_events()
    days = [e.materialization.partition for e in events]
    assert sorted(days) == [(first + timedelta(days=n)).isoformat() for n in range(3)]
    loads = open_warehouse(url).loaded_partitions("calls")
    for event in events:
        rows = event.materialization.metadata["dagster/partition_row_count"].value
        assert rows == loads[date.fromisoformat(event.materialization.partition)][0]


def test_full_refresh_marks_records_missing_from_the_list_as_deleted(sim: Simulator, url: str) -> None:
    steps = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["steps"])]
    staging_steps = [a for a in STAGING_ASSETS if a.key.path[-1] == "steps"]
    materialize_unpartitioned(sim, url, steps + staging_steps)
    victim = sorted(staging(url, "steps"))[0]
    httpx.post(f"{sim.url}/__sim/delete", json={"stream": "steps", "id": victim}).raise_for_status()
    materialize_unpartitioned(sim, url, steps + staging_steps)
    assert victim not in staging(url, "steps")
    assert set(staging(url, "steps")) == set(truth(sim, "steps"))
    wh = open_warehouse(url)
    assert wh.query("SELECT id, source FROM raw._tombstones WHERE stream = 'steps'") == [(str(victim), "full_refresh")]
    assert wh.query(f"SELECT count(*) FROM raw.steps WHERE id = {victim}") == [(1,)]  # remembered, not live


BACKFILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
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
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
    )
    sys.exit(0 if result.success else 1)
    """
)


def committed_days(url: str) -> dict:
    """The committed days of raw.emails so far (none before the backfill made the tables)."""
    if "://" not in url and not Path(url).exists():
        return {}
    wh = open_warehouse(url)
    return wh.loaded_partitions("emails") if "_loads" in wh.tables("raw") else {}


def test_a_killed_backfill_resumes_and_redoes_at_most_one_day(url: str) -> None:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    # A slow budget (3 a second, 2 of them ours) makes the backfill take long enough to kill it midway.
    config = SimulatorConfig(seed=5, people=300, days=8, anchor=anchor, budget=3, window_seconds=1)
    first = (anchor - timedelta(days=8)).date()
    last = (anchor - timedelta(days=1)).date()
    with Simulator(config).serve() as sim:
        args = [sys.executable, "-c", BACKFILL_SCRIPT, sim.base_url, sim.api_key, url, first.isoformat(), last.isoformat()]
        backfill = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        committed: dict = {}
        while len(committed) < 3:
            assert backfill.poll() is None, "the backfill finished before it could be killed: " + backfill.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.25)
            committed = committed_days(url)
        backfill.send_signal(signal.SIGKILL)
        backfill.wait()
        committed = open_warehouse(url).loaded_partitions("emails")
        assert 3 <= len(committed) < (last - first).days + 1

        rerun = subprocess.run(args, capture_output=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
        after = open_warehouse(url).loaded_partitions("emails")
        assert sorted(after) == [first + timedelta(days=n) for n in range((last - first).days + 1)]
        # Days committed before the kill were not read again.
        assert all(after[day] == committed[day] for day in committed)
        wh = open_warehouse(url)
        [(rows, distinct)] = wh.query("SELECT count(*), count(DISTINCT id) FROM raw.emails")
        assert rows == distinct
        expected = {
            i for i, t in truth(sim, "emails").items() if t is not None and first <= t.date() <= last
        }
        assert {i for (i,) in wh.query("SELECT id FROM raw.emails")} == expected


def test_backfill_from_the_command_line(sim: Simulator, tmp_path: Path, url: str) -> None:
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
        "SALESLOFT_WAREHOUSE_URL": url,
    }
    command = [
        "dagster", "asset", "materialize", "-m", "salesloft_pipeline.definitions",
        "--select", "salesloft/meetings", "--partition-range", f"{first}...{last}",
    ]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sim.api_key not in run.stdout + run.stderr
    loads = open_warehouse(url).loaded_partitions("meetings")
    assert sorted(loads) == [first + timedelta(days=n) for n in range(4)]
    expected = {i for i, t in truth(sim, "meetings").items() if t is not None and first <= t.date() <= last}
    rows = open_warehouse(url).query("SELECT id FROM raw.meetings")
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


def test_incremental_schedule_reads_yesterday_and_today_in_one_run(tmp_path: Path) -> None:
    from salesloft_pipeline.defs.extract.schedules import salesloft_incremental_schedule

    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 3, 10, 8, 15, tzinfo=timezone.utc),
            resources={"warehouse": WarehouseResource(url=str(tmp_path / "empty.duckdb"))},
        ) as context:
            request = salesloft_incremental_schedule(context)
    assert request.tags[RANGE_START_TAG] == "2026-03-09"
    assert request.tags[RANGE_END_TAG] == "2026-03-10"


def test_every_salesloft_asset_is_in_the_api_pool() -> None:
    for asset in EXTRACT_ASSETS:
        assert asset.node_def.pool == "salesloft_api"


def test_staging_checks_pass_on_loaded_data_and_catch_a_duplicate(sim: Simulator, url: str) -> None:
    from salesloft_pipeline.defs.extract.checks import PRIMARY_KEY_CHECKS, REFERENCE_CHECKS

    wanted = {"emails", "people", "users"}
    first, last = history_range(sim)
    assert materialize_range(sim, url, [raw_asset_key(BY_NAME[n]) for n in ("emails", "people")], first, last).success
    materialize_unpartitioned(sim, url, [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["users"])])
    staging_assets = [a for a in STAGING_ASSETS if a.key.path[-1] in wanted]
    checks = [c for c in [*PRIMARY_KEY_CHECKS, *REFERENCE_CHECKS] if next(iter(c.check_keys)).asset_key.path[-1] in wanted]
    result = dg.materialize([*staging_assets, *checks], resources=resources(sim, url))
    evaluations = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    assert evaluations[("emails", "primary_key_unique_and_not_null")].passed
    # SalesLoft keeps the emails of deleted people: the warning counts them, as the truth does.
    emails = httpx.get(f"{sim.url}/__sim/truth/emails?full=true", timeout=60).json()["records"]
    people = set(truth(sim, "people"))
    dangling = sum(1 for e in emails if e.get("recipient") and e["recipient"]["id"] not in people)
    references = evaluations[("emails", "references_resolve")]
    assert references.metadata["dangling_recipient_id"].value == dangling
    assert references.passed == (dangling == 0 and references.metadata["dangling_user_id"].value == 0)

    wh = open_warehouse(url)
    wh.execute_script("INSERT INTO staging.emails SELECT * FROM staging.emails LIMIT 1")
    [pk_check] = [c for c in PRIMARY_KEY_CHECKS if next(iter(c.check_keys)).asset_key.path[-1] == "emails"]
    again = dg.materialize(
        [*staging_assets, pk_check],
        resources=resources(sim, url),
        selection=dg.AssetSelection.checks(pk_check),
        raise_on_error=False,  # the check is blocking: its failure fails the run
    )
    assert not again.get_asset_check_evaluations()[0].passed


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
    from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
    from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
    from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS

    base_url, api_key, path, stream, first, last, rounds = sys.argv[1:]
    if stream == "webhook-apply":  # what the webhook sensor's runs do: versions, tombstones, staging
        import httpx
        from salesloft_pipeline.defs.webhooks.apply import Plan, apply_plan
        from salesloft_pipeline.warehouse import open_warehouse

        people = httpx.get(base_url.removesuffix("/v2") + "/__sim/truth/people?full=true").json()["records"]
        for n in range(int(rounds)):
            batch = Plan()
            batch.streams["people"].upserts.extend(people[n * 5 : n * 5 + 5])
            batch.streams["notes"].deletions[str(10**9 + n)] = None
            apply_plan(open_warehouse(path), batch)
        sys.exit(0)
    assets = [a for a in EXTRACT_ASSETS + STAGING_ASSETS if a.key.path[-1] == stream]
    resources = {
        "salesloft": SalesloftResource(api_key=api_key, base_url=base_url),
        "warehouse": WarehouseResource(url=path),
    }
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last}
    for _ in range(int(rounds)):
        extract = dg.materialize(assets[:1], resources=resources, tags=tags, run_config={"ops": {f"salesloft__{stream}": {"config": {"force": True}}}})
        stage = dg.materialize(assets[1:], resources=resources)
        if not (extract.success and stage.success):
            sys.exit(1)
    """
)


def test_concurrent_runs_share_the_duckdb_file_without_failing(sim: Simulator, tmp_path: Path) -> None:
    """A backfill, two schedule-like runs and webhook applies, all writing and rebuilding staging at once."""
    path = tmp_path / "warehouse.duckdb"
    first, last = history_range(sim)
    two_days = first + timedelta(days=1), first + timedelta(days=2)
    jobs = [
        ("emails", first, last, 2),
        ("calls", *two_days, 4),
        ("people", first, last, 3),
        ("webhook-apply", first, last, 8),
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_SCRIPT, sim.base_url, sim.api_key, str(path), stream,
             a.isoformat(), b.isoformat(), str(rounds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for stream, a, b, rounds in jobs
    ]
    errors = [p.communicate(timeout=600)[1].decode()[-2000:] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    wh = open_warehouse(str(path))
    for stream in ("emails", "calls", "people"):
        [(rows, distinct)] = wh.query(f"SELECT count(*), count(DISTINCT id) FROM staging.{stream}")
        assert rows == distinct > 0
    assert wh.query("SELECT count(*) FROM raw._tombstones WHERE stream = 'notes' AND source = 'webhook'") == [(8,)]
