"""Pydantic models of SalesLoft records, tolerant of the API's quirks.

Every model keeps unknown fields (SalesLoft adds fields without notice), every
field but `id` may be missing or null, ids may be integers or strings, and
timestamps are normalised to UTC without changing the instant they name.
Dump records with `dump_record` so that fields absent from the API's answer
stay absent and references keep their `_href` key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _to_utc(value: datetime) -> datetime:
    # SalesLoft mixes offsets (-04:00, -05:00, Z); a naive value is taken as UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


Timestamp = Annotated[datetime, AfterValidator(_to_utc)]
"""An ISO-8601 instant, stored in UTC with its microseconds."""

Id = int | str
"""Most ids are integers; team templates, user guids and roles use strings."""


class SalesloftModel(BaseModel):
    """Base of every model: unknown fields are kept, names and aliases both accepted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Reference(SalesloftModel):
    """A link to another record: `{"_href": ..., "id": ...}`; `_href` is sometimes absent."""

    id: Id | None = None
    href: str | None = Field(default=None, alias="_href")


class Record(SalesloftModel):
    """Any SalesLoft record: an id and, usually, creation and update times."""

    id: Id
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class Counts(SalesloftModel):
    """Activity counters; which keys appear depends on the record type."""


class Person(Record):
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    email_address: str | None = None
    title: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    job_seniority: str | None = None
    do_not_contact: bool | None = None
    bouncing: bool | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    counts: Counts | None = None
    account: Reference | None = None
    owner: Reference | None = None
    person_stage: Reference | None = None
    import_: Reference | None = Field(default=None, alias="import")
    most_recent_cadence: Reference | None = None
    cadences: list[Reference] | None = None
    last_contacted_at: Timestamp | None = None
    last_replied_at: Timestamp | None = None


class Cadence(Record):
    name: str | None = None
    team_cadence: bool | None = None
    shared: bool | None = None
    draft: bool | None = None
    archived_at: Timestamp | None = None
    cadence_function: str | None = None
    tags: list[str] | None = None
    owner: Reference | None = None
    creator: Reference | None = None
    groups: list[Reference] | None = None
    counts: Counts | None = None


class CadenceMembership(Record):
    added_at: Timestamp | None = None
    person_deleted: bool | None = None
    currently_on_cadence: bool | None = None
    current_state: str | None = None
    person: Reference | None = None
    cadence: Reference | None = None
    user: Reference | None = None
    latest_action: Reference | None = None
    counts: Counts | None = None


class Email(Record):
    status: str | None = None
    bounced: bool | None = None
    sent_at: Timestamp | None = None
    send_after: Timestamp | None = None
    recipient_email_address: str | None = None
    view_tracking: bool | None = None
    click_tracking: bool | None = None
    # A string in real answers ("100.0"); kept as sent.
    personalization: str | float | None = None
    subject: str | None = None
    counts: Counts | None = None
    user: Reference | None = None
    recipient: Reference | None = None
    cadence: Reference | None = None
    step: Reference | None = None
    email_template: Reference | None = None
    action: Reference | None = None
    crm_activity: Reference | None = None
    mailing: Reference | None = None
    task: Reference | None = None


class Call(Record):
    to: str | None = None
    duration: int | float | None = None  # seconds; null on calls not connected
    disposition: str | None = None
    sentiment: str | None = None
    recordings: list[Any] | None = None
    user: Reference | None = None
    called_person: Reference | None = None
    cadence: Reference | None = None
    step: Reference | None = None
    action: Reference | None = None
    note: Reference | None = None
    crm_activity: Reference | None = None


class User(Record):
    guid: str | None = None
    name: str | None = None
    email: str | None = None
    active: bool | None = None
    team_admin: bool | None = None
    time_zone: str | None = None
    group: Reference | None = None
    team: Reference | None = None
    role: Reference | None = None


class Account(Record):
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    size: str | int | None = None
    archived_at: Timestamp | None = None
    owner: Reference | None = None
    account_tier: Reference | None = None
    company_stage: Reference | None = None
    counts: Counts | None = None
    custom_fields: dict[str, Any] | None = None
    tags: list[str] | None = None


class Step(Record):
    name: str | None = None
    display_name: str | None = None
    day: int | None = None
    step_number: int | None = None
    type: str | None = None
    disabled: bool | None = None
    cadence: Reference | None = None


class Meeting(Record):
    title: str | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    status: str | None = None
    no_show: bool | None = None
    canceled_at: Timestamp | None = None
    person: Reference | None = None
    cadence: Reference | None = None
    step: Reference | None = None
    booked_by_user: Reference | None = None
    event_source: str | None = None


class Opportunity(Record):
    name: str | None = None
    # Strings in SalesLoft's answers ("5000.00", "50"); kept as sent, typed in staging.
    amount: str | float | None = None
    probability: str | float | None = None
    stage_name: str | None = None
    is_closed: bool | None = None
    is_won: bool | None = None
    # When the CRM opened and (expects to) close it; created_at is when SalesLoft first saw it.
    created_date: Timestamp | None = None
    close_date: Timestamp | None = None
    custom_fields: dict[str, Any] | None = None
    tags: list[str] | None = None
    owner: Reference | None = None
    creator: Reference | None = None
    account: Reference | None = None
    most_recent_cadence: Reference | None = None
    most_recent_step: Reference | None = None


class Conversation(Record):
    """A Conversation Intelligence recording's metadata; its id and its references' ids are strings."""

    title: str | None = None
    duration: int | float | None = None  # milliseconds
    platform: str | None = None
    person: Reference | None = None
    account: Reference | None = None


class Transcription(Record):
    language_code: str | None = None
    conversation: Reference | None = None


class AccountType(Record):
    """Account types have no id: the name is the key, and is stored as `id` too."""

    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_is_the_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and data.get("name") is not None:
            return {**data, "id": data["name"]}
        return data


class WebhookSubscription(Record):
    """A webhook subscription, without its `callback_token`: that is the secret the
    deliveries are signed with (ours among them), and it has no business in a warehouse."""

    event_type: str | None = None
    enabled: bool | None = None
    callback_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_the_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "callback_token" in data:
            return {key: value for key, value in data.items() if key != "callback_token"}
        return data


def dump_record(record: SalesloftModel) -> dict[str, Any]:
    """The record as JSON-ready data: UTC timestamps, original keys, nothing added."""
    return record.model_dump(mode="json", by_alias=True, exclude_unset=True)


def dump_record_json(record: SalesloftModel) -> str:
    """`dump_record` as one line of JSON."""
    return record.model_dump_json(by_alias=True, exclude_unset=True)
