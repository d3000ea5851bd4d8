"""The models against every real SalesLoft record captured in the fixtures: nothing lost."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from salesloft_pipeline.salesloft import models
from salesloft_pipeline.salesloft.models import Record, Reference, dump_record, dump_record_json
from salesloft_pipeline.salesloft.streams import BY_NAME, STREAMS

FIXTURES = Path(__file__).parent / "fixtures" / "salesloft_real_records.jsonl"
# Airbyte's capture names the /v2/imports stream "import".
FIXTURE_STREAM_NAMES = {"import": "imports"}


def fixture_records() -> list[tuple[str, dict[str, Any]]]:
    lines = FIXTURES.read_text().splitlines()
    return [
        (FIXTURE_STREAM_NAMES.get(item["stream"], item["stream"]), item["data"])
        for item in map(json.loads, lines)
    ]


RECORDS = fixture_records()


def same_meaning(original: Any, dumped: Any, where: str = "record") -> None:
    """`dumped` says what `original` says: same keys, same values, timestamps as the same instant."""
    if isinstance(original, dict):
        assert isinstance(dumped, dict), where
        assert set(dumped) == set(original), (where, set(original) ^ set(dumped))
        for key in original:
            same_meaning(original[key], dumped[key], f"{where}.{key}")
    elif isinstance(original, list):
        assert isinstance(dumped, list) and len(dumped) == len(original), where
        for i, (a, b) in enumerate(zip(original, dumped)):
            same_meaning(a, b, f"{where}[{i}]")
    elif isinstance(original, str) and original != dumped:
        # Only timestamps may be respelled, and only to UTC naming the same instant.
        assert datetime.fromisoformat(original) == datetime.fromisoformat(dumped), (where, original, dumped)
        assert dumped.endswith("Z"), (where, dumped)
    else:
        assert original == dumped and type(original) is type(dumped), (where, original, dumped)


def test_fixtures_cover_28_streams_all_in_the_registry() -> None:
    names = {name for name, _ in RECORDS}
    assert len(RECORDS) == 70 and len(names) == 28
    assert names <= set(BY_NAME)


@pytest.mark.parametrize("stream,data", RECORDS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(RECORDS)])
def test_every_real_record_validates_and_dumps_unchanged_in_meaning(stream: str, data: dict[str, Any]) -> None:
    record = BY_NAME[stream].model.model_validate(data)
    same_meaning(data, dump_record(record))
    same_meaning(data, json.loads(dump_record_json(record)))


def test_timestamps_are_utc_and_keep_the_instant() -> None:
    email = models.Email.model_validate(
        {"id": 1, "updated_at": "2021-09-16T11:03:06.789805-04:00", "sent_at": "2021-09-16T13:15:56.122269Z"}
    )
    assert email.updated_at == datetime(2021, 9, 16, 15, 3, 6, 789805, tzinfo=timezone.utc)
    assert email.updated_at.utcoffset().total_seconds() == 0
    assert dump_record(email)["updated_at"] == "2021-09-16T15:03:06.789805Z"
    assert email.sent_at == datetime(2021, 9, 16, 13, 15, 56, 122269, tzinfo=timezone.utc)


def test_references_tolerate_missing_href_string_ids_and_null() -> None:
    email = models.Email.model_validate(
        {"id": 1, "mailing": {"id": 3124568}, "user": {"_href": "https://x/v2/users/6970", "id": 6970}, "step": None}
    )
    assert email.mailing == Reference(id=3124568)
    assert email.mailing.href is None
    assert email.user.href == "https://x/v2/users/6970" and email.user.id == 6970
    assert email.step is None
    meeting = models.Meeting.model_validate({"id": 2, "booked_by_user": {"id": "58d151f8-9b0b"}})
    assert meeting.booked_by_user.id == "58d151f8-9b0b"
    user = models.User.model_validate({"id": 3, "role": {"id": "Admin"}})
    assert user.role.id == "Admin"
    # Dumping adds no `_href` where the API sent none.
    assert dump_record(email)["mailing"] == {"id": 3124568}


def test_string_ids_are_kept_as_strings() -> None:
    template = Record.model_validate({"id": "75621893-cf7f-41d3-bb45-6d31afc8914c"})
    assert template.id == "75621893-cf7f-41d3-bb45-6d31afc8914c"
    assert Record.model_validate({"id": 7}).id == 7


def test_unknown_fields_and_nulls_are_kept() -> None:
    data = {"id": 1, "duration": None, "brand_new": {"nested": [1, 2]}, "counts": {"cadence_people": None, "x": 1}}
    call = models.Call.model_validate(data)
    assert call.duration is None
    assert dump_record(call) == data


def test_a_record_without_an_id_or_with_a_bad_timestamp_does_not_validate() -> None:
    with pytest.raises(ValidationError):
        Record.model_validate({"updated_at": "2021-09-16T11:03:06.789805-04:00"})
    with pytest.raises(ValidationError):
        Record.model_validate({"id": 1, "updated_at": "yesterday"})


def test_registry_lists_every_documented_stream_once() -> None:
    documented = {
        "users": "users", "people": "people", "accounts": "accounts", "cadences": "cadences",
        "cadence_memberships": "cadence_memberships", "steps": "steps", "emails": "activities/emails",
        "calls": "activities/calls", "meetings": "meetings", "notes": "notes", "successes": "successes",
        "actions": "actions", "tasks": "tasks", "call_data_records": "call_data_records",
        "crm_activities": "crm_activities", "email_templates": "email_templates",
        "team_templates": "team_templates", "account_stages": "account_stages",
        "account_tiers": "account_tiers", "person_stages": "person_stages",
        "call_dispositions": "call_dispositions", "call_sentiments": "call_sentiments",
        "groups": "groups", "custom_fields": "custom_fields", "imports": "imports",
        "phone_number_assignments": "phone_number_assignments", "crm_users": "crm_users",
        "email_template_attachments": "email_template_attachments",
        "team_template_attachments": "team_template_attachments",
        "searches": "meetings/settings/searches",
    }
    assert len({s.name for s in STREAMS}) == len(STREAMS)
    for name, path in documented.items():
        assert BY_NAME[name].path == path
    incremental = {
        "people", "cadences", "cadence_memberships", "emails", "calls", "accounts", "account_stages",
        "actions", "call_data_records", "crm_activities", "email_templates", "notes", "successes",
        "team_templates", "tasks", "meetings",
    }
    for name in documented:
        assert BY_NAME[name].incremental == (name in incremental), name
        assert BY_NAME[name].primary_key == "id"
    assert BY_NAME["email_contents"].required_scope
