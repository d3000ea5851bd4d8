"""Deterministic history of a SalesLoft team: every stream, coherent and realistic.

`populate(store, config)` fills a Store with `config.days` days of a team's work
ending at `config.anchor`. Same seed, people, days and anchor give byte-identical
records; nothing is timestamped after the anchor, nothing before the window start.

Rates (per person in the database per calendar day; weekdays and business
hours carry most of it, weekends ~15%):

| record | rate |
| --- | --- |
| emails | 0.5 per person per day (sent 94%, bounce 3.5% of sent; of delivered: opened ~40%, clicked ~4%, replied ~6%) |
| calls | 0.2 per person per day (Connected ~17%; duration null for most non-connected calls) |
| call_data_records | 90% of calls |
| crm_activities | 30% of emails and calls are logged to the CRM |
| actions | every cadence call, 25% of cadence emails (manual steps), one pending per active membership |
| notes | 25% of calls, plus 0.003 account notes per person per day |
| meetings | 25% of replies and 18% of connected calls (10% cancelled, 8% no-show); one success each |
| tasks | 0.03 per person per day (60% completed) |
| cadence_memberships | 0.9 × (1 + days/60) per person, one per person and cadence |

So `--people 5000 --days 90` gives ~225k emails and ~90k calls (a team of 50
reps each sending ~50 emails and making ~20 calls a day); users are
people/100 (at least 3), accounts people/4, cadences 3 + 1.5 per user.

Quirks of real records are reproduced on purpose: microsecond timestamps in
the owning user's time zone (offsets vary between records, meetings are in Z),
references with and without `_href`, string ids (team templates, user guids,
roles), nullable counts and durations, `personalization` as a string, fields
of newer SalesLoft features on some records, and bulk edits that give
150-400 people or memberships one identical `updated_at`.
"""

from __future__ import annotations

import gc
import random
from bisect import bisect_right
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .config import SimulatorConfig
from .store import Store

API = "https://api.salesloft.com/v2"
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

# Rates per person per calendar day (see the module docstring).
EMAILS_PER_PERSON_DAY = 0.5
CALLS_PER_PERSON_DAY = 0.2
TASKS_PER_PERSON_DAY = 0.03
ACCOUNT_NOTES_PER_PERSON_DAY = 0.003
CRM_LOGGED_SHARE = 0.3
CDR_SHARE = 0.9
CALL_NOTE_SHARE = 0.25
MANUAL_EMAIL_SHARE = 0.25
OPEN_RATE = 0.42  # of delivered emails with view tracking
CLICK_GIVEN_OPEN = 0.15  # with click tracking
REPLY_GIVEN_OPEN = 0.12
REPLY_WITHOUT_OPEN = 0.02
BOUNCE_RATE = 0.035
MEETING_FROM_REPLY = 0.25
MEETING_FROM_CONNECT = 0.18

# First id of each stream: magnitudes seen in real accounts. New records
# continue from the largest id (Store.next_id).
ID_BASE = {
    "users": 52_000,
    "people": 103_000_000,
    "accounts": 35_000_000,
    "cadences": 340_000,
    "cadence_memberships": 71_000_000,
    "steps": 198_000,
    "emails": 8_000_000,
    "calls": 2_100_000,
    "call_data_records": 95_000_000,
    "meetings": 660_000,
    "notes": 1_029_000,
    "successes": 34_000,
    "actions": 343_000_000,
    "tasks": 1_230_000,
    "crm_activities": 11_300_000,
    "email_templates": 6_600_000,
    "account_stages": 5_004,
    "account_tiers": 3_467,
    "person_stages": 10_147,
    "call_dispositions": 8_740,
    "call_sentiments": 15_076,
    "groups": 11_818,
    "custom_fields": 37_515,
    "imports": 5_174_000,
    "phone_number_assignments": 34_935,
    "crm_users": 41_008,
    "email_template_attachments": 255_134,
    "team_template_attachments": 4_825,
    "searches": 4_002,
}
MAILING_ID_BASE = 3_124_000
TEAM_ID = 104_779

# -- time ---------------------------------------------------------------------

# Users' time zones: the first users of a team take them in this order, so even
# a tiny team shows several offsets ("UTC" renders as Z, London in winter as +00:00).
ZONE_CYCLE = ("US/Eastern", "US/Pacific", "UTC", "US/Central", "Europe/London", "US/Mountain", "Asia/Kolkata")
ZONE_WEIGHTS = (35, 25, 5, 15, 8, 8, 4)
_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
# Share of activity in each UTC hour: US and European business hours.
_HOUR_WEIGHT = [0.15] * 8 + [0.5, 0.6, 0.8] + [1.0] * 12 + [0.4]


def to_us(moment: datetime) -> int:
    """A datetime as UTC microseconds since the epoch (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * SECOND_US + delta.microseconds


class Clock:
    """Formats UTC microseconds the way SalesLoft does: local time, microseconds, offset.

    Offsets are looked up once per zone and UTC day (at noon), so formatting
    stays a few dict lookups; the instant is exact whatever offset is shown."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, int], tuple[int, str]] = {}
        self._dates: dict[int, str] = {}

    def format(self, us: int, zone: str) -> str:
        key = (zone, us // DAY_US)
        found = self._offsets.get(key)
        if found is None:
            found = self._offsets[key] = _zone_offset(zone, key[1])
        local_day, rest = divmod(us + found[0], DAY_US)
        day_text = self._dates.get(local_day)
        if day_text is None:
            day_text = self._dates[local_day] = (date(1970, 1, 1) + timedelta(days=local_day)).isoformat()
        seconds, micro = divmod(rest, SECOND_US)
        return f"{day_text}T{_HMS[seconds]}.{micro:06d}{found[1]}"

    def utc_minutes(self, us: int, zone: str) -> int:
        key = (zone, us // DAY_US)
        if key not in self._offsets:
            self._offsets[key] = _zone_offset(zone, key[1])
        return self._offsets[key][0] // MINUTE_US


def _zone_offset(zone: str, utc_day: int) -> tuple[int, str]:
    if zone == "UTC":
        return 0, "Z"
    noon = datetime(1970, 1, 1, 12, tzinfo=timezone.utc) + timedelta(days=utc_day)
    offset = ZoneInfo(zone).utcoffset(noon)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return minutes * MINUTE_US, f"{sign}{hours:02d}:{mins:02d}"


CLOCK = Clock()


def ref(path: str, record_id: Any) -> dict[str, Any]:
    return {"_href": f"{API}/{path}/{record_id}", "id": record_id}


def uuid_from(rng: random.Random) -> str:
    digits = "%032x" % rng.getrandbits(128)
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{digits[16:20]}-{digits[20:]}"


def weighted_table(values, weights) -> list:
    """Each value repeated by its weight: `table[int(random() * len(table))]` draws one fast."""
    return [value for value, weight in zip(values, weights) for _ in range(weight)]


# -- names --------------------------------------------------------------------

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra "
    "Mark Margaret Priya Arjun Wei Mei Olga Dmitri Sofia Lucas Emma Noah Olivia Liam Ava Mateo Chloe Yuki "
    "Hiro Fatima Omar Aisha Kwame Amara Lars Ingrid Pierre Camille Diego Lucia Karina Kelly"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Nguyen Hill Flores Green Adams Nelson "
    "Patel Shah Kim Chen Wang Ivanova Kuznietsova Muller Schmidt Rossi Silva Okafor Mensah Larsen Dubois"
).split()
COMPANY_WORDS = (
    "Acme Globex Initech Umbrella Stark Wayne Hooli Vandelay Soylent Cyberdyne Tyrell Wonka Gringotts "
    "Oscorp Aperture Massive Dynamic Blue Sun Northwind Contoso Fabrikam Litware Proseware Tailspin "
    "Wingtip Adatum Fourth Coffee Alpine Summit Harbor Pioneer Beacon Crescent Vertex Quantum Nimbus"
).split()
COMPANY_SUFFIXES = ("Inc", "Labs", "Systems", "Group", "Technologies", "Corp", "Health", "Logistics", "Analytics")
INDUSTRIES = (
    "Computer Software", "Information Technology and Services", "Financial Services", "Hospital & Health Care",
    "Marketing and Advertising", "Retail", "Logistics and Supply Chain", "Telecommunications", "Insurance",
    "Real Estate", "Higher Education", "Manufacturing",
)
SIZES = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+")
REVENUE_RANGES = ("$1M-$10M", "$10M-$50M", "$50M-$100M", "$100M-$500M", "$500M-$1B", "$1B+")
TITLES = (
    ("VP of Sales", "vice_president"), ("Director of Sales", "director"), ("Sales Manager", "manager"),
    ("Head of Marketing", "director"), ("Marketing Manager", "manager"), ("CTO", "executive"),
    ("CEO", "executive"), ("Chief Revenue Officer", "executive"), ("Revenue Operations Manager", "manager"),
    ("Account Executive", "individual_contributor"), ("Software Engineer", "individual_contributor"),
    ("IT Director", "director"), ("Procurement Specialist", "individual_contributor"), ("Manager", "manager"),
)
CITIES = (
    ("San Francisco, CA, US", "CA", "US", "US/Pacific"), ("New York, NY, US", "NY", "US", "US/Eastern"),
    ("Austin, TX, US", "TX", "US", "US/Central"), ("Chicago, IL, US", "IL", "US", "US/Central"),
    ("Denver, CO, US", "CO", "US", "US/Mountain"), ("Boston, MA, US", "MA", "US", "US/Eastern"),
    ("Seattle, WA, US", "WA", "US", "US/Pacific"), ("Atlanta, GA, US", "GA", "US", "US/Eastern"),
    ("London, UK", None, "GB", "Europe/London"), ("Bengaluru, IN", "KA", "IN", "Asia/Kolkata"),
)
JOB_ROLES = ("Sales Development Rep", "Account Executive / Account Manager", "Sales Manager", "Operations", "Marketing")
ACCOUNT_STAGES = ("Target", "Working", "Completed", "Disqualified", "Customer")
ACCOUNT_TIERS = ("Tier 1", "Tier 2", "Tier 3", "Tier 4")
PERSON_STAGES = (
    "Bounced", "Replied", "In Cadence", "Interested", "Not Interested", "Finished",
    "Do Not Contact", "Completed", "Meeting Booked",
)
STAGE = {name: i for i, name in enumerate(PERSON_STAGES)}
DISPOSITIONS = (
    "Connected", "No Answer", "Left Voicemail", "Busy", "Wrong Number", "Bad Number", "Gatekeeper",
    "Meeting Scheduled",
)
DISPOSITION_WEIGHTS = (17, 33, 30, 5, 4, 3, 5, 1)
SENTIMENTS = (
    "Interested", "Not Interested", "Timing Not Right", "Company - Bad Fit", "Contact - Bad Fit",
    "Customer", "Referral",
)
CUSTOM_FIELDS = (
    ("Lead Source", "person", "text"), ("Persona", "person", "text"), ("Renewal Date", "company", "date"),
    ("ARR", "company", "text"), ("Segment", "company", "text"), ("Opportunity Stage", "opportunity", "text"),
)
LEAD_SOURCES = ("Inbound", "Webinar", "Trade Show", "Outbound", "Referral", "Content Download")
EMAIL_STATUSES = ("sent", "sent_from_gmail", "sent_from_external", "failed", "scheduled", "pending")
EMAIL_STATUS_WEIGHTS = (890, 40, 10, 10, 5, 3)
EMAIL_STATUS_TABLE = weighted_table(EMAIL_STATUSES, EMAIL_STATUS_WEIGHTS)
DISPOSITION_TABLE = weighted_table(DISPOSITIONS, DISPOSITION_WEIGHTS)
SENT_STATUSES = frozenset({"sent", "sent_from_gmail", "sent_from_external"})
MEMBERSHIP_DONE_STATES = ("completed", "removed", "removed_no_action", "reassigned")
MEMBERSHIP_DONE_WEIGHTS = (60, 20, 12, 8)
MEMBERSHIP_ACTIVE_STATES = ("active", "scheduled", "staged", "processing")
MEMBERSHIP_ACTIVE_WEIGHTS = (70, 20, 8, 2)
STEP_TYPES = ("email", "phone", "integration", "other")
STEP_TYPE_WEIGHTS = (55, 35, 5, 5)
CADENCE_NAMES = (
    "Inbound Lead Follow-up", "Outbound Cold - Enterprise", "Outbound Cold - Mid-Market", "Webinar Attendees",
    "Trade Show Follow-up", "Re-engage Closed Lost", "Product Launch", "Trial Users", "Event Invite",
    "Customer Expansion", "Champion Change", "Referral Outreach",
)
CADENCE_FUNCTIONS = ("outbound", "outbound", "outbound", "inbound", "event", "other")
STEP_NAMES = ("Intro", "Value prop", "Case study", "Quick call", "Bump", "Breakup", "LinkedIn touch", "Check-in")
SUBJECT_OPENERS = (
    "Quick question", "Idea for", "Following up on", "Re:", "15 minutes to talk about", "Thoughts on",
    "A better way to handle", "How teams like yours approach", "Worth a look:", "Closing the loop on",
)
SUBJECT_TOPICS = (
    "your pipeline", "outbound at scale", "sales forecasting", "rep ramp time", "data quality",
    "Q3 planning", "your CRM hygiene", "revenue operations", "the webinar", "your team's goals",
    "meeting conversion", "renewals",
)
CALL_NOTES = {
    "Connected": ("Spoke with them, interested in a demo", "Good conversation, send pricing", "Not a priority this quarter"),
    "Left Voicemail": ("Left voicemail", "Left VM, will follow up by email"),
}
TASK_SUBJECTS = ("Follow up", "Send pricing", "Call back", "Prepare demo", "Research account", "Send case study")

# Fields of newer SalesLoft features: some records of every big stream carry
# one, as real responses do before the docs mention them.
NEW_FEATURE_FIELDS = {
    "people": ("buyer_intent", lambda i: {"score": i % 100, "surging_topics": ["sales engagement"]}),
    "accounts": ("intent_topics", lambda i: ["revenue intelligence", "forecasting"][: 1 + i % 2]),
    "cadence_memberships": ("rhythm_priority", lambda i: i % 5),
    "emails": ("ai_assist_used", lambda i: bool(i % 2)),
    "calls": ("conversation", lambda i: {"id": f"conv-{i}"}),
    "call_data_records": ("transcription_status", lambda i: "completed"),
    "meetings": ("meeting_intelligence_enabled", lambda i: True),
    "notes": ("rich_text", lambda i: False),
    "successes": ("attribution_model", lambda i: "last_touch"),
    "actions": ("rhythm_signal", lambda i: {"type": "email_opened", "score": i % 10}),
    "tasks": ("ai_generated", lambda i: bool(i % 2)),
    "crm_activities": ("sync_status", lambda i: "synced"),
}
NEW_FEATURE_EVERY = 29


def add_new_feature_field(stream: str, record: dict[str, Any]) -> None:
    """Gives every 29th record (by id) of a big stream a field of a newer feature."""
    feature = NEW_FEATURE_FIELDS.get(stream)
    if feature is not None and isinstance(record["id"], int) and record["id"] % NEW_FEATURE_EVERY == 3:
        name, value = feature
        record[name] = value(record["id"])


def email_subject(email_id: int) -> str:
    """The subject of an email: served only to keys with the privileged scope."""
    mixed = (email_id * 2_654_435_761) & 0xFFFFFFFF
    return f"{SUBJECT_OPENERS[mixed % len(SUBJECT_OPENERS)]} {SUBJECT_TOPICS[(mixed >> 8) % len(SUBJECT_TOPICS)]}"


def mailing_id(email_id: int) -> int:
    """Each email goes out in its own mailing; mailing ids run alongside email ids."""
    return email_id - ID_BASE["emails"] + MAILING_ID_BASE


def engagement_delay(rng: random.Random) -> int:
    """Time from sending (or a first open) to the next engagement: mostly hours, some days."""
    draw = rng.random()
    if draw < 0.55:
        return int(rng.random() * 4 * HOUR_US) + 30 * SECOND_US
    if draw < 0.9:
        return 4 * HOUR_US + int(rng.random() * 44 * HOUR_US)
    return 2 * DAY_US + int(rng.random() * 5 * DAY_US)


def people_counts(sent=0, viewed=0, clicked=0, replied=0, bounced=0, calls=0) -> dict[str, int]:
    return {
        "emails_sent": sent, "emails_viewed": viewed, "emails_clicked": clicked,
        "emails_replied_to": replied, "emails_bounced": bounced, "calls": calls,
    }


def membership_counts(sent=0, views=0, clicks=0, replies=0, bounces=0, calls=0) -> dict[str, int]:
    return {"views": views, "clicks": clicks, "replies": replies, "calls": calls, "sent_emails": sent, "bounces": bounces}


# -- record builders (shared with activity.py, so live records look the same) --


def email_record(
    fmt, zone: str, email_id: int, created: int, send_after: int, sent: int | None, updated: int,
    status: str, bounced: bool, counts: tuple[int, int, int, int, int, int], tracking: tuple[bool, bool],
    personalization: str, person: dict, address: str, user: dict, mailing: int,
    action: dict | None, crm_activity: dict | None, cadence: dict | None, step: dict | None,
    template: dict | None,
) -> dict[str, Any]:
    views, clicks, replies, devices, locations, attachments = counts
    record = {
        "id": email_id,
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "recipient_email_address": address,
        "status": status,
        "bounced": bounced,
        "send_after": fmt(send_after, zone),
        "sent_at": None if sent is None else fmt(sent, zone),
        "view_tracking": tracking[0],
        "click_tracking": tracking[1],
        "headers": {},
        "personalization": personalization,
        "counts": {
            "clicks": clicks, "views": views, "replies": replies, "unique_devices": devices,
            "unique_locations": locations, "attachments": attachments,
        },
        "user": user,
        "recipient": person,
        "mailing": {"id": mailing},
        "action": action,
        "task": None,
        "crm_activity": crm_activity,
        "cadence": cadence,
        "step": step,
        "email_template": template,
    }
    add_new_feature_field("emails", record)
    return record


def call_record(
    fmt, zone: str, call_id: int, created: int, updated: int, to: str, duration: int | None,
    disposition: str | None, sentiment: str | None, recordings: list, user: dict, person: dict,
    action: dict | None, crm_activity: dict | None, note: dict | None, cadence: dict | None, step: dict | None,
) -> dict[str, Any]:
    record = {
        "id": call_id,
        "to": to,
        "duration": duration,
        "sentiment": sentiment,
        "disposition": disposition,
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "recordings": recordings,
        "user": user,
        "action": action,
        "called_person": person,
        "crm_activity": crm_activity,
        "note": note,
        "cadence": cadence,
        "step": step,
    }
    add_new_feature_field("calls", record)
    return record


def call_data_record(
    fmt, zone: str, cdr_id: int, created: int, updated: int, call: dict, to: str, from_number: str,
    duration: int | None, disposition: str | None, recordings: list, user: dict, person: dict, call_uuid: str,
) -> dict[str, Any]:
    status = {"Connected": "completed", "Busy": "busy", "Bad Number": "failed"}.get(disposition or "", "no-answer")
    if disposition == "Left Voicemail":
        status = "completed"
    record = {
        "id": cdr_id,
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "to": to,
        "from": from_number,
        "duration": duration or 0,
        "direction": "outbound",
        "status": status,
        "call_type": "call",
        "call_uuid": call_uuid,
        "recording": recordings[0] if recordings else None,
        "call": call,
        "called_person": person,
        "user": user,
    }
    add_new_feature_field("call_data_records", record)
    return record


def note_record(
    fmt, zone: str, note_id: int, created: int, updated: int, content: str, associated_type: str,
    associated_with: dict, user: dict, call: dict | None,
) -> dict[str, Any]:
    record = {
        "id": note_id,
        "content": content,
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "associated_type": associated_type,
        "user": user,
        "associated_with": associated_with,
        "call": call,
    }
    add_new_feature_field("notes", record)
    return record


def task_record(
    fmt, zone: str, task_id: int, created: int, updated: int, due: int, completed: int | None,
    task_type: str, subject: str, user: dict, person: dict, account: dict | None, remind: int | None,
) -> dict[str, Any]:
    record = {
        "id": task_id,
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "user": user,
        "person": person,
        "account": account,
        "created_by_user": user,
        "completed_by_user": user if completed is not None else None,
        "subject": subject,
        "description": f"{subject} ({task_type})",
        "current_state": "completed" if completed is not None else "scheduled",
        "task_type": task_type,
        "due_date": fmt(due, zone)[:10],
        "due_at": fmt(due, zone),
        "remind_at": None if remind is None else fmt(remind, zone),
        "completed_at": None if completed is None else fmt(completed, zone),
    }
    add_new_feature_field("tasks", record)
    return record


def meeting_record(
    fmt, meeting_id: int, created: int, updated: int, start: int, person: dict, name: str, address: str,
    calendar: str, account_id: int | None, booked_by: dict, cadence: dict | None, step: dict | None,
    event_id: str, canceled: int | None, no_show: bool, task_id: int | None,
) -> dict[str, Any]:
    # Meetings come in UTC ("Z"); start and end on whole quarter hours.
    record = {
        "id": meeting_id,
        "title": f"Meeting with {name}",
        "start_time": fmt(start, "UTC"),
        "end_time": fmt(start + 30 * MINUTE_US, "UTC"),
        "calendar_id": calendar,
        "calendar_type": "gmail",
        "meeting_type": None,
        "recipient_name": name,
        "recipient_email": address,
        "location": "",
        "description": "",
        "event_id": event_id,
        "account_id": account_id,
        "task_id": task_id,
        "created_at": fmt(created, "UTC"),
        "updated_at": fmt(updated, "UTC"),
        "guests": [],
        "crm_references": None,
        "event_source": "internal",
        "canceled_at": None if canceled is None else fmt(canceled, "UTC"),
        "all_day": False,
        "no_show": no_show,
        "crm_custom_fields": None,
        "strict_attribution": False,
        "i_cal_uid": f"{event_id}@google.com",
        "status": "canceled" if canceled is not None else "booked",
        "reschedule_status": None,
        "attendees": [],
        "person": person,
        "cadence": cadence,
        "step": step,
        "booked_by_user": booked_by,
    }
    add_new_feature_field("meetings", record)
    return record


def success_record(
    fmt, zone: str, success_id: int, at: int, window_start: int, user: dict, person: dict,
    latest_email: dict | None, latest_call: dict | None, cadence: dict | None, step: dict | None,
    totals: tuple[int, int],
) -> dict[str, Any]:
    record = {
        "id": success_id,
        "created_at": fmt(at, zone),
        "updated_at": fmt(at, zone),
        "succeeded_at": fmt(at, zone),
        "success_window_started_at": fmt(window_start, zone),
        "user": user,
        "person": person,
        "latest_email": latest_email,
        "latest_call": latest_call,
        "latest_action": None,
        "latest_cadence": cadence,
        "latest_step": step,
        "counts": {"total_emails": totals[0], "total_calls": totals[1], "total_other_touches": 0},
    }
    add_new_feature_field("successes", record)
    return record


def membership_record(
    fmt, zone: str, membership_id: int, added: int, created: int, updated: int, state: str,
    person: dict, cadence: dict, user: dict, latest_action_id: int | None, counts: dict[str, int],
    person_deleted: bool = False, updated_zone: str | None = None,
) -> dict[str, Any]:
    record = {
        "id": membership_id,
        "added_at": fmt(added, zone),
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, updated_zone or zone),
        "person_deleted": person_deleted,
        "currently_on_cadence": state in MEMBERSHIP_ACTIVE_STATES and not person_deleted,
        "current_state": state,
        "cadence": cadence,
        "person": person,
        "user": user,
        "latest_action": None if latest_action_id is None else {"id": latest_action_id},
        "counts": counts,
    }
    add_new_feature_field("cadence_memberships", record)
    return record


# -- the history ----------------------------------------------------------------


class _History:
    """Builds one team's history, stream by stream, with one random stream."""

    def __init__(self, store: Store, config: SimulatorConfig) -> None:
        self.store = store
        self.rng = random.Random(f"salesloft-history:{config.seed}:{config.people}:{config.days}")
        self.people_n = max(1, config.people)
        self.days = max(1, config.days)
        self.end = to_us(config.anchor)
        self.start = self.end - self.days * DAY_US
        self.fmt = CLOCK.format
        self.next_ids = dict(ID_BASE)

    def new_id(self, stream: str) -> int:
        self.next_ids[stream] += 1
        return self.next_ids[stream] - 1

    def sequence(self, stream: str, count: int) -> list[int]:
        first = self.next_ids[stream]
        self.next_ids[stream] += count
        return list(range(first, first + count))

    def moment(self, lo: int, hi: int) -> int:
        """A random instant in [lo, hi], weighted to business hours."""
        rng = self.rng
        span = max(1, hi - lo)
        while True:
            t = lo + int(rng.random() * span)
            if rng.random() < _HOUR_WEIGHT[(t // HOUR_US) % 24]:
                return t

    def later(self, t: int, most_us: int) -> int:
        """A random instant after t, at most most_us later, never after the anchor."""
        return min(self.end, t + 1 + int(self.rng.random() * most_us))

    # -- setup ------------------------------------------------------------
    def run(self) -> None:
        self.lookups()
        self.users_and_groups()
        self.accounts_and_people()
        self.cadences_and_steps()
        self.templates()
        self.memberships()
        self.activity()
        self.finish_memberships()
        self.finish_people_and_accounts()
        self.finish_cadences()

    def lookups(self) -> None:
        """Small lists set up when the team started (at the window start)."""
        fmt, t = self.fmt, self.start + 5 * MINUTE_US
        self.admin_zone = ZONE_CYCLE[0]

        def listing(stream: str, names, extra=lambda i: {}) -> list[int]:
            ids = self.sequence(stream, len(names))
            records = []
            for i, (record_id, name) in enumerate(zip(ids, names)):
                at = fmt(t + i * 13_417, self.admin_zone)
                records.append({"id": record_id, "name": name, "created_at": at, "updated_at": at, **extra(i)})
            self.store.load(stream, records)
            return ids

        self.account_stage_ids = listing("account_stages", ACCOUNT_STAGES, lambda i: {"order": i})
        self.account_tier_ids = listing("account_tiers", ACCOUNT_TIERS, lambda i: {"order": i})
        self.person_stage_ids = listing("person_stages", PERSON_STAGES, lambda i: {"order": i})
        self.disposition_ids = listing("call_dispositions", DISPOSITIONS)
        self.sentiment_ids = listing("call_sentiments", SENTIMENTS)
        listing(
            "custom_fields",
            [name for name, _, _ in CUSTOM_FIELDS],
            lambda i: {"field_type": CUSTOM_FIELDS[i][1], "value_type": CUSTOM_FIELDS[i][2]},
        )

    def users_and_groups(self) -> None:
        rng = self.rng
        n = max(3, self.people_n // 100)
        group_count = 2 + n // 10
        group_ids = self.sequence("groups", group_count)
        parents = [None] + [group_ids[rng.randrange(i)] if rng.random() < 0.6 else None for i in range(1, group_count)]
        children: dict[int, list[int]] = {g: [g] for g in group_ids}
        for g, parent in zip(group_ids, parents):
            if parent is not None:
                children[parent].append(g)
        self.store.load(
            "groups",
            [
                {"id": g, "name": f"Group{i + 1}", "parent_id": parent, "accessible_groups": [ref("groups", c) for c in children[g]]}
                for i, (g, parent) in enumerate(zip(group_ids, parents))
            ],
        )

        self.user_ids = self.sequence("users", n)
        self.user_refs = [ref("users", u) for u in self.user_ids]
        self.user_zones = [
            ZONE_CYCLE[i] if i < len(ZONE_CYCLE) else rng.choices(ZONE_CYCLE, ZONE_WEIGHTS)[0] for i in range(n)
        ]
        self.user_guids = [uuid_from(rng) for _ in range(n)]
        self.user_guid_refs = [ref("users", g) for g in self.user_guids]
        self.user_names = [(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)) for _ in range(n)]
        self.user_emails = [f"{f.lower()}.{l.lower()}{i}@salesteam.example.com" for i, (f, l) in enumerate(self.user_names)]
        self.user_phones = [f"+1{rng.randrange(201, 989)}{rng.randrange(1_000_000, 9_999_999)}" for _ in range(n)]
        pna_ids = self.sequence("phone_number_assignments", n)
        users, pnas, crm_users, searches = [], [], [], []
        for i, user_id in enumerate(self.user_ids):
            zone, (first, last) = self.user_zones[i], self.user_names[i]
            created = self.start + i * min(DAY_US, self.days * DAY_US // 4) // n + rng.randrange(MINUTE_US)
            updated = self.later(created, self.days * DAY_US // 4)
            admin = i == 0
            email = self.user_emails[i]
            users.append({
                "id": user_id, "guid": self.user_guids[i],
                "created_at": self.fmt(created, zone), "updated_at": self.fmt(updated, zone),
                "name": f"{first} {last}", "first_name": first, "last_name": last,
                "job_role": JOB_ROLES[0] if i % 4 else rng.choice(JOB_ROLES), "active": rng.random() > 0.05 or admin,
                "time_zone": zone, "locale_utc_offset": CLOCK.utc_minutes(self.end, zone),
                "slack_username": f"{first.lower()}.{last.lower()}", "twitter_handle": None,
                "email": email, "email_client_email_address": email, "sending_email_address": email,
                "from_address": None, "full_email_address": f'"{first} {last}" <{email}>', "bcc_email_address": None,
                "work_country": "GB" if zone == "Europe/London" else "IN" if zone == "Asia/Kolkata" else "US",
                "seat_package": "admin" if admin else "prospect", "email_signature": "",
                "email_signature_type": "html", "email_signature_click_tracking_disabled": False,
                "team_admin": admin, "local_dial_enabled": True, "click_to_call_enabled": rng.random() < 0.3,
                "email_client_configured": rng.random() < 0.9, "crm_connected": rng.random() < 0.85,
                "external_feature_flags": {
                    "ma_enabled": True, "ma_live_feed": True, "hot_leads": rng.random() < 0.5,
                    "people_crud_allow_create": True, "people_crud_allow_delete": admin,
                },
                "_private_fields": {},
                "phone_client": {"id": 7_593 + i * 11},
                "phone_number_assignment": ref("phone_number_assignments", pna_ids[i]),
                "group": ref("groups", rng.choice(group_ids)) if rng.random() < 0.7 else None,
                "team": {"_href": f"{API}/team", "id": TEAM_ID},
                "role": {"id": "Admin" if admin else "User"},
            })
            pnas.append({"id": pna_ids[i], "number": self.user_phones[i], "user": self.user_refs[i]})
            if rng.random() < 0.8:
                at = self.fmt(created + 10 * MINUTE_US, zone)
                crm_users.append({
                    "id": self.new_id("crm_users"), "crm_id": "005" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=15)),
                    "created_at": at, "updated_at": at, "first_name": first, "last_name": last,
                    "name": f"{first} {last}", "user": self.user_refs[i],
                })
            searches.append(self._search(i, created))
        for stream, records in (("users", users), ("phone_number_assignments", pnas), ("crm_users", crm_users), ("searches", searches)):
            self.store.load(stream, records)

    def _search(self, i: int, created: int) -> dict[str, Any]:
        first, last = self.user_names[i]
        slug = f"{first}{last}{i}".lower()
        day = {"start_time": "09:00", "end_time": "17:00"}
        week = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
        return {
            "id": self.new_id("searches"), "user_slug": slug, "primary_calendar_id": self.user_emails[i],
            "primary_calendar_name": f"{first} {last}", "email_address": self.user_emails[i], "user_details": {},
            "calendar_type": "gmail", "title": None, "description": None, "location": None,
            "default_meeting_length": 30, "availability_limit_enabled": False, "availability_limit": 0,
            "schedule_delay": 0, "buffer_time_duration": 0, "schedule_buffer_enabled": False,
            "times_available": {d: {**day, "enabled": d not in ("Sunday", "Saturday")} for d in week},
            "allow_booking_on_behalf": True, "allow_booking_overtime": True, "allow_event_overlap": False,
            "share_event_detail": False, "enable_dynamic_location": False,
            "created_at": self.fmt(created + HOUR_US, "UTC"), "updated_at": self.fmt(created + 2 * HOUR_US, "UTC"),
            "time_zone": self.user_zones[i] if self.user_zones[i] != "UTC" else "Etc/UTC",
            "primary_calendar_connection_failed": False, "enable_calendar_sync": True,
            "reschedule_meetings_enabled": True, "user": self.user_guid_refs[i],
            "active_meeting_url": {
                "url": f"https://meetings.salesloft.com/team{TEAM_ID}/{slug}",
                "created_at": self.fmt(created + HOUR_US, "UTC"), "updated_at": self.fmt(created + HOUR_US, "UTC"),
            },
        }

    def accounts_and_people(self) -> None:
        """Most accounts and people arrive in imports at the start, the rest over the window."""
        rng = self.rng
        n_users = len(self.user_ids)
        n_accounts = max(3, self.people_n // 4)
        self.account_created = sorted(self._arrivals(n_accounts, 0.7, self.start + 30 * MINUTE_US))
        self.account_ids = self.sequence("accounts", n_accounts)
        self.account_refs = [ref("accounts", a) for a in self.account_ids]
        self.account_owner = [rng.randrange(n_users) for _ in range(n_accounts)]
        self.account_names = [f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)} {i}" for i in range(n_accounts)]
        self.account_domains = [
            f"{name.split()[0].lower()}{i}.example.com" for i, name in enumerate(self.account_names)
        ]

        n = self.people_n
        self.person_created = sorted(self._arrivals(n, 0.6, self.start + HOUR_US))
        self.person_ids = self.sequence("people", n)
        self.person_refs = [ref("people", p) for p in self.person_ids]
        self.person_owner = [rng.randrange(n_users) for _ in range(n)]
        # A person joins an account that existed already; ~10% of accounts stay empty.
        self.person_account = []
        for created in self.person_created:
            known = bisect_right(self.account_created, created)
            self.person_account.append(rng.randrange(max(1, int(known * 0.9))) if rng.random() < 0.95 else -1)
        self.person_names = [(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)) for _ in range(n)]
        self.person_emails = [
            f"{f.lower()}.{l.lower()}{i}@{self.account_domains[a] if a >= 0 else 'gmail.com'}"
            for i, ((f, l), a) in enumerate(zip(self.person_names, self.person_account))
        ]
        self.person_phones = [f"+1{rng.randrange(201, 989)}{rng.randrange(1_000_000, 9_999_999)}" for _ in range(n)]
        self.person_touch = [[0] * 6 for _ in range(n)]  # sent, viewed, clicked, replied, bounced, calls
        self.person_last_contact = [(0, None, -1)] * n  # (time, type, user index)
        self.person_last_reply = [0] * n
        self.person_updated = [c + rng.randrange(1, 5 * SECOND_US) for c in self.person_created]
        self.person_successes = [0] * n

        # Imports: the initial bulk imports and a few later ones, each with its people.
        import_count = max(2, n // 500)
        self.import_ids = self.sequence("imports", import_count)
        self.person_import = [min(import_count - 1, i * import_count // n) for i in range(n)]

    def _arrivals(self, count: int, initial_share: float, import_at: int) -> list[int]:
        """Creation instants: `initial_share` in a 30-minute import, the rest over the window."""
        rng = self.rng
        return [
            import_at + rng.randrange(30 * MINUTE_US) if rng.random() < initial_share
            else self.moment(import_at, self.end - HOUR_US)
            for _ in range(count)
        ]

    def cadences_and_steps(self) -> None:
        rng = self.rng
        n_users = len(self.user_ids)
        n = 3 + (3 * n_users) // 2
        self.cadence_ids = self.sequence("cadences", n)
        self.cadence_refs = [ref("cadences", c) for c in self.cadence_ids]
        self.cadence_owner = [rng.randrange(n_users) for _ in range(n)]
        self.cadence_created = sorted(self.moment(self.start + HOUR_US, self.start + HOUR_US + self.days * DAY_US // 5) for _ in range(n))
        self.cadence_days = []
        self.cadence_email_steps: list[list[int]] = []
        self.cadence_phone_steps: list[list[int]] = []
        self.step_refs: list[dict] = []
        steps = []
        for c, cadence_id in enumerate(self.cadence_ids):
            count = rng.randint(4, 10)
            day, emails, phones = 1, [], []
            for number in range(1, count + 1):
                kind = "email" if number == 1 else rng.choices(STEP_TYPES, STEP_TYPE_WEIGHTS)[0]
                step_id = self.new_id("steps")
                created = self.cadence_created[c] + number * 47 * SECOND_US
                updated = self.later(created, self.days * DAY_US // 3) if rng.random() < 0.3 else created
                detail = "email_details" if kind == "email" else "call_instructions" if kind == "phone" else "integration_details"
                steps.append({
                    "id": step_id, "created_at": self.fmt(created, self.user_zones[self.cadence_owner[c]]),
                    "updated_at": self.fmt(updated, self.user_zones[self.cadence_owner[c]]),
                    "disabled": rng.random() < 0.03, "type": kind, "name": rng.choice(STEP_NAMES),
                    "display_name": f"Day {day}: Step {number} - {kind.capitalize()}",
                    "day": day, "step_number": number, "multitouch_enabled": False,
                    "details": ref(f"action_details/{detail}", step_id), "cadence": self.cadence_refs[c],
                })
                self.step_refs.append(ref("steps", step_id))
                (emails if kind == "email" else phones if kind == "phone" else []).append(len(self.step_refs) - 1)
                day += rng.randint(1, 4)
            self.cadence_days.append(day)
            self.cadence_email_steps.append(emails)
            self.cadence_phone_steps.append(phones)
        self.store.load("steps", steps)

    def templates(self) -> None:
        rng, n_users = self.rng, len(self.user_ids)
        body = '<div class="sales_loft_wrapper" style="font-family: Arial; font-size: 11pt; line-height: 16px;">\n<div>{}</div>\n</div>'
        team_templates, team_template_ids = [], []
        for i in range(10 + n_users // 5):
            template_id = uuid_from(rng)
            team_template_ids.append(template_id)
            user = rng.randrange(n_users)
            created = self.moment(self.start + HOUR_US, self.start + self.days * DAY_US // 3)
            modified = self.later(created, self.days * DAY_US // 2)
            preview = f"Hi {{{{first_name}}}}, {rng.choice(SUBJECT_TOPICS)} is worth a look."
            team_templates.append({
                "id": template_id, "title": f"Team Template {i + 1}", "subject": email_subject(i),
                "body": body.format(preview), "body_preview": preview,
                "created_at": self.fmt(created, self.user_zones[user]), "updated_at": self.fmt(min(self.end, modified + 400_000), self.user_zones[user]),
                "last_used_at": None, "archived_at": None, "last_modified_at": self.fmt(modified, self.user_zones[user]),
                "open_tracking_enabled": True, "click_tracking_enabled": rng.random() < 0.5,
                "_links": {"attachments": f"{API}/team_template_attachments?team_template_id%5B%5D={template_id}"},
                "tags": rng.sample(["Tag1", "outbound", "Q3", "enterprise"], rng.randint(0, 2)),
                "counts": {"sent_emails": 0, "views": 0, "clicks": 0, "replies": 0, "bounces": 0},
                "last_modified_user": self.user_refs[user],
            })
        self.store.load("team_templates", team_templates)

        email_templates = []
        self.template_refs = []
        for i in range(5 + 3 * n_users):
            template_id = self.new_id("email_templates")
            self.template_refs.append(ref("email_templates", template_id))
            user = rng.randrange(n_users)
            created = self.moment(self.start + HOUR_US, self.start + self.days * DAY_US // 2)
            preview = f"Hi {{{{first_name}}}}, a note about {rng.choice(SUBJECT_TOPICS)}."
            team_template = rng.choice(team_template_ids) if rng.random() < 0.3 else None
            email_templates.append({
                "id": template_id, "title": f"Template {i + 1}", "subject": email_subject(template_id),
                "body": body.format(preview), "body_preview": preview,
                "created_at": self.fmt(created, self.user_zones[user]), "updated_at": self.fmt(self.later(created, DAY_US), self.user_zones[user]),
                "last_used_at": None, "archived_at": None, "shared": rng.random() < 0.4,
                "open_tracking_enabled": True, "click_tracking_enabled": rng.random() < 0.6, "cadence_template": None,
                "_links": {"attachments": f"{API}/email_template_attachments?email_template_id%5B%5D={template_id}"},
                "tags": rng.sample(["Tag1", "follow-up", "intro", "breakup"], rng.randint(0, 2)),
                "counts": {"sent_emails": 0, "views": 0, "clicks": 0, "replies": 0, "bounces": 0},
                "template_owner": self.user_refs[user],
                "team_template": None if team_template is None else ref("team_templates", team_template),
                "groups": [],
            })
        self.store.load("email_templates", email_templates)

        def attachment(stream: str, owner_key: str, owner: dict, i: int) -> dict[str, Any]:
            fingerprint = "%040x" % rng.getrandbits(160)
            name = rng.choice(("One pager.pdf", "Case study.pdf", "Logo 75x75.png", "Pricing.pdf"))
            record = {
                "id": self.new_id(stream), "attachment_id": 597_193 + i, "name": name,
                "download_url": f"https://attachments.salesloft.example.com/{fingerprint}/{name.replace(' ', '_')}",
                "attachment_file_size": rng.randrange(4_000, 2_000_000),
            }
            if stream == "email_template_attachments":
                record.update({
                    "scanned": True, "attachment_content_type": "image/png" if name.endswith("png") else "application/pdf",
                    "attachment_fingerprint": fingerprint,
                })
            record[owner_key] = owner
            return record

        self.store.load("email_template_attachments", [
            attachment("email_template_attachments", "email_template", t, i)
            for i, t in enumerate(self.template_refs) if rng.random() < 0.3
        ])
        self.store.load("team_template_attachments", [
            attachment("team_template_attachments", "team_template", ref("team_templates", t), i)
            for i, t in enumerate(team_template_ids) if rng.random() < 0.3
        ])

    def memberships(self) -> None:
        """Each person joins 1 + days/60 cadences on average (one membership per person and cadence)."""
        rng = self.rng
        n_cadences = len(self.cadence_ids)
        mean_extra = self.days / 60
        self.m_person, self.m_cadence, self.m_user, self.m_added = [], [], [], []
        self.person_memberships: list[list[tuple[int, int]]] = [[] for _ in self.person_ids]
        for p, created in enumerate(self.person_created):
            count = min(n_cadences, 1 + int(rng.random() * 2 * mean_extra + 0.5)) if rng.random() < 0.9 else 0
            added_times = sorted(self.moment(max(created, self.cadence_created[-1]) + MINUTE_US, self.end - MINUTE_US) for _ in range(count))
            for cadence, added in zip(rng.sample(range(n_cadences), count), added_times):
                m = len(self.m_person)
                self.m_person.append(p)
                self.m_cadence.append(cadence)
                self.m_user.append(self.person_owner[p] if rng.random() < 0.85 else self.cadence_owner[cadence])
                self.m_added.append(added)
                self.person_memberships[p].append((added, m))
        count = len(self.m_person)
        # Ids follow the order memberships were added in, as SalesLoft's do.
        ids = self.sequence("cadence_memberships", count)
        self.m_ids = [0] * count
        for rank, m in enumerate(sorted(range(count), key=self.m_added.__getitem__)):
            self.m_ids[m] = ids[rank]
        self.m_touch = [[0] * 6 for _ in range(count)]  # sent, views, clicks, replies, bounces, calls
        self.m_updated = [a + rng.randrange(5_000, 60_000) for a in self.m_added]
        self.m_last_action: list[int | None] = [None] * count

    def membership_at(self, person: int, t: int) -> int | None:
        """The membership of the person most recently added before t."""
        for added, m in reversed(self.person_memberships[person]):
            if added <= t:
                return m
        return None

    # -- activity ---------------------------------------------------------
    def activity(self) -> None:
        """Emails, calls, tasks and account notes day by day, and what follows from them."""
        rng = self.rng
        n = self.people_n
        per_day = {
            "email": EMAILS_PER_PERSON_DAY * n,
            "call": CALLS_PER_PERSON_DAY * n,
            "task": TASKS_PER_PERSON_DAY * n,
            "account_note": ACCOUNT_NOTES_PER_PERSON_DAY * n,
        }
        weekday_weight = [1.0, 1.0, 1.0, 1.0, 1.0, 0.15, 0.15]
        mean_weight = sum(weekday_weight) / 7
        self.out = {s: [] for s in (
            "emails", "calls", "call_data_records", "crm_activities", "actions", "notes", "meetings", "successes", "tasks",
        )}
        self.meetings_by_cadence = [0] * len(self.cadence_ids)
        for day in range(self.days):
            lo = self.start + day * DAY_US
            hi = lo + DAY_US
            weekday = ((lo + DAY_US // 2) // DAY_US + 3) % 7  # 1970-01-01 was a Thursday
            weight = weekday_weight[weekday] / mean_weight
            events = []
            for kind, rate in per_day.items():
                expected = rate * weight
                count = int(expected) + (rng.random() < expected - int(expected))
                events.extend((self.moment(lo, hi - 1), kind) for _ in range(count))
            events.sort()
            for t, kind in events:
                known = bisect_right(self.person_created, t)
                if not known:  # before the first import
                    continue
                p = rng.randrange(known)
                if kind == "email":
                    self.email(t, p)
                elif kind == "call":
                    self.call(t, p)
                elif kind == "task":
                    self.task(t, p)
                else:
                    self.account_note(t, p)
            for stream, records in self.out.items():
                if records:
                    self.store.load(stream, records)
                    records.clear()

    def touch(self, p: int, m: int | None, t: int, field: int, kind: str | None = None, user: int = -1) -> None:
        """Counts an email or call event on the person and membership; bumps their updated_at."""
        self.person_touch[p][field] += 1
        if t > self.person_updated[p]:
            self.person_updated[p] = t
        if kind is not None and t > self.person_last_contact[p][0]:
            self.person_last_contact[p] = (t, kind, user)
        if m is not None:
            self.m_touch[m][field] += 1
            if t > self.m_updated[m]:
                self.m_updated[m] = t

    def email(self, t: int, p: int) -> None:
        rng, fmt, end = self.rng, self.fmt, self.end
        r = rng.random
        user = self.person_owner[p] if r() < 0.85 else rng.randrange(len(self.user_ids))
        zone = self.user_zones[user]
        m = self.membership_at(p, t) if r() < 0.85 else None
        cadence = step = None
        if m is not None:
            c = self.m_cadence[m]
            cadence = self.cadence_refs[c]
            if self.cadence_email_steps[c]:
                step = self.step_refs[rng.choice(self.cadence_email_steps[c])]
        email_id = self.new_id("emails")
        status = EMAIL_STATUS_TABLE[int(r() * len(EMAIL_STATUS_TABLE))]
        send_after = min(end, t + int(r() * 60 * SECOND_US) + SECOND_US)
        tracking = (r() < 0.95, r() < 0.7)
        views = clicks = replies = 0
        bounced = False
        sent = None
        updated = min(end, send_after + int(r() * 30 * SECOND_US))
        if status in SENT_STATUSES:
            sent = min(end, send_after + 5 * SECOND_US + int(r() * 40 * SECOND_US))
            updated = self.later(sent, 30 * SECOND_US)
            self.touch(p, m, sent, 0, "email", user)
            if r() < BOUNCE_RATE:
                bounced = True
                updated = self.later(sent, 10 * MINUTE_US)
                self.touch(p, m, updated, 4)
            else:
                opened = tracking[0] and r() < OPEN_RATE
                first_open = sent + engagement_delay(rng)
                if opened and first_open <= end:
                    views, updated = 1, max(updated, first_open)
                    self.touch(p, m, first_open, 1)
                    while r() < 0.35:
                        again = updated + engagement_delay(rng)
                        if again > end:
                            break
                        views, updated = views + 1, again
                    if tracking[1] and r() < CLICK_GIVEN_OPEN:
                        clicked = first_open + int(r() * 5 * MINUTE_US)
                        if clicked <= end:
                            clicks, updated = 1 + (r() < 0.2), max(updated, clicked)
                            self.touch(p, m, clicked, 2)
                if r() < (REPLY_GIVEN_OPEN if views else REPLY_WITHOUT_OPEN):
                    replied = (first_open if views else sent) + engagement_delay(rng)
                    if replied <= end:
                        replies, updated = 1, max(updated, replied)
                        self.touch(p, m, replied, 3)
                        self.person_last_reply[p] = max(self.person_last_reply[p], replied)
                        if r() < MEETING_FROM_REPLY:
                            self.meeting(replied, p, user, m, step, email_ref=ref("activities/emails", email_id))
        action = None
        if step is not None and r() < MANUAL_EMAIL_SHARE:
            action = self.action(t, p, user, m, step, "email")
        crm = None
        if sent is not None and r() < CRM_LOGGED_SHARE:
            crm = self.crm_activity(sent, updated, p, user, "email", email_id=email_id, bounced=bounced)
        self.out["emails"].append(email_record(
            fmt, zone, email_id, t, send_after, sent, updated, status, bounced,
            (views, clicks, replies, min(views, 1 + (views > 2)), min(views, 1), int(r() < 0.05)),
            tracking, "100.0" if r() < 0.8 else f"{rng.randrange(40, 100)}.0",
            self.person_refs[p], self.person_emails[p], self.user_refs[user], mailing_id(email_id), action, crm,
            cadence, step, rng.choice(self.template_refs) if cadence is not None and r() < 0.6 else None,
        ))

    def call(self, t: int, p: int) -> None:
        rng, fmt = self.rng, self.fmt
        r = rng.random
        user = self.person_owner[p] if r() < 0.9 else rng.randrange(len(self.user_ids))
        zone = self.user_zones[user]
        m = self.membership_at(p, t) if r() < 0.7 else None
        cadence = step = None
        if m is not None and self.cadence_phone_steps[self.m_cadence[m]]:
            cadence = self.cadence_refs[self.m_cadence[m]]
            step = self.step_refs[rng.choice(self.cadence_phone_steps[self.m_cadence[m]])]
        else:
            m = None
        call_id = self.new_id("calls")
        disposition = DISPOSITION_TABLE[int(r() * len(DISPOSITION_TABLE))] if r() < 0.98 else None
        connected = disposition == "Connected"
        if connected:
            duration = 30 + int(r() * r() * 1500)
            sentiment = rng.choice(SENTIMENTS) if r() < 0.8 else None
        else:
            duration = None if r() < 0.7 else 5 + int(r() * 40)
            sentiment = rng.choice(SENTIMENTS) if r() < 0.1 else None
        recordings = []
        if connected and r() < 0.5:
            recordings = [{"url": f"https://recordings.salesloft.example.com/{call_id}.mp3", "status": "completed", "recording_status": "completed"}]
        created = min(self.end, t + (duration or 20) * SECOND_US)
        updated = self.later(created, 2 * SECOND_US)
        self.touch(p, m, created, 5, "call", user)
        person, user_ref = self.person_refs[p], self.user_refs[user]
        call_ref = ref("activities/calls", call_id)
        note = None
        if r() < CALL_NOTE_SHARE:
            note_id = self.new_id("notes")
            note = ref("notes", note_id)
            content = rng.choice(CALL_NOTES.get(disposition, ("missed call", "No answer, try again tomorrow")))
            self.out["notes"].append(note_record(fmt, zone, note_id, created, updated, content, "person", person, user_ref, call_ref))
            updated = self.later(updated, SECOND_US)
        action = self.action(t, p, user, m, step, "phone") if step is not None else None
        crm = None
        if r() < CRM_LOGGED_SHARE:
            crm = self.crm_activity(created, updated, p, user, "phone", disposition=disposition, sentiment=sentiment)
        self.out["calls"].append(call_record(
            fmt, zone, call_id, created, updated, self.person_phones[p], duration, disposition, sentiment,
            recordings, user_ref, person, action, crm, note, cadence, step,
        ))
        if r() < CDR_SHARE:
            self.out["call_data_records"].append(call_data_record(
                fmt, zone, self.new_id("call_data_records"), created, self.later(updated, SECOND_US), call_ref,
                self.person_phones[p], self.user_phones[user], duration, disposition, recordings, user_ref, person,
                uuid_from(rng),
            ))
        if connected and r() < MEETING_FROM_CONNECT:
            self.meeting(created, p, user, m, step, call_ref=call_ref)

    def action(self, t: int, p: int, user: int, m: int | None, step: dict, kind: str) -> dict:
        """A completed cadence action (a manual step done at t)."""
        action_id = self.new_id("actions")
        created = max(self.start, t - int(self.rng.random() * 6 * HOUR_US))
        self.out["actions"].append(self.action_record(action_id, created, t, p, user, m, step, kind, "completed"))
        if m is not None:
            self.m_last_action[m] = action_id
        return ref("actions", action_id)

    def action_record(self, action_id, created, updated, p, user, m, step, kind, status) -> dict[str, Any]:
        zone = self.user_zones[user]
        detail = "email_details" if kind == "email" else "call_instructions"
        record = {
            "id": action_id, "due": status != "completed",
            "created_at": self.fmt(created, zone), "updated_at": self.fmt(updated, zone),
            "type": kind, "status": status,
            "due_on": self.fmt(created - created % DAY_US, "Etc/UTC"),  # a date, in +00:00
            "multitouch_group_id": None,
            "action_details": ref(f"action_details/{detail}", step["id"]),
            "user": self.user_refs[user], "person": self.person_refs[p],
            "cadence": None if m is None else self.cadence_refs[self.m_cadence[m]], "step": step,
        }
        add_new_feature_field("actions", record)
        return record

    def crm_activity(self, created: int, updated: int, p: int, user: int, kind: str, email_id: int = 0,
                     bounced: bool = False, disposition: str | None = None, sentiment: str | None = None) -> dict:
        rng = self.rng
        crm_id_value = self.new_id("crm_activities")
        first, last = self.person_names[p]
        address = self.person_emails[p]
        if kind == "email":
            subject = email_subject(email_id)
            fields = {"email_message_id": f"<{uuid_from(rng)}@mail.gmail.com>", "direction": "outbound", "bounced": bounced}
            description = f'To: "{first} {last}" <{address}>\n\nSubject: {subject}\nBody:\n\n{subject}'
            title = f"Email: {subject}"
        else:
            fields = {"call_sentiment": sentiment, "call_disposition": disposition, "direction": "outbound",
                      "call_to": self.person_phones[p], "metadata": {}}
            description = rng.choice(CALL_NOTES.get(disposition, ("missed call",)))
            title = f"Call: {disposition or 'No Disposition'} | {sentiment or 'None'}"
        synced = rng.random() < 0.85
        zone = self.user_zones[user]
        logged = min(self.end, created + 100_000)
        record = {
            "id": crm_id_value, "created_at": self.fmt(logged, zone),
            "updated_at": self.fmt(max(updated, self.later(logged, 15 * SECOND_US)), zone),
            "subject": title, "description": description,
            "crm_id": "00T" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=15)) if synced else None,
            "activity_type": kind, "error": None if synced else "Not connected to your CRM",
            "custom_crm_fields": fields, "person": self.person_refs[p], "user": self.user_refs[user],
        }
        add_new_feature_field("crm_activities", record)
        self.out["crm_activities"].append(record)
        return ref("crm_activities", crm_id_value)

    def meeting(self, t: int, p: int, user: int, m: int | None, step: dict | None,
                email_ref: dict | None = None, call_ref: dict | None = None) -> None:
        """A meeting booked after a reply or a connected call, and the success it counts as."""
        rng = self.rng
        created = t + 2 * MINUTE_US + int(rng.random() * 28 * MINUTE_US)
        if created > self.end:
            return
        quarter = 15 * MINUTE_US
        start = created + DAY_US + int(rng.random() * 9 * DAY_US)
        start -= start % quarter
        if start + 30 * MINUTE_US > self.end:
            # Nothing after the anchor: a meeting booked late in the window is held soon.
            start = created + quarter - created % quarter
            if start + 30 * MINUTE_US > self.end:
                return
        canceled = None
        no_show = False
        updated = created
        if rng.random() < 0.1:
            canceled = created + int(rng.random() * (start - created))
            updated = canceled
        elif rng.random() < 0.08:
            no_show = True
            updated = self.later(start + 30 * MINUTE_US, 4 * HOUR_US)
        cadence = None if m is None else self.cadence_refs[self.m_cadence[m]]
        if m is not None:
            self.meetings_by_cadence[self.m_cadence[m]] += 1
        first, last = self.person_names[p]
        account = self.person_account[p]
        self.out["meetings"].append(meeting_record(
            self.fmt, self.new_id("meetings"), created, updated, start, self.person_refs[p], f"{first} {last}",
            self.person_emails[p], self.user_emails[user], self.account_ids[account] if account >= 0 else None,
            self.user_guid_refs[user], cadence, step, "%026x" % rng.getrandbits(104), canceled, no_show,
            None if rng.random() < 0.7 else self.new_id("tasks"),
        ))
        if t > self.person_updated[p]:
            self.person_updated[p] = t
        self.person_successes[p] += 1
        touches = self.person_touch[p]
        self.out["successes"].append(success_record(
            self.fmt, self.user_zones[user], self.new_id("successes"), created,
            max(self.start, created - int(rng.random() * 14 * DAY_US)), self.user_refs[user], self.person_refs[p],
            email_ref, call_ref, cadence, step, (touches[0], touches[5]),
        ))

    def task(self, t: int, p: int) -> None:
        rng = self.rng
        user = self.person_owner[p]
        due = self.later(t, 5 * DAY_US)
        completed = None
        if rng.random() < 0.6:
            finished = self.later(t, 6 * DAY_US)
            completed = finished if finished < self.end else None
        task_type = rng.choice(("call", "call", "email", "general"))
        account = self.person_account[p]
        self.out["tasks"].append(task_record(
            self.fmt, self.user_zones[user], self.new_id("tasks"), t, completed or t, due, completed, task_type,
            f"{rng.choice(TASK_SUBJECTS)} with {self.person_names[p][0]}", self.user_refs[user], self.person_refs[p],
            self.account_refs[account] if account >= 0 else None, None if rng.random() < 0.7 else due - HOUR_US,
        ))

    def account_note(self, t: int, p: int) -> None:
        account = self.person_account[p]
        if account < 0:
            return
        user = self.account_owner[account]
        updated = self.later(t, 2 * DAY_US) if self.rng.random() < 0.1 else t
        self.out["notes"].append(note_record(
            self.fmt, self.user_zones[user], self.new_id("notes"), t, updated,
            self.rng.choice(("Renewal coming up", "Champion left the company", "Met at the trade show", "Budget approved for Q3")),
            "account", self.account_refs[account], self.user_refs[user], None,
        ))

    # -- the state after the window ----------------------------------------
    def finish_memberships(self) -> None:
        rng, end = self.rng, self.end
        records = []
        active_per_cadence = [0] * len(self.cadence_ids)
        acted_per_cadence = [0] * len(self.cadence_ids)
        for m, (p, c, user, added) in enumerate(zip(self.m_person, self.m_cadence, self.m_user, self.m_added)):
            touches = self.m_touch[m]
            finishes = added + self.cadence_days[c] * DAY_US
            if touches[3] and rng.random() < 0.7:  # replies take people off the cadence
                state = "removed"
            elif finishes < end:
                state = rng.choices(MEMBERSHIP_DONE_STATES, MEMBERSHIP_DONE_WEIGHTS)[0]
                self.m_updated[m] = max(self.m_updated[m], finishes)
            else:
                state = rng.choices(MEMBERSHIP_ACTIVE_STATES, MEMBERSHIP_ACTIVE_WEIGHTS)[0]
            if state in MEMBERSHIP_ACTIVE_STATES:
                active_per_cadence[c] += 1
                step_choices = self.cadence_email_steps[c] + self.cadence_phone_steps[c]
                if step_choices:  # the next step waiting for the rep
                    step_index = rng.choice(step_choices)
                    due = self.later(self.m_updated[m], HOUR_US)
                    action_id = self.new_id("actions")
                    kind = "email" if step_index in self.cadence_email_steps[c] else "phone"
                    self.out["actions"].append(self.action_record(action_id, due, due, p, user, m, self.step_refs[step_index], kind, "in_progress"))
                    self.m_last_action[m] = action_id
                    self.m_updated[m] = max(self.m_updated[m], due)
            if any(touches):
                acted_per_cadence[c] += 1
            records.append((m, state))
        self.store.load("actions", self.out["actions"])
        self.out["actions"].clear()
        self.cadence_active = active_per_cadence
        self.cadence_acted = acted_per_cadence

        burst_zone = {}  # membership -> zone of the admin's bulk edit
        for when in self.burst_times():
            chosen = self.burst_members([i for i, u in enumerate(self.m_updated) if u < when and self.m_added[i] < when])
            for m in chosen:
                self.m_updated[m] = when
                self.m_user[m] = self.cadence_owner[self.m_cadence[m]]  # bulk reassignment
                burst_zone[m] = self.admin_zone
        out = []
        for m, state in records:
            p, c, user, added = self.m_person[m], self.m_cadence[m], self.m_user[m], self.m_added[m]
            s, v, cl, rp, b, calls = self.m_touch[m]
            zone = self.user_zones[user]
            out.append(membership_record(
                self.fmt, zone, self.m_ids[m], added, added + rng.randrange(2_000, 9_000),
                min(end, self.m_updated[m]), state, self.person_refs[p], self.cadence_refs[c], self.user_refs[user],
                self.m_last_action[m], membership_counts(s, v, cl, rp, b, calls), updated_zone=burst_zone.get(m),
            ))
        self.store.load("cadence_memberships", out)

    def burst_times(self) -> list[int]:
        """Instants of bulk edits, late in the window so most records predate them."""
        count = 1 + self.days // 30
        return sorted(self.end - HOUR_US - int(self.rng.random() * min(self.days, 3) * DAY_US // 2) for _ in range(count))

    def burst_members(self, candidates: list[int]) -> list[int]:
        size = min(self.rng.randint(150, 400), len(candidates) // 2)
        return sorted(self.rng.sample(candidates, size)) if size > 0 else []

    def finish_people_and_accounts(self) -> None:
        rng, fmt, end = self.rng, self.fmt, self.end
        n = self.people_n
        for p in range(n):
            if rng.random() < 0.3:  # a rep edited the person at some point
                self.person_updated[p] = max(self.person_updated[p], self.later(self.person_created[p], end - self.person_created[p]))
        burst = {}
        for k, when in enumerate(self.burst_times()):
            for p in self.burst_members([i for i in range(n) if self.person_updated[i] < when]):
                self.person_updated[p] = when
                burst[p] = f"bulk-update-{k + 1}"
        account_people = [0] * len(self.account_ids)
        account_contact: list[tuple[int, str | None, int, int]] = [(0, None, -1, -1)] * len(self.account_ids)
        people = []
        stage_refs = [ref("person_stages", s) for s in self.person_stage_ids]
        for p in range(n):
            first, last = self.person_names[p]
            owner = self.person_owner[p]
            zone = self.admin_zone if p in burst else self.user_zones[owner]
            sent, viewed, clicked, replied, bounced, calls = self.person_touch[p]
            contact_at, contact_type, contact_user = self.person_last_contact[p]
            account = self.person_account[p]
            if account >= 0:
                account_people[account] += 1
                if contact_at > account_contact[account][0]:
                    account_contact[account] = (contact_at, contact_type, contact_user, p)
            city, state, country, locale = CITIES[p % len(CITIES)]
            title, seniority = TITLES[(p * 7) % len(TITLES)]
            memberships = self.person_memberships[p]
            cadence_refs = [self.cadence_refs[self.m_cadence[m]] for _, m in memberships]
            stage = (
                STAGE["Replied"] if replied else STAGE["Bounced"] if bounced else STAGE["Meeting Booked"] if self.person_successes[p]
                else STAGE["In Cadence"] if memberships else None
            )
            company = self.account_names[account] if account >= 0 else None
            tags = [burst[p]] if p in burst else (["inbound"] if p % 11 == 0 else [])
            owner_zone = self.user_zones[owner]
            record = {
                "id": self.person_ids[p],
                "created_at": fmt(self.person_created[p], owner_zone),
                "updated_at": fmt(min(end, self.person_updated[p]), zone),
                "last_contacted_at": fmt(contact_at, owner_zone) if contact_type else None,
                "last_replied_at": fmt(self.person_last_reply[p], owner_zone) if self.person_last_reply[p] else None,
                "first_name": first, "last_name": last, "display_name": f"{first} {last}",
                "email_address": self.person_emails[p], "full_email_address": f'"{first} {last}" <{self.person_emails[p]}>',
                "secondary_email_address": None, "personal_email_address": None,
                "phone": self.person_phones[p] if p % 3 else None, "phone_extension": None, "home_phone": None,
                "mobile_phone": self.person_phones[p][1:] if p % 3 == 0 else None,
                "linkedin_url": f"https://www.linkedin.com/in/{first.lower()}-{last.lower()}-{p}" if p % 2 else None,
                "title": title, "city": city, "state": state, "country": country,
                "work_city": None, "work_state": None, "work_country": None,
                "crm_url": None, "crm_id": None, "crm_object_type": "contact" if p % 4 else None, "owner_crm_id": None,
                "person_company_name": company,
                "person_company_website": f"https://{self.account_domains[account]}" if account >= 0 else None,
                "person_company_industry": INDUSTRIES[account % len(INDUSTRIES)] if account >= 0 and account % 3 else None,
                "do_not_contact": p % 97 == 0, "bouncing": bounced > 0,
                "locale": locale, "locale_utc_offset": CLOCK.utc_minutes(end, locale),
                "eu_resident": country == "GB", "personal_website": None, "twitter_handle": None,
                "last_contacted_type": contact_type, "job_seniority": seniority,
                "custom_fields": {"Lead Source": LEAD_SOURCES[p % len(LEAD_SOURCES)]} if p % 5 == 0 else {},
                "tags": tags, "contact_restrictions": [], "success_count": self.person_successes[p],
                "starred": p % 50 == 0, "untouched": not (sent or calls),
                "counts": people_counts(sent, viewed, clicked, replied, bounced, calls),
                "account": self.account_refs[account] if account >= 0 else None,
                "owner": self.user_refs[owner],
                "last_contacted_by": self.user_refs[contact_user] if contact_type else None,
                "import": ref("imports", self.import_ids[self.person_import[p]]),
                "person_stage": None if stage is None else stage_refs[stage],
                "most_recent_cadence": cadence_refs[-1] if cadence_refs else None,
                "last_completed_step_cadence": None, "last_completed_step": None,
                "cadences": cadence_refs,
            }
            add_new_feature_field("people", record)
            people.append(record)
        self.store.load("people", people)

        imports = []
        for i, import_id in enumerate(self.import_ids):
            members = [p for p in range(n) if self.person_import[p] == i]
            at = fmt(self.person_created[members[0]] - 300_000 if members else self.start + HOUR_US, self.admin_zone)
            imports.append({
                "id": import_id, "created_at": at, "updated_at": at, "name": f"People_Import_{i + 1}.csv",
                "current_people_count": len(members), "imported_people_count": len(members),
            })
        self.store.load("imports", imports)

        accounts = []
        tier_refs = [ref("account_tiers", t) for t in self.account_tier_ids]
        stage_refs = [ref("account_stages", s) for s in self.account_stage_ids]
        for a, account_id in enumerate(self.account_ids):
            owner = self.account_owner[a]
            zone = self.user_zones[owner]
            created = self.account_created[a]
            contact_at, contact_type, contact_user, contact_person = account_contact[a]
            updated = max(created + rng.randrange(1, SECOND_US), contact_at)
            if rng.random() < 0.3:
                updated = max(updated, self.later(created, end - created))
            record = {
                "id": account_id, "created_at": fmt(created, zone), "updated_at": fmt(min(end, updated), zone),
                "archived_at": None, "name": self.account_names[a], "domain": self.account_domains[a],
                "conversational_name": self.account_names[a].split()[0], "description": None,
                "phone": None, "website": f"https://{self.account_domains[a]}", "linkedin_url": None,
                "twitter_handle": None, "street": None, "city": None, "state": None, "postal_code": None,
                "country": "US" if a % 5 else None, "locale": None,
                "industry": INDUSTRIES[a % len(INDUSTRIES)] if a % 3 else None,
                "company_type": "Private" if a % 4 else "Public", "founded": str(1950 + a % 70) if a % 2 else None,
                "revenue_range": REVENUE_RANGES[a % len(REVENUE_RANGES)] if a % 3 == 0 else None,
                "size": SIZES[a % len(SIZES)] if a % 2 == 0 else None,
                "crm_id": None, "crm_url": None, "crm_object_type": "account", "owner_crm_id": None,
                "last_contacted_at": fmt(contact_at, zone) if contact_type else None,
                "last_contacted_type": contact_type, "do_not_contact": False,
                "custom_fields": {"Segment": ("Enterprise", "Mid-Market", "SMB")[a % 3]} if a % 4 == 0 else {},
                "user_relationships": [], "tags": ["target"] if a % 9 == 0 else [],
                "counts": {"people": account_people[a]},
                "owner": self.user_refs[owner], "creator": self.user_refs[self.account_owner[(a * 3) % len(self.account_owner)]],
                "last_contacted_by": self.user_refs[contact_user] if contact_type else None,
                "last_contacted_person": self.person_refs[contact_person] if contact_type else None,
                "company_stage": stage_refs[a % len(stage_refs)] if a % 3 else None,
                "account_tier": tier_refs[a % len(tier_refs)] if a % 2 else None,
            }
            add_new_feature_field("accounts", record)
            accounts.append(record)
        self.store.load("accounts", accounts)

    def finish_cadences(self) -> None:
        rng, fmt = self.rng, self.fmt
        stage = {name: ref("person_stages", self.person_stage_ids[STAGE[name]]) for name in PERSON_STAGES}
        records = []
        for c, cadence_id in enumerate(self.cadence_ids):
            owner = self.cadence_owner[c]
            zone = self.user_zones[owner]
            created = self.cadence_created[c]
            updated = self.later(created, self.days * DAY_US // 2) if rng.random() < 0.6 else created
            archived = c % 9 == 8
            draft = c % 13 == 12
            records.append({
                "id": cadence_id, "created_at": fmt(created, zone), "updated_at": fmt(updated, zone),
                "archived_at": fmt(updated, zone) if archived else None, "latest_active_date": None,
                "team_cadence": c % 4 == 0, "shared": c % 3 != 0, "remove_bounces_enabled": c % 2 == 0,
                "remove_replies_enabled": True, "opt_out_link_included": c % 2 == 1, "draft": draft,
                "override_contact_restrictions": None, "cadence_framework_id": None,
                "cadence_function": CADENCE_FUNCTIONS[c % len(CADENCE_FUNCTIONS)],
                "name": f"{CADENCE_NAMES[c % len(CADENCE_NAMES)]}" + (f" {c // len(CADENCE_NAMES) + 1}" if c >= len(CADENCE_NAMES) else ""),
                "external_identifier": None, "tags": ["opt-out"] if c % 5 == 0 else [],
                "creator": self.user_refs[owner], "owner": self.user_refs[owner],
                "bounced_stage": stage["Bounced"], "replied_stage": stage["Replied"],
                "added_stage": stage["In Cadence"], "finished_stage": stage["Finished"],
                "cadence_priority": None if c % 3 else {"_href": f"{API}/cadence_priorities", "id": 3_385 + c % 3},
                "groups": [],
                "counts": {
                    # SalesLoft leaves cadence_people null on some cadences (drafts, archived, others).
                    "cadence_people": None if archived or draft or c % 4 == 1 else self.cadence_active[c],
                    "people_acted_on_count": self.cadence_acted[c],
                    "target_daily_people": 0 if c % 2 else 25,
                    "opportunities_created": self.meetings_by_cadence[c] // 3,
                    "meetings_booked": self.meetings_by_cadence[c],
                },
            })
        self.store.load("cadences", records)


def populate(store: Store, config: SimulatorConfig) -> None:
    """Generates the team's whole history into the store (no listener is told)."""
    # Millions of short-lived dicts and no reference cycles: the cyclic GC
    # would only rescan them (a fifth of the time), so it pauses meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with store.lock:
            _History(store, config).run()
    finally:
        if collecting:
            gc.enable()
