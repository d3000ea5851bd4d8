"""Applying stored webhook events to the warehouse, idempotently.

Created/updated events add the record as a version of its raw table
(`_source = 'webhook'`, outside any partition); `*_deleted` events become
tombstones that hide every version up to the deleted one's `updated_at`.
Staging keeps the newest `updated_at` per id whichever way a version came, so
the order events are applied in does not matter, and applying the same event
twice changes nothing: the raw table keeps one copy of an identical version,
the second tombstone is the same tombstone.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.tables import to_row, utc
from salesloft_pipeline.webhooks import StoredEvent, action_for

from ..extract.tables import raw_table
from ..staging.build import StagingBuild, build_staging


@dataclass
class StreamChanges:
    upserts: list[dict[str, Any]] = field(default_factory=list)
    deletions: dict[str, Any] = field(default_factory=dict)  # id -> newest updated_at deleted


@dataclass
class Plan:
    """What a batch of events does, by stream, and what it leaves out."""

    streams: dict[str, StreamChanges] = field(default_factory=lambda: defaultdict(StreamChanges))
    events: int = 0
    not_applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # event type -> count
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (seq, reason)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            stream: {"upserts": len(c.upserts), "deletions": len(c.deletions)}
            for stream, c in sorted(self.streams.items())
        }


def _invalid_reason(stream: str, record: Any) -> str | None:
    """Why `record` cannot become a row of the stream's raw table (None: it can)."""
    if not isinstance(record, dict):
        return "body is not a JSON object"
    if record.get("id") in (None, ""):
        return "record has no id"
    try:
        to_row(raw_table(BY_NAME[stream]), record, None, datetime.now(timezone.utc), "webhook")
    except (TypeError, ValueError, OverflowError) as error:
        return f"record does not fit raw.{stream}: {type(error).__name__}"
    return None


def plan(events: Iterable[StoredEvent]) -> Plan:
    """Groups events by stream: versions to add and ids to tombstone."""
    result = Plan()
    seen_versions: set[tuple[str, str, str]] = set()
    for event in events:
        result.events += 1
        action = action_for(event.event_type) if event.known else None
        if action is None:
            result.not_applied[event.event_type] += 1
            continue
        try:
            record = json.loads(event.body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep, would fail every run
            result.invalid.append((event.seq, "body is not JSON"))
            continue
        reason = _invalid_reason(action.stream, record)
        if reason:
            result.invalid.append((event.seq, f"{event.event_type}: {reason}"))
            continue
        changes = result.streams[action.stream]
        record_id = str(record["id"])
        if action.action == "delete":
            deleted_at = utc(record.get("updated_at"))
            previous = changes.deletions.get(record_id, ...)
            if previous is ... or (previous is not None and (deleted_at is None or deleted_at > previous)):
                # None hides every version; otherwise the newest deleted version wins.
                changes.deletions[record_id] = deleted_at
            kind = TIMELINE_KINDS.get(action.stream)
            if kind is not None:  # its entry on the person's timeline goes too (no event says so)
                result.streams["activity_histories"].deletions[f"{kind}-{record_id}"] = None
        else:
            version = (action.stream, record_id, json.dumps(record, sort_keys=True))
            if version not in seen_versions:  # the same version twice in one batch: add it once
                seen_versions.add(version)
                changes.upserts.append(record)
    return result


# Streams whose records have an entry in activity_histories, with id "<kind>-<record id>",
# that SalesLoft removes with the record and announces with no event of its own.
TIMELINE_KINDS = {"notes": "note"}


def apply_plan(wh: Warehouse, batch: Plan) -> list[StagingBuild]:
    """Writes the batch to the raw tables and merges what changed into their staging models.

    Returns the staging builds that changed something."""
    streams = sorted(batch.streams)
    if not streams:
        return []
    wh.setup([raw_table(BY_NAME[s]) for s in streams])
    for stream in streams:
        changes = batch.streams[stream]
        if changes.upserts:
            wh.upsert_records(raw_table(BY_NAME[stream]), changes.upserts, source="webhook")
        if changes.deletions:
            wh.mark_deleted(stream, changes.deletions.items(), source="webhook")
    builds = [build_staging(wh, BY_NAME[stream]) for stream in streams]
    return [build for build in builds if build.changed]
