"""Deterministic history of a SalesLoft team: every stream, coherent and realistic.

`populate(store, config)` fills a Store with `config.days` days of a team's work
ending at `config.anchor`. Same seed, people, days and anchor give byte-identical
records; nothing is timestamped after the anchor (but an open opportunity's expected
close_date), no record is created or updated before the window start.

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
| opportunities | 1 per 8 accounts per 30 days (at least 4); 1-3 opportunity_people each |
| conversations | 30% of connected calls with a call data record; one transcription each |
| activity_histories | one per sent email, call and note on a person |
| calendar_events | one per meeting |

So `--people 5000 --days 90` gives ~225k emails and ~90k calls (a team of 50
reps each sending ~50 emails and making ~20 calls a day); users are
people/100 (at least 3), accounts people/4, cadences 3 + 1.5 per user.

The small lists (lookups, tags, roles, CRM and integration settings, ...)
have a handful of records each.

Quirks of real records are reproduced on purpose: microsecond timestamps in
the owning user's time zone (offsets vary between records, meetings are in Z),
references with and without `_href`, string ids (team templates, user guids,
roles), nullable counts and durations, `personalization` as a string, fields
of newer SalesLoft features on some records, and bulk edits that give
150-400 people or memberships one identical `updated_at`.

The history is built by one class, `_History`, made of one mixin per stream
family: common.py (`HistoryBase`: ids, clock, time constants, references,
the random stream and its shared draws), lookups.py (the small lookup lists),
people.py (users and groups, accounts, people, imports, searches),
cadences.py (cadences, steps, templates, memberships) and activities.py
(emails, calls, call data records, notes, tasks, meetings, successes,
actions, CRM activities). The families share their state on the history
object; `_History.run` calls them in a fixed order, which fixes the order of
the random draws and so the output. The families added later come last and
draw from random streams of their own, so they change nothing the first
ones make: revenue.py (opportunities, their people and stages),
conversations.py (conversations, transcriptions), timeline.py (activity
histories, calendar events), lookups.py's `lookup_lists` (tags, saved list
views, account types, account team member roles) and admin.py (roles, CRM
and integration settings, audit reports, webhook subscriptions, signals).
Every name the simulator, tests and benchmarks use is importable from here.
"""

from __future__ import annotations

import gc

from ..config import SimulatorConfig
from ..store import Store
from .activities import (
    ACCOUNT_NOTES_PER_PERSON_DAY, BOUNCE_RATE, CALL_NOTE_SHARE, CALL_NOTES, CALLS_PER_PERSON_DAY, CDR_SHARE,
    CLICK_GIVEN_OPEN, CRM_LOGGED_SHARE, DISPOSITION_TABLE, DISPOSITION_WEIGHTS, EMAIL_STATUS_TABLE,
    EMAIL_STATUS_WEIGHTS, EMAIL_STATUSES, EMAILS_PER_PERSON_DAY, MANUAL_EMAIL_SHARE, MEETING_FROM_CONNECT,
    MEETING_FROM_REPLY, OPEN_RATE, REPLY_GIVEN_OPEN, REPLY_WITHOUT_OPEN, SENT_STATUSES, TASK_SUBJECTS,
    TASKS_PER_PERSON_DAY, ActivitiesHistory, call_data_record, call_record, email_record, engagement_delay,
    mailing_id, meeting_record, note_record, success_record, task_record,
)
from .cadences import (
    CADENCE_FUNCTIONS, CADENCE_NAMES, MEMBERSHIP_ACTIVE_STATES, MEMBERSHIP_ACTIVE_WEIGHTS,
    MEMBERSHIP_DONE_STATES, MEMBERSHIP_DONE_WEIGHTS, STEP_NAMES, STEP_TYPE_WEIGHTS, STEP_TYPES, CadencesHistory,
    membership_counts, membership_record,
)
from .common import (
    API, CLOCK, DAY_US, HOUR_US, ID_BASE, MAILING_ID_BASE, MINUTE_US, NEW_FEATURE_EVERY, NEW_FEATURE_FIELDS,
    SECOND_US, SUBJECT_OPENERS, SUBJECT_TOPICS, TEAM_ID, ZONE_CYCLE, ZONE_WEIGHTS, Clock, HistoryBase,
    add_new_feature_field, crm_id, email_subject, ref, stable_hash, to_us, uuid_from, weighted_table,
)
from .admin import AdminHistory
from .conversations import (
    RECORDED_SHARE, ConversationsHistory, conversation_record, processing_times, string_ref, transcription_record,
)
from .lookups import (
    ACCOUNT_STAGES, ACCOUNT_TIERS, CUSTOM_FIELDS, DISPOSITIONS, OPPORTUNITY_TAGS, PERSON_STAGES, SENTIMENTS, STAGE,
    TAGS, LookupsHistory,
)
from .people import (
    CITIES, COMPANY_SUFFIXES, COMPANY_WORDS, FIRST_NAMES, INDUSTRIES, JOB_ROLES, LAST_NAMES, LEAD_SOURCES,
    REVENUE_RANGES, SIZES, TITLES, PeopleHistory, people_counts,
)
from .revenue import (
    CRM_URL, DEAL_SOURCES, LOST, OPPORTUNITY_STAGES, OPPORTUNITY_TYPES, WON, RevenueHistory, close_date, opportunity_amount,
    set_stage,
)
from .timeline import TimelineHistory, calendar_event, call_history, email_history, note_history

# The names activity.py, writes.py, server.py, the tests and the benchmarks use, as when this was one module.
__all__ = [
    "ACCOUNT_NOTES_PER_PERSON_DAY", "ACCOUNT_STAGES", "CRM_URL", "RECORDED_SHARE", "crm_id", "stable_hash",
    "string_ref", "DEAL_SOURCES", "LOST", "OPPORTUNITY_STAGES",
    "OPPORTUNITY_TAGS", "OPPORTUNITY_TYPES", "TAGS", "WON", "calendar_event", "call_history", "close_date",
    "conversation_record", "email_history", "note_history", "opportunity_amount", "processing_times", "set_stage",
    "transcription_record", "ACCOUNT_TIERS", "API", "BOUNCE_RATE",
    "CADENCE_FUNCTIONS", "CADENCE_NAMES", "CALLS_PER_PERSON_DAY", "CALL_NOTES", "CALL_NOTE_SHARE", "CDR_SHARE",
    "CITIES", "CLICK_GIVEN_OPEN", "CLOCK", "COMPANY_SUFFIXES", "COMPANY_WORDS", "CRM_LOGGED_SHARE",
    "CUSTOM_FIELDS", "Clock", "DAY_US", "DISPOSITIONS", "DISPOSITION_TABLE", "DISPOSITION_WEIGHTS",
    "EMAILS_PER_PERSON_DAY", "EMAIL_STATUSES", "EMAIL_STATUS_TABLE", "EMAIL_STATUS_WEIGHTS", "FIRST_NAMES",
    "HOUR_US", "HistoryBase", "ID_BASE", "INDUSTRIES", "JOB_ROLES", "LAST_NAMES", "LEAD_SOURCES",
    "MAILING_ID_BASE", "MANUAL_EMAIL_SHARE", "MEETING_FROM_CONNECT", "MEETING_FROM_REPLY",
    "MEMBERSHIP_ACTIVE_STATES", "MEMBERSHIP_ACTIVE_WEIGHTS", "MEMBERSHIP_DONE_STATES",
    "MEMBERSHIP_DONE_WEIGHTS", "MINUTE_US", "NEW_FEATURE_EVERY", "NEW_FEATURE_FIELDS", "OPEN_RATE",
    "PERSON_STAGES", "REPLY_GIVEN_OPEN", "REPLY_WITHOUT_OPEN", "REVENUE_RANGES", "SECOND_US", "SENTIMENTS",
    "SENT_STATUSES", "SIZES", "STAGE", "STEP_NAMES", "STEP_TYPES", "STEP_TYPE_WEIGHTS", "SUBJECT_OPENERS",
    "SUBJECT_TOPICS", "SimulatorConfig", "Store", "TASKS_PER_PERSON_DAY", "TASK_SUBJECTS", "TEAM_ID", "TITLES",
    "ZONE_CYCLE", "ZONE_WEIGHTS", "add_new_feature_field", "call_data_record", "call_record", "email_record",
    "email_subject", "engagement_delay", "mailing_id", "meeting_record", "membership_counts",
    "membership_record", "note_record", "people_counts", "populate", "ref", "success_record", "task_record",
    "to_us", "uuid_from", "weighted_table",
]


class _History(
    LookupsHistory, PeopleHistory, CadencesHistory, ActivitiesHistory, RevenueHistory, ConversationsHistory,
    TimelineHistory, AdminHistory,
):
    """Builds one team's history, stream by stream: the first families from one random stream, the later ones
    each from its own."""

    def run(self) -> None:
        """Each family in turn: the random draws, so the records, follow this order."""
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
        # Added later, each with its own random stream: what the families above make stays the same.
        self.revenue()
        self.conversations()
        self.timeline()
        self.lookup_lists()
        self.admin()


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
