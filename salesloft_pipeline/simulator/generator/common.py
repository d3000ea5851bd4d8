"""What every family of the generated history shares: ids, the clock, references, the history's base.

Time constants and the API root, each stream's first id, users' time zones,
`Clock` (SalesLoft's timestamp format), `ref`, `uuid_from`, `weighted_table`,
email subjects (templates, emails and CRM activities all show them), the
fields of newer SalesLoft features that some records of every big stream
carry, and `HistoryBase`: the state every family's mixin works on (the one
random stream, the window, the id counters) and the draws they all use
(`moment`, `later`, the bulk-edit bursts). Families added after the first
ones draw from a random stream of their own (`family_rng`), so adding them
changed nothing the others generate.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..config import SimulatorConfig
from ..store import Store

API = "https://api.salesloft.com/v2"
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

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
    "opportunities": 2_310_000,
    "opportunity_people": 4_820_000,
    "opportunity_stages": 7_401,
    "tags": 1_870_000,
    "saved_list_views": 61_200,
    "account_team_member_roles": 1_234,
    "crm_activity_fields": 20_530,
    "crm_account_team_members": 880_000,
    "pending_emails": 30_100,
    "mime_email_payloads": 610_000,
    "audit_reports": 2_070,
    "external_configurations": 612,
    "external_mappings": 9_150_000,
    "webhook_subscriptions": 18_420,
    "integrations": 88,
    "signals_registrations": 310,
    "registrations_plays": 1_045,
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


def stable_hash(*key: Any) -> int:
    """A 64-bit number from the key, the same in every run (FNV-1a; Python's hash() of text is not)."""
    h = 1469598103934665603
    for byte in repr(key).encode():
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def crm_id(prefix: str, *key: Any) -> str:
    """A Salesforce-style 18-character id ("001" accounts, "003" contacts, "006" opportunities,
    "01M" account team members): the same for the same key in every family."""
    return prefix + "%015X" % (stable_hash(prefix, *key) & ((1 << 60) - 1))


def weighted_table(values, weights) -> list:
    """Each value repeated by its weight: `table[int(random() * len(table))]` draws one fast."""
    return [value for value, weight in zip(values, weights) for _ in range(weight)]


# -- email subjects -----------------------------------------------------------

SUBJECT_OPENERS = (
    "Quick question", "Idea for", "Following up on", "Re:", "15 minutes to talk about", "Thoughts on",
    "A better way to handle", "How teams like yours approach", "Worth a look:", "Closing the loop on",
)
SUBJECT_TOPICS = (
    "your pipeline", "outbound at scale", "sales forecasting", "rep ramp time", "data quality",
    "Q3 planning", "your CRM hygiene", "revenue operations", "the webinar", "your team's goals",
    "meeting conversion", "renewals",
)

# -- newer features -------------------------------------------------------------

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


# -- the history's base -------------------------------------------------------


class HistoryBase:
    """One team's history in the making: the store, one random stream, the window and the id counters.

    Each family's mixin (lookups, people, cadences, activities) subclasses it;
    `generator._History` combines them and runs the families in order."""

    def __init__(self, store: Store, config: SimulatorConfig) -> None:
        self.store = store
        self.config = config
        self.rng = random.Random(f"salesloft-history:{config.seed}:{config.people}:{config.days}")
        self.people_n = max(1, config.people)
        self.days = max(1, config.days)
        self.end = to_us(config.anchor)
        self.start = self.end - self.days * DAY_US
        self.fmt = CLOCK.format
        self.next_ids = dict(ID_BASE)

    def family_rng(self, family: str) -> random.Random:
        """The random stream of a family added later (revenue, conversations, ...): its own, so
        the draws of the first families, and their records, stay what they were."""
        config = self.config
        return random.Random(f"salesloft-history:{config.seed}:{config.people}:{config.days}:{family}")

    def new_id(self, stream: str) -> int:
        self.next_ids[stream] += 1
        return self.next_ids[stream] - 1

    def sequence(self, stream: str, count: int) -> list[int]:
        first = self.next_ids[stream]
        self.next_ids[stream] += count
        return list(range(first, first + count))

    def moment(self, lo: int, hi: int, rng: random.Random | None = None) -> int:
        """A random instant in [lo, hi], weighted to business hours (drawn from `rng`, else the history's)."""
        rng = rng or self.rng
        span = max(1, hi - lo)
        while True:
            t = lo + int(rng.random() * span)
            if rng.random() < _HOUR_WEIGHT[(t // HOUR_US) % 24]:
                return t

    def later(self, t: int, most_us: int, rng: random.Random | None = None) -> int:
        """A random instant after t, at most most_us later, never after the anchor."""
        return min(self.end, t + 1 + int((rng or self.rng).random() * most_us))

    # -- bulk edits (memberships and people both get them) ---------------
    def burst_times(self) -> list[int]:
        """Instants of bulk edits, late in the window so most records predate them."""
        count = 1 + self.days // 30
        return sorted(self.end - HOUR_US - int(self.rng.random() * min(self.days, 3) * DAY_US // 2) for _ in range(count))

    def burst_members(self, candidates: list[int]) -> list[int]:
        size = min(self.rng.randint(150, 400), len(candidates) // 2)
        return sorted(self.rng.sample(candidates, size)) if size > 0 else []
