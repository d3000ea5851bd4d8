"""Which SalesLoft webhook event applies to which stream, and how.

Every event body is the bare resource JSON. Created/updated events carry the
record's new version: it is upserted into the stream's raw table. `*_deleted`
events carry the last version: its id becomes a tombstone that hides every
version up to that `updated_at`. Event types not listed here are stored and
flagged, never applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["upsert", "delete"]


@dataclass(frozen=True)
class EventAction:
    stream: str  # a stream of salesloft_pipeline.salesloft.STREAMS
    action: Action


def _events(prefix: str, stream: str, *kinds: str) -> dict[str, EventAction]:
    return {
        f"{prefix}_{kind}": EventAction(stream, "delete" if kind == "deleted" else "upsert") for kind in kinds
    }


EVENTS: dict[str, EventAction] = {
    **_events("account", "accounts", "created", "updated", "deleted"),
    **_events("cadence", "cadences", "created", "updated", "deleted"),
    **_events("cadence_membership", "cadence_memberships", "created", "updated"),
    **_events("call", "calls", "created", "updated"),
    **_events("call_data_record", "call_data_records", "created", "updated"),
    # There is no email_created: a new email arrives as email_updated.
    "email_updated": EventAction("emails", "upsert"),
    "meeting_booked": EventAction("meetings", "upsert"),
    "meeting_updated": EventAction("meetings", "upsert"),
    **_events("note", "notes", "created", "updated", "deleted"),
    **_events("person", "people", "created", "updated", "deleted"),
    **_events("step", "steps", "created", "updated", "deleted"),
    "success_created": EventAction("successes", "upsert"),
    **_events("task", "tasks", "created", "updated", "completed", "deleted"),
    **_events("user", "users", "created", "updated"),
}
"""Event types the pipeline applies; `webhooks subscribe` subscribes to exactly these.

Documented types left out on purpose: email_with_body_and_subject_updated
(email bodies are not copied; `email_updated` carries every email change),
bulk_job_completed and link_swap (no stream of ours), and conversation_*:
conversations need Conversation Intelligence's scope, which many keys lack, and
the schedule reads them."""

APPLIED_EVENT_TYPES: tuple[str, ...] = tuple(sorted(EVENTS))


def action_for(event_type: str) -> EventAction | None:
    return EVENTS.get(event_type)
