"""A backfill, the incremental schedule's runs and webhook applies at the same time, on one Postgres warehouse.

What a team's deployment does all day: Dagster launches each in its own run,
and they write the same raw tables (the backfill and the schedule both load
yesterday and today), the same tombstones and the same staging tables. Here
each run is a process of its own, as Dagster launches runs, all
against one Postgres warehouse and a Postgres event store fed by the
simulator's real webhook deliveries. Afterwards (one more schedule tick and
sensor tick, and the staging rebuild automation would do) staging must equal
the simulator's ground truth, with no duplicate anywhere and no run failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from salesloft_pipeline.defs.webhooks.jobs import webhook_apply_job
from salesloft_pipeline.defs.webhooks.resources import EventStoreResource
from salesloft_pipeline.defs.webhooks.sensors import salesloft_webhooks_sensor
from salesloft_pipeline.salesloft import STREAMS, SalesloftClient
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.webhooks import open_event_store
from salesloft_pipeline.webhooks.subscriptions import subscribe
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_webhooks_apply import SECRET, Endpoint, truth, wait_for_deliveries

DAYS = 4
INCREMENTAL = [s for s in STREAMS if s.incremental and s.required_scope is None]
# Streams the simulator deletes from: their deletes reach staging by webhook only.
DELETED_BY_WEBHOOK = ("people", "notes", "tasks", "accounts")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(
        seed=31, people=100, days=DAYS, anchor=anchor, budget=0, webhook_retry_seconds=0.2, webhook_duplicate_rate=0.05
    )
    with Simulator(config).serve() as simulator:
        yield simulator


@pytest.fixture
def urls() -> Iterator[tuple[str, str]]:
    """(warehouse, event store): two fresh databases on the test Postgres."""
    with fresh_database("slp_concurrent_wh") as warehouse, fresh_database("slp_concurrent_events") as events:
        yield warehouse, events


# One run, in a process of its own as Dagster launches runs: a backfill, a
# schedule tick's run or a webhook apply run, each followed (for the first two)
# by the staging rebuild that declarative automation would start.
RUN_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from datetime import datetime, timezone

    import dagster as dg
    from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

    from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
    from salesloft_pipeline.defs.extract.schedules import incremental_job, salesloft_incremental_schedule
    from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
    from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
    from salesloft_pipeline.defs.webhooks.jobs import webhook_apply_job
    from salesloft_pipeline.defs.webhooks.resources import EventStoreResource

    spec = json.loads(sys.argv[1])
    salesloft = SalesloftResource(api_key=spec["api_key"], base_url=spec["base_url"])
    warehouse = WarehouseResource(url=spec["warehouse"])
    streams = set(spec["streams"])
    extract = [a for a in EXTRACT_ASSETS if a.key.path[-1] in streams]
    staging = [a for a in STAGING_ASSETS if a.key.path[-1] in streams]
    if spec["kind"] == "apply":
        instance = dg.DagsterInstance.from_config(spec["dagster_home"])
        result = webhook_apply_job.execute_in_process(
            run_config=spec["run_config"], instance=instance, tags=spec["tags"],
            resources={"warehouse": warehouse, "events": EventStoreResource(url=spec["events"])},
        )
        sys.exit(0 if result.success else 1)
    if spec["kind"] == "backfill":
        tags = {RANGE_START_TAG: spec["first"], RANGE_END_TAG: spec["last"]}
        loaded = dg.materialize(extract, resources={"salesloft": salesloft, "warehouse": warehouse}, tags=tags)
    else:  # one tick of the incremental schedule, and the run it asks for
        instance = dg.DagsterInstance.from_config(spec["dagster_home"])
        with dg.build_schedule_context(
            instance=instance, resources={"warehouse": warehouse}, scheduled_execution_time=datetime.now(timezone.utc)
        ) as context:
            request = salesloft_incremental_schedule(context)
        job = dg.Definitions(
            assets=EXTRACT_ASSETS, jobs=[incremental_job], resources={"salesloft": salesloft, "warehouse": warehouse}
        ).resolve_job_def(incremental_job.name)
        loaded = job.execute_in_process(tags=request.tags, asset_selection=request.asset_selection)
    sys.exit(0 if loaded.success and dg.materialize(staging, resources={"warehouse": warehouse}).success else 1)
    """
)


class Runs:
    """Runs started as processes; every outcome is kept for the assertions."""

    def __init__(self, common: dict[str, Any]) -> None:
        self.common = common
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.outcomes: list[tuple[str, int, str]] = []  # (what, exit code, end of stderr)

    def start(self, what: str, **spec: Any) -> None:
        argument = json.dumps({**self.common, **spec})
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_SCRIPT, argument], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.running.append((what, process))

    def join(self) -> None:
        for what, process in self.running:
            _, stderr = process.communicate(timeout=600)
            self.outcomes.append((what, process.returncode, stderr.decode()[-3000:]))
        self.running = []


def test_backfill_schedule_and_webhook_applies_at_once(sim: Simulator, urls: tuple[str, str], tmp_path: Path) -> None:
    wh_url, events_url = urls
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # Dagster's default local storage, shared by the run processes
    first = (sim.config.anchor - timedelta(days=DAYS)).date()
    today = datetime.now(timezone.utc).date()
    runs = Runs(
        {
            "api_key": sim.api_key,
            "base_url": sim.base_url,
            "warehouse": wh_url,
            "events": events_url,
            "dagster_home": str(home),
            "streams": [s.name for s in INCREMENTAL],
        }
    )
    events = EventStoreResource(url=events_url)
    instance = dg.DagsterInstance.from_config(str(home))
    cursor: str | None = None

    def sensor_tick() -> None:
        """One tick of the webhook sensor; each run it asks for starts at once, as the daemon would launch it."""
        nonlocal cursor
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"events": events}) as context:
            result = salesloft_webhooks_sensor(context)
        if isinstance(result, dg.SkipReason):
            return
        cursor = result.cursor
        for request in result.run_requests or []:
            tags = {**request.tags, "dagster/run_key": request.run_key}
            runs.start(f"webhook apply {request.tags}", kind="apply", run_config=request.run_config, tags=tags)

    store = open_event_store(events_url)
    with Endpoint(store) as endpoint, SalesloftClient(sim.api_key, sim.base_url) as client:
        store.setup()
        subscribe(client, endpoint, SECRET)
        deleted: dict[str, list[Any]] = {stream: [] for stream in DELETED_BY_WEBHOOK}

        runs.start("backfill", kind="backfill", first=first.isoformat(), last=today.isoformat())
        for round_ in range(4):
            runs.start(f"schedule {round_}", kind="schedule")
            activity = httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 1800}, timeout=120).json()
            assert sum(activity["created"].values()) > 0
            stream = DELETED_BY_WEBHOOK[round_]
            victim = sorted(truth(sim, stream))[round_]
            assert httpx.post(f"{sim.url}/__sim/delete", json={"stream": stream, "id": victim}).status_code == 200
            deleted[stream].append(victim)
            wait_for_deliveries(sim)
            sensor_tick()
            time.sleep(1)
        runs.join()

        # Catching up, as the next ticks would: the schedule's run reads what the
        # runs above raced past, the sensor applies the last deliveries.
        wait_for_deliveries(sim)
        runs.start("last schedule tick", kind="schedule")
        sensor_tick()
        runs.join()

    failed = [(what, code, stderr) for what, code, stderr in runs.outcomes if code != 0]
    assert not failed, failed
    assert sum(1 for what, _, _ in runs.outcomes if what.startswith("webhook apply")) >= 4
    applied = instance.get_runs(filters=dg.RunsFilter(job_name=webhook_apply_job.name))
    assert len(applied) >= 4 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in applied)
    instance.dispose()

    wh = open_warehouse(wh_url)
    for stream in INCREMENTAL:
        name = stream.name
        [(rows, distinct)] = wh.query(f"SELECT count(*), count(DISTINCT id) FROM staging.{name}")
        assert rows == distinct, f"staging.{name}: {rows - distinct} duplicate ids"
        # The backfill and the schedule loaded the same days at once: each day holds each id once.
        [(doubled,)] = wh.query(
            f"SELECT count(*) FROM (SELECT _partition, id FROM raw.{name} WHERE _partition IS NOT NULL"
            " GROUP BY _partition, id HAVING count(*) > 1) AS d"
        )
        assert doubled == 0, f"raw.{name}: {doubled} ids loaded twice into one day"
        actual = {i: t for i, t in wh.query(f"SELECT id, updated_at FROM staging.{name}")}
        expected = truth(sim, name)
        assert set(actual) == set(expected), f"{name}: ids differ from the ground truth"
        assert actual == expected, f"{name}: latest updated_at differs from the ground truth"
    for stream, victims in deleted.items():
        live = {i for (i,) in wh.query(f"SELECT id FROM staging.{stream}")}
        assert not live & set(victims), f"{stream}: deleted records still in staging"
        tombstoned = {i for (i,) in wh.query("SELECT id FROM raw._tombstones WHERE stream = %s", [stream])}
        assert {str(v) for v in victims} <= tombstoned
