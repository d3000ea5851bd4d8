"""The small lookup lists: account stages and tiers, person stages, call dispositions and sentiments, custom fields.

The team sets them up when it starts (at the window start), in the admin's
time zone. Their vocabularies live here; other families refer to them
(people and cadences to the person stages, calls to the dispositions and
sentiments). `LookupsHistory` is the history's mixin for them.
"""

from __future__ import annotations

from .common import MINUTE_US, ZONE_CYCLE, HistoryBase

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
SENTIMENTS = (
    "Interested", "Not Interested", "Timing Not Right", "Company - Bad Fit", "Contact - Bad Fit",
    "Customer", "Referral",
)
CUSTOM_FIELDS = (
    ("Lead Source", "person", "text"), ("Persona", "person", "text"), ("Renewal Date", "company", "date"),
    ("ARR", "company", "text"), ("Segment", "company", "text"), ("Opportunity Stage", "opportunity", "text"),
)


class LookupsHistory(HistoryBase):
    """The lookup streams; sets `admin_zone` and the lookups' ids that later records refer to."""

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
