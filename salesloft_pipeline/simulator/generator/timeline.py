"""The activity seen again: activity histories (people's timelines) and calendar events (the reps' calendars).

Both are derived from records the activity family made, read back from
the store, with no random draws of their own:
- activity_histories: one per sent email (`sent_email-<email id>`), per
  call (`call-<call id>`) and per note on a person (`note-<note id>`), on
  the person (`resource_type` "person"); `occurred_at` is when it happened,
  `updated_at` the source record's (an email's opens and replies change its
  history's `dynamic_data`). The email's subject is left out: the simulator
  serves subjects only with the `email_contents:read` scope.
- calendar_events: one per meeting, in the calendar of the rep who booked
  it; its id is the meeting's `event_id` (the calendar provider's), its
  times are in that rep's time zone, a cancelled meeting is a cancelled
  event. Beside them, each rep has one internal event a week (a pipeline
  review, a 1:1, ...), from the window's first day on, so every calendar
  has events even in a team too small to have booked a meeting yet.
The builders are shared with activity.py, so live records look the same.
`TimelineHistory` is the history's mixin for them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..store import instant_us
from .activities import SENT_STATUSES
from .common import CLOCK, DAY_US, HOUR_US, MINUTE_US, TEAM_ID, HistoryBase, stable_hash

INTERNAL_EVENTS = ("Pipeline review", "1:1 with manager", "Team standup", "Deal desk", "Forecast call")


def email_history(email: dict[str, Any], user_guid: str) -> dict[str, Any] | None:
    """The history entry of an email, or None if it was not sent."""
    if email["status"] not in SENT_STATUSES or email["sent_at"] is None:
        return None
    counts = email["counts"]
    return {
        "id": f"sent_email-{email['id']}", "type": "sent_email", "resource_type": "person",
        "resource_id": email["recipient"]["id"], "user_guid": user_guid,
        "occurred_at": email["sent_at"], "pinned_at": None, "created_at": email["sent_at"],
        "updated_at": email["updated_at"], "tags": [], "static_data": {"email_id": email["id"]},
        "dynamic_data": {
            "status": email["status"], "bounced": email["bounced"],
            "counts": {"views": counts["views"], "replies": counts["replies"], "clicks": counts["clicks"]},
        },
        "failed_dynamic_resources": [],
    }


def call_history(call: dict[str, Any], user_guid: str) -> dict[str, Any]:
    return {
        "id": f"call-{call['id']}", "type": "call", "resource_type": "person",
        "resource_id": call["called_person"]["id"], "user_guid": user_guid,
        "occurred_at": call["created_at"], "pinned_at": None, "created_at": call["created_at"],
        "updated_at": call["updated_at"], "tags": [], "static_data": {"call_id": call["id"]},
        "dynamic_data": {"disposition": call["disposition"], "sentiment": call["sentiment"], "duration": call["duration"]},
        "failed_dynamic_resources": [],
    }


def note_history(note: dict[str, Any], user_guid: str) -> dict[str, Any] | None:
    """The history entry of a note on a person, or None for a note on an account."""
    if note["associated_type"] != "person":
        return None
    return {
        "id": f"note-{note['id']}", "type": "note", "resource_type": "person",
        "resource_id": note["associated_with"]["id"], "user_guid": user_guid,
        "occurred_at": note["created_at"], "pinned_at": None, "created_at": note["created_at"],
        "updated_at": note["updated_at"], "tags": [], "static_data": {"note_id": note["id"]},
        "dynamic_data": {"content": note["content"]}, "failed_dynamic_resources": [],
    }


def calendar_event(meeting: dict[str, Any], zone: str) -> dict[str, Any]:
    """The event of a meeting in its booker's calendar (start and end in the booker's zone)."""
    event_id = meeting["event_id"]
    cancelled = meeting["canceled_at"] is not None
    organizer = meeting["calendar_id"]
    return {
        "id": event_id, "i_cal_uid": meeting["i_cal_uid"], "calendar_id": organizer,
        "user_guid": meeting["booked_by_user"]["id"], "tenant_id": TEAM_ID,
        "title": meeting["title"], "description": meeting["description"], "location": meeting["location"],
        "status": "cancelled" if cancelled else "confirmed", "provider": "google",
        "organizer": organizer, "creator": organizer,
        "start_time": CLOCK.format(instant_us(meeting["start_time"]), zone),
        "end_time": CLOCK.format(instant_us(meeting["end_time"]), zone),
        "all_day": meeting["all_day"], "busy": not cancelled, "recurring": False, "recurrence": [],
        "recurring_interval": None, "series_master_event_id": None,
        "created_at": meeting["created_at"], "updated_at": meeting["updated_at"],
        "canceled_at": meeting["canceled_at"], "last_occurrence_at": None,
        "html_link": f"https://www.google.com/calendar/event?eid={event_id}", "body_html": "",
        "extended_properties": {}, "conference_data": {},
        "attendees": [
            {"email": organizer, "name": None, "status": "accepted", "organizer": True},
            {
                "email": meeting["recipient_email"], "name": meeting["recipient_name"],
                "status": "declined" if cancelled else ("accepted", "needsAction", "tentative")[meeting["id"] % 3],
                "organizer": False,
            },
        ],
    }


def internal_event(
    event_id: str, user_guid: str, email: str, zone: str, title: str, at: int, created: int, guest: str,
) -> dict[str, Any]:
    """A rep's internal event: 30 minutes, with a colleague, created when the team set up its calendars."""
    return {
        "id": event_id, "i_cal_uid": f"{event_id}@google.com", "calendar_id": email, "user_guid": user_guid,
        "tenant_id": TEAM_ID, "title": title, "description": "", "location": "", "status": "confirmed",
        "provider": "google", "organizer": email, "creator": email,
        "start_time": CLOCK.format(at, zone), "end_time": CLOCK.format(at + 30 * MINUTE_US, zone),
        "all_day": False, "busy": True, "recurring": False, "recurrence": [], "recurring_interval": None,
        "series_master_event_id": None, "created_at": CLOCK.format(created, "UTC"),
        "updated_at": CLOCK.format(created, "UTC"), "canceled_at": None, "last_occurrence_at": None,
        "html_link": f"https://www.google.com/calendar/event?eid={event_id}", "body_html": "",
        "extended_properties": {}, "conference_data": {},
        "attendees": [
            {"email": email, "name": None, "status": "accepted", "organizer": True},
            {"email": guest, "name": None, "status": "accepted", "organizer": False},
        ],
    }


class TimelineHistory(HistoryBase):
    """Activity histories and calendar events, from the activity (after the other families)."""

    def timeline(self) -> None:
        guid_of = dict(zip(self.user_ids, self.user_guids))
        zone_of_guid = dict(zip(self.user_guids, self.user_zones))
        histories: list[dict[str, Any]] = []
        for stream, build in (("emails", email_history), ("calls", call_history), ("notes", note_history)):
            for blob in self.store.table(stream).blobs.values():
                source = orjson.loads(blob)
                entry = build(source, guid_of[source["user"]["id"]])
                if entry is not None:
                    histories.append(entry)
            self.store.load("activity_histories", histories)
            histories.clear()
        self.store.load("calendar_events", [
            calendar_event(meeting, zone_of_guid.get(meeting["booked_by_user"]["id"], "UTC"))
            for meeting in map(orjson.loads, self.store.table("meetings").blobs.values())
        ])
        internal = []
        first = self.start + min(12 * HOUR_US, self.days * DAY_US // 2)
        for u, (guid, email, zone) in enumerate(zip(self.user_guids, self.user_emails, self.user_zones)):
            at = first + (u % 6) * HOUR_US // 2
            week = 0
            while at + 30 * MINUTE_US <= self.end:
                digits = stable_hash("calendar", guid, week) << 40 | stable_hash("event", guid, week)
                event_id = "%026x" % (digits & ((1 << 104) - 1))
                internal.append(internal_event(
                    event_id, guid, email, zone, INTERNAL_EVENTS[(u + week) % len(INTERNAL_EVENTS)], at,
                    self.start + MINUTE_US + u * 1_117, self.user_emails[(u + 1) % len(self.user_emails)],
                ))
                at += 7 * DAY_US
                week += 1
        self.store.load("calendar_events", internal)
