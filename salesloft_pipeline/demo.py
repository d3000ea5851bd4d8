"""`salesloft-pipeline demo`: the whole pipeline on a simulated SalesLoft team, on this machine.

Everything it starts listens on 127.0.0.1 only and keeps its files under
`$SALESLOFT_PIPELINE_HOME/demo` (wiped at each start: demo data only):
the simulator (SalesLoft's stand-in), the webhook endpoint subscribed to it
through SalesLoft's subscriptions API, and the pipeline with the embedded
defaults (DuckDB warehouse, SQLite event store, Dagster's local storage).

`--headless` backfills the last days, builds staging and the engagement
metrics, makes one webhook round trip (a change in "SalesLoft", its signed
delivery, the sensor's apply run) and prints a summary. Without it, the same
processes run with `dagster dev`, the schedules and sensors on, until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import httpx

from salesloft_pipeline import reporting
from salesloft_pipeline.warehouse import default_home

ENDPOINT_PATH = "/webhooks/salesloft"
REPOSITORY = Path(__file__).resolve().parents[1]
# The simulated team's key has Conversation Intelligence, so the demo shows conversations
# (email contents stay ungranted, as on most keys).
SIMULATED_SCOPES = frozenset({"conversations:read"})


@dataclass
class DemoPlan:
    home: Path
    people: int = 400
    days: int = 30
    seed: int = 7

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def events(self) -> Path:
        return self.home / "events.sqlite"

    def day_range(self) -> tuple[date, date]:
        today = datetime.now(timezone.utc).date()
        return today - timedelta(days=self.days - 1), today


@dataclass
class DemoResult:
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (raw rows, staging rows)
    api_requests: int = 0
    api_cost: int = 0
    rate_limited: int = 0
    webhook_events: int = 0
    webhook_record: str = ""
    metrics: list[tuple[Any, ...]] = field(default_factory=list)
    pipeline: tuple[int, float, float] = (0, 0.0, 0.0)  # last touch: opportunities, amount, won amount
    attribution_days: int = 30
    zone: str = "UTC"  # the reporting time zone the metrics' days are in


def prepare_home(plan: DemoPlan) -> None:
    if plan.home.exists():
        shutil.rmtree(plan.home)
    plan.home.mkdir(parents=True)


def team_zone(client: Any) -> tuple[str, str]:
    """(the reporting time zone, where it came from): the variable's if it is set, else the
    simulated team's as SalesLoft reports it (its key's user's, from `/v2/me`), else UTC."""
    from salesloft_pipeline.reporting import VARIABLE, reporting_timezone, zone_from_salesloft

    if os.environ.get(VARIABLE):
        return reporting_timezone(), f"from {VARIABLE}"
    found, how = zone_from_salesloft(client)
    return found or "UTC", how


@contextmanager
def zone_in_environment(zone: str) -> Iterator[None]:
    """The reporting time zone set for the pipeline code this process runs, while the demo runs."""
    from salesloft_pipeline.reporting import VARIABLE

    before = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = zone
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = before


def _range_tags(first: date, last: date) -> dict[str, str]:
    from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


def run_headless(plan: DemoPlan, echo: Any = click.echo) -> DemoResult:
    """The headless demo; returns what the summary shows."""
    # Imported here: the other subcommands need not load Dagster.
    import dagster as dg

    from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS
    from salesloft_pipeline.defs.engagement.attribution import attribution_days, cadence_pipeline
    from salesloft_pipeline.defs.engagement.update import engagement_update_job
    from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS
    from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
    from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
    from salesloft_pipeline.defs.webhooks.jobs import webhook_apply_job
    from salesloft_pipeline.defs.webhooks.resources import EventStoreResource
    from salesloft_pipeline.defs.webhooks.sensors import evaluate
    from salesloft_pipeline.salesloft import STREAMS, SalesloftClient
    from salesloft_pipeline.serving import serve_in_thread
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig
    from salesloft_pipeline.warehouse import open_warehouse
    from salesloft_pipeline.webhooks import Secrets, open_event_store
    from salesloft_pipeline.webhooks.app import create_app
    from salesloft_pipeline.webhooks.subscriptions import subscribe

    prepare_home(plan)
    first, last = plan.day_range()
    secret = secrets.token_hex(16)
    config = SimulatorConfig(
        seed=plan.seed, people=plan.people, days=plan.days, webhook_retry_seconds=1.0,
        privileged_scopes=SIMULATED_SCOPES,
    )
    echo(f"Simulating a SalesLoft team: {plan.people} people, {plan.days} days of history (seed {plan.seed})")
    result = DemoResult()
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator(config).serve())
        store = open_event_store(str(plan.events))
        endpoint = stack.enter_context(serve_in_thread(create_app(store, Secrets([secret])), name="webhook endpoint"))
        with SalesloftClient(sim.api_key, sim.base_url) as client:
            subscribe(client, endpoint + ENDPOINT_PATH, secret)
            result.zone, how = team_zone(client)
        stack.enter_context(zone_in_environment(result.zone))
        echo(f"SalesLoft simulator at {sim.base_url}; webhook endpoint at {endpoint}{ENDPOINT_PATH}, subscribed")
        echo(f"Engagement days are counted in {result.zone} ({how})")
        engagement_last = reporting.today(result.zone)  # the newest activity day

        instance = stack.enter_context(dg.DagsterInstance.ephemeral())
        resources = {
            "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
            "warehouse": WarehouseResource(url=str(plan.warehouse)),
            "events": EventStoreResource(url=str(plan.events)),
        }

        def materialize(assets: list, **kwargs: Any) -> None:
            outcome = dg.materialize(assets, resources=resources, instance=instance, **kwargs)
            if not outcome.success:
                raise click.ClickException("a demo run failed; see the Dagster log above")

        readable = [s for s in STREAMS if s.required_scope in (None, *SIMULATED_SCOPES)]
        incremental = {s.name for s in readable if s.incremental}
        by_name = {a.key.path[-1]: a for a in EXTRACT_ASSETS}
        echo(f"Backfilling {len(incremental)} incremental streams for {first}..{last}, day by day")
        # One run a stream, so the bar can read the warehouse between runs: a
        # second connection to the DuckDB file while a load runs in this process
        # trips DuckDB up.
        with click.progressbar(sorted(incremental), label="Backfill", show_pos=True, width=30) as bar:
            for name in bar:
                materialize([by_name[name]], tags=_range_tags(first, last))
                [(days, records)] = open_warehouse(str(plan.warehouse)).query(
                    "SELECT count(*), coalesce(sum(rows), 0) FROM raw._loads"
                )
                cost = httpx.get(f"{sim.url}/__sim/stats", timeout=10).json()["cost"]
                bar.label = f"Backfill: {days} stream-days, {records:,} records, API cost {cost:,}"
        echo("Reading the full-refresh lists, then building staging and the engagement metrics")
        materialize([by_name[s.name] for s in readable if not s.incremental])
        materialize(STAGING_ASSETS)
        materialize(ENGAGEMENT_ASSETS, tags=_range_tags(first, engagement_last))
        materialize([cadence_pipeline])

        echo("Webhook round trip: an hour of activity in SalesLoft, delivered, applied by the sensor's run")
        before = store.last_seq() if store.exists() else 0
        httpx.post(f"{sim.url}/__sim/advance", json={"seconds": 3600}, timeout=60).raise_for_status()
        deadline = time.monotonic() + 30
        while (store.last_seq() if store.exists() else 0) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # let the rest of the burst land
        requests, _, _ = evaluate(instance, store.last_seq(), None)
        for request in requests:
            outcome = webhook_apply_job.execute_in_process(
                run_config=request.run_config, instance=instance, tags=request.tags, resources=resources
            )
            if not outcome.success:
                raise click.ClickException("the webhook apply run failed")
        result.webhook_events = store.last_seq() - before
        # What engagement_late_updates_sensor's run does: rebuild the activity days the change touched.
        if not engagement_update_job.execute_in_process(instance=instance, resources=resources).success:
            raise click.ClickException("the engagement update run failed")
        wh = open_warehouse(str(plan.warehouse))
        newest = wh.query(
            "SELECT id, updated_at FROM raw.people WHERE _source = 'webhook' ORDER BY updated_at DESC LIMIT 1"
        )
        if newest:
            result.webhook_record = f"person {newest[0][0]} updated at {newest[0][1]:%Y-%m-%d %H:%M:%S} UTC"

        stats = httpx.get(f"{sim.url}/__sim/stats", timeout=10).json()
        result.api_requests, result.api_cost, result.rate_limited = stats["requests"], stats["cost"], stats["rate_limited"]
        for stream in readable:
            [(raw,)] = wh.query(f"SELECT count(*) FROM raw.{stream.name}")
            [(staged,)] = wh.query(f"SELECT count(*) FROM staging.{stream.name}")
            result.rows[stream.name] = (raw, staged)
        result.metrics = wh.query(
            "SELECT activity_day, emails_sent, emails_delivered, reply_rate, calls, connect_rate, meetings_booked"
            " FROM engagement.daily_engagement WHERE activity_day > ? ORDER BY activity_day",
            [engagement_last - timedelta(days=7)],
        )
        [(opportunities, amount, won)] = wh.query(
            "SELECT COALESCE(sum(opportunities), 0), COALESCE(sum(pipeline_amount), 0), COALESCE(sum(won_amount), 0)"
            " FROM engagement.cadence_pipeline WHERE attribution = 'last_touch'"
        )
        result.pipeline = (int(opportunities), float(amount), float(won))
        result.attribution_days = attribution_days()
    return result


def summary(result: DemoResult) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    lines = ["", "Rows per table (raw versions / live in staging):"]
    width = max(len(name) for name in result.rows)
    for name, (raw, staged) in sorted(result.rows.items()):
        if raw or staged:
            lines.append(f"  {name:<{width}}  {raw:>9,}  {staged:>9,}")
    lines += [
        "",
        f"SalesLoft API: {result.api_requests:,} requests, cost {result.api_cost:,}, 429s {result.rate_limited}",
        f"Webhooks: {result.webhook_events} events stored and applied"
        + (f"; latest: {result.webhook_record}" if result.webhook_record else ""),
        f"Pipeline the cadences touched (last touch, {result.attribution_days} days): {result.pipeline[0]:,}"
        f" opportunities, {result.pipeline[1]:,.2f} amount, {result.pipeline[2]:,.2f} won",
        "",
        f"Last 7 days ({result.zone}):",
        "  day         emails  delivered  reply rate  calls  connect rate  meetings",
    ]
    for day, sent, delivered, reply_rate, calls, connect_rate, meetings in result.metrics:
        lines.append(
            f"  {day}  {sent:>6}  {delivered:>9}  {pct(reply_rate):>10}  {calls:>5}  {pct(connect_rate):>12}  {meetings:>8}"
        )
    return "\n".join(lines)


@click.command("demo")
@click.option("--headless", is_flag=True, help="No UI: backfill, metrics, one webhook round trip, a summary, exit.")
@click.option("--people", type=click.IntRange(10, 100_000), default=400, show_default=True,
              help="Size of the simulated team.")
@click.option("--days", type=click.IntRange(2, 365), default=30, show_default=True,
              help="Days of history to simulate and backfill.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True,
              help="Port of the Dagster UI (without --headless).")
def demo_command(headless: bool, people: int, days: int, port: int) -> None:
    """Run the whole pipeline on a simulated SalesLoft team, on this machine.

    Files go to $SALESLOFT_PIPELINE_HOME/demo (./.salesloft_pipeline/demo by
    default), replaced at each start. Nothing listens beyond 127.0.0.1.
    """
    plan = DemoPlan(home=default_home() / "demo", people=people, days=days)
    if headless:
        click.echo(summary(run_headless(plan)))
        return
    run_with_ui(plan, port)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, what: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"{what} exited with code {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise click.ClickException(f"{what} did not answer at {url} within {seconds:.0f} s")


def run_with_ui(plan: DemoPlan, port: int) -> None:
    """Simulator (live), webhook endpoint and `dagster dev`, each its own process, until Ctrl-C."""
    from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_KEYS
    from salesloft_pipeline.defs.extract.assets import FULL_REFRESH_KEYS, INCREMENTAL_KEYS
    from salesloft_pipeline.reporting import VARIABLE as REPORTING_VARIABLE
    from salesloft_pipeline.salesloft import STREAMS, SalesloftClient
    from salesloft_pipeline.webhooks.subscriptions import subscribe

    prepare_home(plan)
    first, last = plan.day_range()
    sim_port, endpoint_port = _free_port(), _free_port()
    sim_url, endpoint_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{endpoint_port}"
    api_key, secret = "sim-api-key", secrets.token_hex(16)
    dagster_home = plan.home / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        (REPOSITORY / "dagster.yaml").read_text().replace(".salesloft_pipeline/dagster", str(dagster_home / "storage"))
    )
    env = {
        **os.environ,
        "SALESLOFT_API_KEY": api_key,
        "SALESLOFT_BASE_URL": f"{sim_url}/v2",
        "SALESLOFT_WAREHOUSE_URL": str(plan.warehouse),
        "SALESLOFT_EVENTS_URL": str(plan.events),
        "SALESLOFT_WEBHOOK_SECRET": secret,
        "SALESLOFT_START_DATE": first.isoformat(),
        "SALESLOFT_PIPELINE_HOME": str(plan.home),
        "DAGSTER_HOME": str(dagster_home),
    }
    cli = [sys.executable, "-m", "salesloft_pipeline.cli"]
    processes: list[subprocess.Popen] = []

    def start(command: list[str], log_name: str) -> subprocess.Popen:
        log = open(plan.home / log_name, "wb")  # noqa: SIM115 - closed with the process group below
        process = subprocess.Popen(command, env=env, cwd=plan.home, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        processes.append(process)
        return process

    def dagster(*args: str) -> None:
        subprocess.run(["dagster", *args, "-m", "salesloft_pipeline.definitions"], env=env, cwd=plan.home,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def materialize(*args: str) -> None:
        dagster("asset", "materialize", *args)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops every process the demo started, like Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    try:
        click.echo(f"Starting the SalesLoft simulator ({plan.people} people, {plan.days} days, live changes)")
        scopes = [arg for scope in sorted(SIMULATED_SCOPES) for arg in ("--scope", scope)]
        simulator = start([*cli, "simulator", "--port", str(sim_port), "--api-key", api_key, "--live",
                           "--people", str(plan.people), "--days", str(plan.days), *scopes], "simulator.log")
        _wait_for(f"{sim_url}/__sim/stats", "the simulator", simulator)
        endpoint = start([*cli, "webhooks", "serve", "--port", str(endpoint_port)], "webhooks.log")
        _wait_for(f"{endpoint_url}/health", "the webhook endpoint", endpoint)
        with SalesloftClient(api_key, f"{sim_url}/v2") as client:
            subscribe(client, endpoint_url + ENDPOINT_PATH, secret)
            zone, how = team_zone(client)
        click.echo(f"Webhook endpoint {endpoint_url}{ENDPOINT_PATH} subscribed to the simulator's events")
        click.echo(f"Engagement days are counted in {zone} ({how})")
        env[REPORTING_VARIABLE] = zone
        ui = start(["dagster", "dev", "-m", "salesloft_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
                   "dagster.log")
        _wait_for(f"http://127.0.0.1:{port}/server_info", "dagster dev", ui, seconds=180)
        dagster("schedule", "start", "--start-all")
        click.echo(f"\nDagster UI: http://127.0.0.1:{port}  (schedules and sensors on; logs in {plan.home})")
        click.echo("Backfilling the last days, then staging and engagement; Ctrl-C stops everything.\n")
        keys = ",".join(k.to_user_string() for k in INCREMENTAL_KEYS if k.path[-1] != "email_contents")
        click.echo(f"- incremental streams, {first}..{last}, one run that commits day by day")
        materialize("--select", keys, "--partition-range", f"{first}...{last}")
        click.echo("- full-refresh lists")
        materialize("--select", ",".join(k.to_user_string() for k in FULL_REFRESH_KEYS))
        click.echo("- staging")
        materialize("--select", ",".join(f"staging/{s.name}" for s in STREAMS))
        click.echo("- engagement metrics")
        materialize("--select", ",".join(k.to_user_string() for k in ENGAGEMENT_KEYS),
                    "--partition-range", f"{first}...{reporting.today(zone)}")
        click.echo("- pipeline attribution")
        materialize("--select", "engagement/cadence_pipeline")
        click.echo("Backfill done. The schedules keep the data fresh and the webhook sensor applies changes.")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        raise click.ClickException("a demo process stopped; see the logs in " + str(plan.home))
    except KeyboardInterrupt:
        click.echo("\nStopping...")
    except subprocess.CalledProcessError as error:
        raise click.ClickException(f"{' '.join(error.cmd[:4])} failed; see {plan.home}") from None
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
