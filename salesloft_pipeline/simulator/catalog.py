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
# Conversation Intelligence (recordings and their transcriptions) needs its own scope.
CONVERSATIONS_SCOPE = "conversations:read"


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
    # Revenue: the opportunities engagement leads to, their people and the pipeline's stages.
    SimStream("opportunities", "opportunities"),
    SimStream("opportunity_people", "opportunity_people"),
    SimStream("opportunity_stages", "opportunity_stages"),
    # A person's timeline; ids like "sent_email-8000123".
    SimStream(
        "activity_histories", "activity_histories", sort_keys=("occurred_at",), default_sort=("occurred_at", "DESC")
    ),
    # The reps' calendars: filtered by start_time/end_time, never by updated_at.
    SimStream(
        "calendar_events", "calendar/events", updated_at_filter=False, sort_keys=("start_time",),
        default_sort=("start_time", "DESC"),
    ),
    SimStream(
        "conversations", "conversations", events=_events("conversation", "created", "updated"),
        sort_keys=("duration",), scope=CONVERSATIONS_SCOPE,
    ),
    SimStream("transcriptions", "transcriptions", scope=CONVERSATIONS_SCOPE),
    # Small lists the team sets up; some records have no timestamps at all.
    SimStream("tags", "tags", updated_at_filter=False, sort_keys=("name",), default_sort=("name", "DESC")),
    SimStream(
        "saved_list_views", "saved_list_views", updated_at_filter=False, sort_keys=("name",),
        default_sort=("name", "DESC"),
    ),
    SimStream("custom_roles", "custom_roles", updated_at_filter=False, sort_keys=("name",), default_sort=("id", "DESC")),
    SimStream(
        "account_types", "account_types", updated_at_filter=False, key="name", sort_keys=("name",),
        default_sort=("name", "ASC"),
    ),
    SimStream("account_team_member_roles", "account_team_member_roles", updated_at_filter=False),
    SimStream(
        "crm_activity_fields", "crm_activity_fields", updated_at_filter=False, sort_keys=("title",),
        default_sort=("title", "ASC"),
    ),
    SimStream("crm_account_team_members", "crm_account_team_members", updated_at_filter=False),
    SimStream("call_instructions", "action_details/call_instructions", updated_at_filter=False),
    SimStream("pending_emails", "pending_emails", updated_at_filter=False),
    SimStream("audit_reports", "audit_reports", updated_at_filter=False),
    SimStream("external_configurations", "external/configurations", updated_at_filter=False),
    SimStream("external_mappings", "external/mappings", updated_at_filter=False),
    # One unpaged list ({"data": [...]}); written through the subscriptions API (webhooks.py).
    SimStream(
        "webhook_subscriptions", "webhook_subscriptions", updated_at_filter=False, has_paging_metadata=False,
        paged=False, default_sort=("id", "ASC"),
    ),
    SimStream("signals_registrations", "integrations/signals/registrations", updated_at_filter=False),
    SimStream("registrations_plays", "integrations/signals/registrations/plays", updated_at_filter=False),
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
        "conversation_recording_created",
        "link_swap",
    ]
)
