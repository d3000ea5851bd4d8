"""The registry of SalesLoft streams: one line a stream.

Assets, tables, checks and docs are generated from `STREAMS`. A stream with a
cursor is read incrementally in ascending `updated_at` (keyset paging); one
without is a full-refresh list, paged normally. Paging quirks the reader
handles for every list: `/users` pages only when `page` is sent (we always
send it), `/groups` answers without `metadata.paging`, and `next_page` may be
set on an exactly full last page.
"""

from __future__ import annotations

from dataclasses import dataclass

from salesloft_pipeline.salesloft import models
from salesloft_pipeline.salesloft.models import Record


@dataclass(frozen=True)
class Stream:
    name: str
    path: str  # relative to the base URL, e.g. "activities/emails"
    cursor: str | None = "updated_at"  # None: full refresh
    model: type[Record] = Record
    primary_key: str = "id"
    # OAuth/API scope the stream needs beyond the default ones; without it the
    # stream is skipped and the others carry on.
    required_scope: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # sent with every request

    @property
    def incremental(self) -> bool:
        return self.cursor is not None


FULL = None  # cursor of a full-refresh stream
# Conversation Intelligence's scope: conversations and their transcriptions.
CONVERSATIONS_SCOPE = "conversations:read"

STREAMS: tuple[Stream, ...] = (
    Stream("users", "users", FULL, models.User),
    Stream("people", "people", model=models.Person),
    Stream("accounts", "accounts", model=models.Account),
    Stream("cadences", "cadences", model=models.Cadence),
    Stream("cadence_memberships", "cadence_memberships", model=models.CadenceMembership),
    Stream("steps", "steps", FULL, models.Step),
    Stream("emails", "activities/emails", model=models.Email),
    # The same emails with their subject: needs the privileged email contents scope.
    Stream(
        "email_contents",
        "activities/emails",
        model=models.Email,
        required_scope="email_contents:read",
        params=(("scoped_fields[]", "subject"),),
    ),
    Stream("calls", "activities/calls", model=models.Call),
    Stream("meetings", "meetings", model=models.Meeting),
    Stream("notes", "notes"),
    Stream("successes", "successes"),
    Stream("actions", "actions"),
    Stream("tasks", "tasks"),
    Stream("call_data_records", "call_data_records"),
    Stream("crm_activities", "crm_activities"),
    Stream("email_templates", "email_templates"),
    Stream("team_templates", "team_templates"),  # ids are UUID strings
    Stream("account_stages", "account_stages"),
    Stream("account_tiers", "account_tiers", FULL),
    Stream("person_stages", "person_stages", FULL),
    Stream("call_dispositions", "call_dispositions", FULL),
    Stream("call_sentiments", "call_sentiments", FULL),
    Stream("groups", "groups", FULL),  # answers without metadata.paging
    Stream("custom_fields", "custom_fields", FULL),
    Stream("imports", "imports", FULL),
    Stream("phone_number_assignments", "phone_number_assignments", FULL),
    Stream("crm_users", "crm_users", FULL),
    Stream("email_template_attachments", "email_template_attachments", FULL),
    Stream("team_template_attachments", "team_template_attachments", FULL),
    Stream("searches", "meetings/settings/searches", FULL),
    # Revenue: what engagement finally leads to.
    Stream("opportunities", "opportunities", model=models.Opportunity),
    Stream("opportunity_people", "opportunity_people"),  # person_id, opportunity_id as plain ints
    Stream("opportunity_stages", "opportunity_stages"),
    # One row per thing that happened to a person, account or opportunity; ids like "sent_email-722488662".
    Stream("activity_histories", "activity_histories"),
    Stream("calendar_events", "calendar/events", FULL),  # filters on start/end time only
    # Conversation Intelligence (an add-on): the recordings' metadata and their transcriptions.
    Stream("conversations", "conversations", model=models.Conversation, required_scope=CONVERSATIONS_SCOPE),
    Stream("transcriptions", "transcriptions", model=models.Transcription, required_scope=CONVERSATIONS_SCOPE),
    Stream("tags", "tags", FULL),
    Stream("saved_list_views", "saved_list_views", FULL),
    Stream("custom_roles", "custom_roles", FULL),
    Stream("account_types", "account_types", FULL, models.AccountType, primary_key="name"),  # no id
    Stream("account_team_member_roles", "account_team_member_roles", FULL),
    Stream("crm_activity_fields", "crm_activity_fields", FULL),
    Stream("crm_account_team_members", "crm_account_team_members", FULL),
    Stream("call_instructions", "action_details/call_instructions", FULL),
    Stream("pending_emails", "pending_emails", FULL),
    Stream("audit_reports", "audit_reports", FULL),  # report requests, with a download link each
    Stream("external_configurations", "external/configurations", FULL),
    Stream("external_mappings", "external/mappings", FULL),
    Stream("webhook_subscriptions", "webhook_subscriptions", FULL, models.WebhookSubscription),  # unpaged; no secret kept
    Stream("signals_registrations", "integrations/signals/registrations", FULL),
    Stream("registrations_plays", "integrations/signals/registrations/plays", FULL),
)

BY_NAME: dict[str, Stream] = {stream.name: stream for stream in STREAMS}


def get_stream(name: str) -> Stream:
    """The stream called `name`; a clear error listing the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown SalesLoft stream {name!r}; known streams: {known}") from None
