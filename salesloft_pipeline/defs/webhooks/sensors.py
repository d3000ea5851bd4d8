"""`salesloft_webhooks`: new events in the event store become apply runs.

Cursor (JSON): `requested_through`, the highest sequence number handed to a
run, and `outstanding`, the ranges whose run has not yet succeeded:
`{"<after>-<through>": [attempt, requested_at]}`.

Each tick
1. looks up the run of every outstanding range (by the range and attempt
   tags): a success drops the range; a failure or cancellation, or a run that
   never appeared within `LOST_RUN_SECONDS`, makes the range failed;
2. while any range is failed, asks for nothing new: once the backoff after
   the latest failure is over (30 s, then 60, 120, 300, 900 s as failures
   repeat), the failed ranges and the events that arrived meanwhile (up to
   `COALESCE_EVENTS` of them) become one range, asked for as the next attempt
   under a new run key. A warehouse outage thus costs one run per backoff
   period, not a run per range per tick;
3. when nothing is failed, asks for the events after `requested_through`, in
   ranges of at most `BATCH_EVENTS` events, at most `MAX_NEW_RUNS` a tick and
   `MAX_OUTSTANDING` waiting at once, and moves the cursor to the end of the
   last range asked for.
Transient failures inside a run (a dropped connection) are retried by the
apply op's own Dagster RetryPolicy before the run fails.
The cursor only ever moves past events whose run was requested, in the same
SensorResult as the requests, so a tick that errors moves nothing, and a
restart of the daemon resumes from the stored cursor. A range is never dropped
before its run succeeded; applying is idempotent, so a range applied twice
(a lost run that finally ran) changes nothing.

Retention: each tick then deletes the events received more than
SALESLOFT_EVENTS_RETENTION_DAYS ago (default 30; 0 or empty keeps everything)
up to the highest sequence number surely applied: the `after` of the lowest
outstanding range, else `requested_through` (ranges cover every event up to
it, and a range leaves `outstanding` only once its run succeeded). A failed or
pending range thus keeps its events however old. Pruning never touches the
cursor, and a prune that fails only logs a warning.
"""

import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone

import dagster as dg

from salesloft_pipeline.webhooks import EventStore

from .jobs import ATTEMPT_TAG, BATCH_TAG, webhook_apply_job
from .resources import EventStoreResource

# Every 15 s: with a run taking a few seconds to start and apply, a delivery
# reaches staging well within a minute.
INTERVAL_SECONDS = int(os.environ.get("SALESLOFT_WEBHOOK_SENSOR_SECONDS") or 15)
BATCH_EVENTS = 5000
MAX_NEW_RUNS = 10
MAX_OUTSTANDING = 10
COALESCE_EVENTS = 20_000
LOST_RUN_SECONDS = 600
RETRY_BACKOFF_SECONDS = (30, 60, 120, 300, 900)

FINISHED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
RETENTION_VARIABLE = "SALESLOFT_EVENTS_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
# Rows pruned per tick at most: a first prune of a big store spreads over ticks
# instead of outlasting the daemon's sensor evaluation timeout.
PRUNE_MAX_ROWS_PER_TICK = 100_000


def load_cursor(cursor: str | None) -> tuple[int, dict[str, list[float]]]:
    if not cursor:
        return 0, {}
    state = json.loads(cursor)
    return int(state["requested_through"]), {k: list(v) for k, v in state.get("outstanding", {}).items()}


def dump_cursor(requested_through: int, outstanding: dict[str, list[float]]) -> str:
    return json.dumps({"requested_through": requested_through, "outstanding": outstanding}, sort_keys=True)


def applied_through(cursor: str) -> int:
    """The highest sequence number at or below which every event's run succeeded."""
    requested_through, outstanding = load_cursor(cursor)
    return min((int(key.split("-")[0]) for key in outstanding), default=requested_through)


def retention_days() -> int | None:
    """SALESLOFT_EVENTS_RETENTION_DAYS; None keeps every event. Raises ValueError if invalid."""
    raw = os.environ.get(RETENTION_VARIABLE)
    if raw is None:
        return DEFAULT_RETENTION_DAYS
    days = int(raw.strip() or 0)
    if days < 0:
        raise ValueError(days)
    return days or None


def prune_applied(store: EventStore, cursor: str, log: logging.Logger) -> int:
    """Deletes applied events past the retention period; never raises (the tick's runs come first)."""
    try:
        days = retention_days()
    except ValueError:
        log.warning(f"{RETENTION_VARIABLE} must be a whole number of days (0 keeps every event): keeping every event")
        return 0
    if days is None:
        return 0
    try:
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        pruned = store.prune(applied_through(cursor), cutoff, max_rows=PRUNE_MAX_ROWS_PER_TICK)
    except Exception as error:  # its type only: a driver's message may quote the store's URL
        log.warning(f"pruning the event store failed ({type(error).__name__}); events are kept, will retry next tick")
        return 0
    if pruned:
        log.info(f"pruned {pruned} applied webhook events received over {days} days ago")
    return pruned


def batch_request(after: int, through: int, attempt: int) -> dg.RunRequest:
    key = f"{after}-{through}"
    return dg.RunRequest(
        run_key=f"webhooks:{key}:{attempt}",
        run_config={"ops": {"apply_webhook_events": {"config": {"after_seq": after, "through_seq": through}}}},
        tags={BATCH_TAG: key, ATTEMPT_TAG: str(attempt)},
    )


def _latest_run(instance: dg.DagsterInstance, key: str, attempt: int) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: key, ATTEMPT_TAG: str(attempt)}), limit=1)
    return runs[0] if runs else None


def _finished_at(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    record = instance.get_run_record_by_id(run.run_id)
    end = record.end_time if record is not None else None
    return end if end is not None else time.time()


def evaluate(
    instance: dg.DagsterInstance, store_last_seq: int, cursor: str | None, now: float | None = None
) -> tuple[list[dg.RunRequest], str, list[str]]:
    """The run requests, the new cursor and log lines for one tick (pure but for run lookups)."""
    now = time.time() if now is None else now
    requested_through, outstanding = load_cursor(cursor)
    notes: list[str] = []
    failed: dict[str, tuple[int, float]] = {}  # range -> (attempt, when it failed)
    for key, (attempt, requested_at) in sorted(outstanding.items(), key=lambda kv: int(kv[0].split("-")[0])):
        attempt = int(attempt)
        run = _latest_run(instance, key, attempt)
        if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
            del outstanding[key]
        elif run is not None and run.status in FINISHED_BADLY:
            failed[key] = (attempt, _finished_at(instance, run))
            notes.append(f"events {_span(key)}: run {run.run_id} {run.status.value}")
        elif run is None and now - requested_at > LOST_RUN_SECONDS:
            failed[key] = (attempt, requested_at)
            notes.append(f"events {_span(key)}: no run appeared for attempt {attempt}")
    if failed:
        return _retry(failed, outstanding, requested_through, store_last_seq, now, notes)
    requests: list[dg.RunRequest] = []
    while store_last_seq > requested_through and len(requests) < MAX_NEW_RUNS and len(outstanding) < MAX_OUTSTANDING:
        after, through = requested_through, min(requested_through + BATCH_EVENTS, store_last_seq)
        requests.append(batch_request(after, through, 1))
        outstanding[f"{after}-{through}"] = [1, now]
        requested_through = through
    return requests, dump_cursor(requested_through, outstanding), notes


def _span(key: str) -> str:
    after, through = key.split("-")
    return f"{int(after) + 1}..{through}"


def _retry(
    failed: dict[str, tuple[int, float]],
    outstanding: dict[str, list[float]],
    requested_through: int,
    store_last_seq: int,
    now: float,
    notes: list[str],
) -> tuple[list[dg.RunRequest], str, list[str]]:
    """After the backoff, the failed ranges and the newest events as one range, asked for once."""
    attempt = max(a for a, _ in failed.values())
    backoff = RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS)) - 1]
    waited = now - max(at for _, at in failed.values())
    if waited < backoff:
        notes.append(f"asking again in {backoff - waited:.0f} s; new events wait to go with that run")
        return [], dump_cursor(requested_through, outstanding), notes
    bounds = [tuple(int(x) for x in key.split("-")) for key in failed]
    after = min(a for a, _ in bounds)
    # Ranges still running in between are applied twice at worst: applying is idempotent.
    through = max(max(t for _, t in bounds), min(store_last_seq, after + COALESCE_EVENTS))
    for key in failed:
        del outstanding[key]
    outstanding[f"{after}-{through}"] = [attempt + 1, now]
    notes.append(f"asking again for events {after + 1}..{through} in one run (attempt {attempt + 1})")
    return [batch_request(after, through, attempt + 1)], dump_cursor(max(requested_through, through), outstanding), notes


@dg.sensor(
    name="salesloft_webhooks",
    job=webhook_apply_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns new SalesLoft webhook events (from `salesloft-pipeline webhooks serve`) into runs that"
    " apply them to raw tables and staging; re-requests ranges whose run failed.",
)
def salesloft_webhooks_sensor(
    context: dg.SensorEvaluationContext, events: EventStoreResource
) -> dg.SensorResult | dg.SkipReason:
    store = events.open()
    if not store.exists():
        return dg.SkipReason(
            f"no event store yet at {store.describe()}: is `salesloft-pipeline webhooks serve` running?"
        )
    store.setup()
    requests, cursor, notes = evaluate(context.instance, store.last_seq(), context.cursor)
    for note in notes:
        context.log.warning(note)
    # The new cursor is safe to prune by even before it is stored: ranges leave it only once their run succeeded.
    prune_applied(store, cursor, context.log)
    if not requests and cursor == (context.cursor or cursor):
        return dg.SkipReason("no new webhook events")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
