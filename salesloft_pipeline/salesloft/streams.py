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
)

BY_NAME: dict[str, Stream] = {stream.name: stream for stream in STREAMS}


def get_stream(name: str) -> Stream:
    """The stream called `name`; a clear error listing the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown SalesLoft stream {name!r}; known streams: {known}") from None
