"""What the simulator serves: SalesLoft's streams as SalesLoft documents them.

This table is the simulator's own and deliberately independent of the
client's stream registry (`salesloft_pipeline.salesloft.streams`), so a
mistake in one is caught by tests against the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SimStream:
    name: str
    path: str  # under /v2, without a leading slash or .json
    updated_at_filter: bool = True
    # Webhook event types by change kind ("created", "updated", "deleted", ...).
    events: dict[str, str] = field(default_factory=dict)
    default_sort: tuple[str, str] = ("updated_at", "DESC")
    has_paging_metadata: bool = True
    pages_only_with_page_param: bool = False
    # Sort keys the list takes beyond updated_at, created_at and id (SORT_KEYS).
    sort_keys: tuple[str, ...] = ()
    # The field that identifies a record: account types have no id, only a name.
    key: str = "id"
    # A scope the API key needs beyond the default ones, for the list and its records.
    scope: str | None = None
    # False: one answer holds the whole list, whatever `page` says (it costs 1).
    paged: bool = True


# sort_by values every list takes.
SORT_KEYS: tuple[str, ...] = ("updated_at", "created_at", "id")


def _events(prefix: str, *kinds: str) -> dict[str, str]:
    return {kind: f"{prefix}_{kind}" for kind in kinds}


STREAMS: tuple[SimStream, ...] = (
    SimStream(
        "users",
        "users",
        updated_at_filter=False,
        events=_events("user", "created", "updated"),
        default_sort=("id", "ASC"),
        pages_only_with_page_param=True,
    ),
    SimStream("people", "people", events=_events("person", "created", "updated", "deleted")),
    SimStream("accounts", "accounts", events=_events("account", "created", "updated", "deleted")),
    SimStream("cadences", "cadences", events=_events("cadence", "created", "updated", "deleted")),
    SimStream(
        "cadence_memberships",
        "cadence_memberships",
        events=_events("cadence_membership", "created", "updated"),
    ),
    SimStream(
        "steps", "steps", updated_at_filter=False, events=_events("step", "created", "updated", "deleted")
    ),
    # SalesLoft sends no email_created: a new email is announced by email_updated.
    SimStream(
        "emails", "activities/emails", events={"created": "email_updated", "updated": "email_updated"}
    ),
    SimStream("calls", "activities/calls", events=_events("call", "created", "updated")),
    SimStream("meetings", "meetings", events={"created": "meeting_booked", "updated": "meeting_updated"}),
    SimStream("notes", "notes", events=_events("note", "created", "updated", "deleted")),
    SimStream("successes", "successes", events=_events("success", "created")),
    SimStream("actions", "actions"),
    SimStream("tasks", "tasks", events=_events("task", "created", "updated", "completed", "deleted")),
    SimStream(
        "call_data_records",
        "call_data_records",
        events=_events("call_data_record", "created", "updated"),
    ),
    SimStream("crm_activities", "crm_activities"),
    SimStream("email_templates", "email_templates"),
    SimStream("team_templates", "team_templates"),
    SimStream("account_stages", "account_stages"),
    SimStream("account_tiers", "account_tiers", updated_at_filter=False),
    SimStream("person_stages", "person_stages", updated_at_filter=False),
    SimStream("call_dispositions", "call_dispositions", updated_at_filter=False),
    SimStream("call_sentiments", "call_sentiments", updated_at_filter=False),
    SimStream("groups", "groups", updated_at_filter=False, has_paging_metadata=False),
    SimStream("custom_fields", "custom_fields", updated_at_filter=False),
    SimStream("imports", "imports", updated_at_filter=False),
    SimStream("phone_number_assignments", "phone_number_assignments", updated_at_filter=False),
    SimStream("crm_users", "crm_users", updated_at_filter=False),
    SimStream("email_template_attachments", "email_template_attachments", updated_at_filter=False),
    SimStream("team_template_attachments", "team_template_attachments", updated_at_filter=False),
    SimStream("searches", "meetings/settings/searches", updated_at_filter=False),
)

BY_NAME: dict[str, SimStream] = {s.name: s for s in STREAMS}
BY_PATH: dict[str, SimStream] = {s.path: s for s in STREAMS}

# Every webhook event type SalesLoft documents, including ones the simulator
# never emits (subscriptions to them are still accepted).
EVENT_TYPES: frozenset[str] = frozenset(
    [e for s in STREAMS for e in s.events.values()]
    + [
        "email_with_body_and_subject_updated",
        "bulk_job_completed",
        "conversation_created",
        "conversation_updated",
        "conversation_recording_created",
        "link_swap",
    ]
)
