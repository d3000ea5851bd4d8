"""`salesloft_webhook_apply`: apply the stored events of one sequence range.

The sensor hands each run a range (`after_seq`, `through_seq`] of the event
store. The run adds the records to their raw tables, writes tombstones for
deletes, merges what changed into the staging models of the streams it
touched and reports each that changed as a materialization of
`staging/<stream>`: the engagement sensor watches those and rebuilds the
activity days whose metrics changed.

Staging is rebuilt inside the run, not left to declarative automation, so a
delivery reaches staging without the automation daemon (tests, `dagster job
execute`) and within one run.
"""

import dagster as dg

from salesloft_pipeline.salesloft import BY_NAME

from ..resources import WarehouseResource
from ..staging.assets import staging_asset_key
from .apply import apply_plan, plan
from .resources import EventStoreResource

BATCH_TAG = "salesloft/webhook_batch"
ATTEMPT_TAG = "salesloft/webhook_attempt"


class WebhookBatchConfig(dg.Config):
    after_seq: int
    """Apply events with a sequence number above this one..."""
    through_seq: int
    """...up to and including this one."""


@dg.op(
    description="Applies the webhook events of one range of the event store to raw tables and staging.",
    tags={"kind": "webhooks"},
    # A dropped connection or a busy database: tried again in the run, before
    # the sensor has to ask for the range again (sensors.py).
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL),
)
def apply_webhook_events(
    context: dg.OpExecutionContext,
    config: WebhookBatchConfig,
    warehouse: WarehouseResource,
    events: EventStoreResource,
) -> dg.Output[None]:
    if config.through_seq < config.after_seq:
        raise dg.Failure(f"empty range: through_seq {config.through_seq} < after_seq {config.after_seq}")
    stored = events.open().read(config.after_seq, config.through_seq)
    batch = plan(stored)
    for seq, reason in batch.invalid[:20]:
        context.log.warning(f"event {seq} not applied: {reason}")
    if batch.not_applied:
        context.log.info(f"stored but not applied (event types the pipeline does not apply): {dict(batch.not_applied)}")
    wh = warehouse.open()
    builds = apply_plan(wh, batch)
    counts = batch.counts()
    for build in builds:
        [(rows,)] = wh.query(f"SELECT count(*) FROM staging.{build.stream}")
        context.log_event(
            dg.AssetMaterialization(
                asset_key=staging_asset_key(BY_NAME[build.stream]),
                description=f"{build.reason} after webhook events {config.after_seq + 1}..{config.through_seq}",
                metadata={
                    "dagster/row_count": dg.MetadataValue.int(rows),
                    "build": build.mode,
                    "ids_merged": dg.MetadataValue.int(build.ids),
                    "webhook_upserts": dg.MetadataValue.int(counts[build.stream]["upserts"]),
                    "webhook_deletions": dg.MetadataValue.int(counts[build.stream]["deletions"]),
                },
            )
        )
    context.log.info(
        f"events {config.after_seq + 1}..{config.through_seq}: {batch.events} read, applied {counts},"
        f" {len(batch.invalid)} invalid, {sum(batch.not_applied.values())} of types not applied"
    )
    events.open().mark_applied(config.after_seq, config.through_seq)  # the durable marker the metrics read
    return dg.Output(
        None,
        metadata={
            "events": batch.events,
            "applied": dg.MetadataValue.json(counts),
            "invalid": len(batch.invalid),
            "not_applied": dg.MetadataValue.json(dict(batch.not_applied)),
        },
    )


@dg.job(
    name="salesloft_webhook_apply",
    description="Applies one range of stored SalesLoft webhook events (upserts, deletes) to raw tables and staging.",
    tags={"dagster/max_retries": "0"},
)
def webhook_apply_job() -> None:
    apply_webhook_events()
