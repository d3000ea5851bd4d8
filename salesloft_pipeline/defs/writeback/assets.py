"""`writeback/people` and `writeback/cadence_enrollments`: make SalesLoft match `writeback.*` tables.

Each run (`_write_back`): take the asset's lease (one writer at a time),
settle rows an earlier run left pending, plan the difference between the
input table and what SalesLoft has, and send it (or, in a dry run, only
record it). Every change and its answer is in `writeback.ledger`; see
docs/writeback.md.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import dagster as dg
from pydantic import Field

from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.warehouse.writeback import Entry, Ledger

from ..extract.assets import POOL
from ..resources import SalesloftResource, WarehouseResource
from . import enrollments, people
from .lease import Lease
from .sending import send_all

PEOPLE_KEY = dg.AssetKey(["writeback", "people"])
ENROLLMENTS_KEY = dg.AssetKey(["writeback", "cadence_enrollments"])
STATUS_ORDER = ("ok", "rejected", "unresolved", "sent", "pending", "skipped", "dry_run")


class WritebackConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Record in the ledger what would be sent, and send nothing.")
    lease_timeout_seconds: float = Field(
        default=900, gt=0, description="A run holding the asset's lease without renewing it for this long is dead."
    )


class PeopleConfig(WritebackConfig):
    bulk_threshold: int = Field(
        default=2000, ge=0, description="More changes than this in one run go through SalesLoft bulk upsert jobs."
    )
    bulk_timeout_seconds: float = Field(default=3600, gt=0, description="How long to wait for a bulk job to finish.")


def _holder_alive(context: dg.AssetExecutionContext) -> Callable[[str], bool | None]:
    def alive(run_id: str) -> bool | None:
        run = context.instance.get_run_by_id(run_id)
        return None if run is None else not run.is_finished

    return alive


class Plan(Protocol):  # people.Plan and enrollments.Plan
    send: list[Entry]
    unresolved: list[Entry]
    unchanged: int
    still_rejected: int


def _write_back(
    context: dg.AssetExecutionContext,
    config: WritebackConfig,
    salesloft: SalesloftResource,
    warehouse: WarehouseResource,
    asset: str,
    check_prefix: str,
    reconcile: Callable[[SalesloftClient, Ledger, Callable[[], None]], list[Entry]],
    plan: Callable[[SalesloftClient, Ledger], Plan],
    send: Callable[[SalesloftClient, Ledger, Plan, Callable[[], None]], None],
) -> dg.MaterializeResult:
    """The flow both assets share: lease, settle earlier runs' open rows, plan, send (or record a dry run)."""
    ledger = Ledger(warehouse.open())
    ledger.setup()
    timeout = timedelta(seconds=config.lease_timeout_seconds)
    with Lease(ledger, asset, context.run.run_id, _holder_alive(context), timeout) as lease:
        with salesloft.client() as client:
            lease.watch(client)  # renewed before every request and every rate-limit wait
            reconciled = reconcile(client, ledger, lease.renew)
            planned = plan(client, ledger)
            ledger.write(planned.unresolved)
            if config.dry_run:
                for entry in planned.send:
                    entry.status = "dry_run"
                ledger.write(planned.send)
            else:
                send(client, ledger, planned, lease.renew)
            spend = _spend(client)
    return _result(context, ledger, asset, check_prefix, planned, len(reconciled), spend, config.dry_run)


def _spend(client: SalesloftClient) -> dict[str, int]:
    return {"api_requests": client.stats.requests, "api_cost": client.stats.cost}


def _result(
    context: dg.AssetExecutionContext,
    ledger: Ledger,
    asset: str,
    check_prefix: str,
    plan: Plan,
    reconciled: int,
    spend: dict[str, int],
    dry_run: bool,
) -> dg.MaterializeResult:
    counts = ledger.counts(context.run.run_id, asset)
    metadata = {f"rows_{s}": counts.get(s, 0) for s in STATUS_ORDER}
    metadata.update(
        already_true=plan.unchanged,
        still_rejected_not_resent=plan.still_rejected,
        reconciled_from_earlier_runs=reconciled,
        dry_run=dry_run,
        **spend,
    )
    unresolved = counts.get("unresolved", 0)
    rejected = counts.get("rejected", 0) + plan.still_rejected
    context.log.info(f"{asset}: {metadata}")
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=f"{check_prefix}_all_rows_resolved",
                passed=unresolved == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"unresolved_rows": unresolved},
                description="Rows naming an unknown or ambiguous person, cadence or user are in writeback.ledger"
                " with status 'unresolved' and a note saying why.",
            ),
            dg.AssetCheckResult(
                check_name=f"{check_prefix}_none_rejected",
                passed=rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected_rows": rejected},
                description="Rows SalesLoft refused (422) are in writeback.ledger with status 'rejected' and"
                " its errors.",
            ),
        ],
    )


def _checks(key: dg.AssetKey, prefix: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(f"{prefix}_all_rows_resolved", asset=key, description="No unresolved references."),
        dg.AssetCheckSpec(f"{prefix}_none_rejected", asset=key, description="SalesLoft refused no row."),
    ]


@dg.asset(
    key=PEOPLE_KEY,
    deps=[dg.AssetKey(["staging", "people"])],
    group_name="writeback",
    pool=POOL,
    kinds={"salesloft", "sql"},
    check_specs=_checks(PEOPLE_KEY, "writeback_people"),
    description="Creates and updates SalesLoft people so they match `writeback.people` (NULL leaves a field"
    " alone); every change and SalesLoft's answer goes to `writeback.ledger`.",
)
def writeback_people(
    context: dg.AssetExecutionContext, config: PeopleConfig, salesloft: SalesloftResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def reconcile(client: SalesloftClient, ledger: Ledger, heartbeat: Callable[[], None]) -> list[Entry]:
        return people.reconcile(client, ledger, heartbeat, config.bulk_timeout_seconds)

    def plan(client: SalesloftClient, ledger: Ledger) -> people.Plan:
        return people.plan(client, ledger.wh, ledger, context.run.run_id)

    def send(client: SalesloftClient, ledger: Ledger, plan: people.Plan, heartbeat: Callable[[], None]) -> None:
        if len(plan.send) > config.bulk_threshold:
            people.send_bulk(client, ledger, plan.send, plan.emails, heartbeat, config.bulk_timeout_seconds)
        else:
            send_all(client, ledger, plan.send, on_batch=heartbeat)

    return _write_back(context, config, salesloft, warehouse, people.ASSET, "writeback_people", reconcile, plan, send)


@dg.asset(
    key=ENROLLMENTS_KEY,
    deps=[
        PEOPLE_KEY,
        dg.AssetKey(["staging", "people"]),
        dg.AssetKey(["staging", "cadences"]),
        dg.AssetKey(["staging", "cadence_memberships"]),
        dg.AssetKey(["staging", "users"]),
    ],
    group_name="writeback",
    pool=POOL,
    kinds={"salesloft", "sql"},
    check_specs=_checks(ENROLLMENTS_KEY, "writeback_enrollments"),
    description="Adds people to cadences as `writeback.cadence_enrollments` lists (each person once per"
    " cadence); every change and SalesLoft's answer goes to `writeback.ledger`.",
)
def writeback_cadence_enrollments(
    context: dg.AssetExecutionContext,
    config: WritebackConfig,
    salesloft: SalesloftResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    run_id = context.run.run_id

    def plan(client: SalesloftClient, ledger: Ledger) -> enrollments.Plan:
        planned = set()
        if config.dry_run:  # people this run's dry run of writeback/people would create
            planned = {e.row_key for e in ledger.select(
                f"run_id = {ledger.p} AND asset = '{people.ASSET}' AND status = 'dry_run' AND action = 'create'",
                [run_id],
            )}  # fmt: skip
        return enrollments.plan(client, ledger.wh, ledger, run_id, planned)

    def send(client: SalesloftClient, ledger: Ledger, plan: enrollments.Plan, heartbeat: Callable[[], None]) -> None:
        send_all(client, ledger, plan.send, enrollments.interpret, on_batch=heartbeat)

    return _write_back(
        context,
        config,
        salesloft,
        warehouse,
        enrollments.ASSET,
        "writeback_enrollments",
        enrollments.reconcile,
        plan,
        send,
    )


WRITEBACK_ASSETS = [writeback_people, writeback_cadence_enrollments]
writeback_job = dg.define_asset_job(
    "writeback", selection=dg.AssetSelection.assets(*WRITEBACK_ASSETS), description="Applies writeback.* to SalesLoft."
)
