"""The small lookup lists: account stages and tiers, person stages, call dispositions and sentiments, custom fields;
tags, saved list views, account types and account team member roles.

The team sets them up when it starts (at the window start), in the admin's
time zone. Their vocabularies live here; other families refer to them
(people and cadences to the person stages, calls to the dispositions and
sentiments, opportunities to their custom fields). `LookupsHistory` is the
history's mixin for them: `lookups` makes the first ones (before anything
else), `lookup_lists` the ones added with the revenue streams (after the
other families; they draw nothing at random, and their records have no
timestamps, as SalesLoft's have none).
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
    ("Deal Source", "opportunity", "text"), ("Contract Start", "opportunity", "date"),
)
# Every tag records carry: people ("inbound", and "bulk-update-N" of the bulk edits, added by
# `lookup_lists`), accounts ("target"), cadences ("opt-out"), team and email templates, opportunities.
TAGS = (
    "inbound", "target", "opt-out", "Tag1", "outbound", "Q3", "enterprise", "follow-up", "intro", "breakup",
    "dreamforce", "renewal", "expansion", "q-end-push",
)
OPPORTUNITY_TAGS = ("dreamforce", "renewal", "expansion", "q-end-push")
ACCOUNT_TYPES = ("Private", "Public", "Corporation", "Non-Profit", "Government")  # accounts' company_type
ACCOUNT_TEAM_MEMBER_ROLES = (
    "Account Executive", "Sales Manager", "Sales Development Rep", "Customer Success Manager", "Executive Sponsor",
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

    def lookup_lists(self) -> None:
        """Tags, saved list views, account types and account team member roles (no timestamps, no draws)."""
        bursts = [f"bulk-update-{k + 1}" for k in range(1 + self.days // 30)]  # as burst_times counts them
        names = TAGS + tuple(bursts)
        self.store.load("tags", [
            {"id": tag_id, "name": name} for tag_id, name in zip(self.sequence("tags", len(names)), names)
        ])
        person_stage = {name: str(self.person_stage_ids[i]) for i, name in enumerate(PERSON_STAGES)}
        views = (
            ("people", "My people in cadence", {"owner": "mine", "stage": person_stage["In Cadence"]}, True, False),
            ("people", "Unowned people who replied",
             {"owner": "unowned", "stage": person_stage["Replied"], "unowned": True}, False, True),
            ("people", "Bounced", {"stage": person_stage["Bounced"], "bouncing": True}, False, False),
            ("companies", "Working accounts", {"stage": str(self.account_stage_ids[1])}, True, False),
            ("companies", "Tier 1 accounts", {"account_tier": str(self.account_tier_ids[0])}, False, True),
        )
        self.store.load("saved_list_views", [
            {"id": view_id, "view": view, "name": name, "view_params": params, "is_default": default, "shared": shared}
            for view_id, (view, name, params, default, shared) in zip(self.sequence("saved_list_views", len(views)), views)
        ])
        self.store.load("account_types", [{"name": name} for name in ACCOUNT_TYPES])
        self.store.load("account_team_member_roles", [
            {"id": role_id, "name": name}
            for role_id, name in zip(self.sequence("account_team_member_roles", len(ACCOUNT_TEAM_MEMBER_ROLES)),
                                     ACCOUNT_TEAM_MEMBER_ROLES)
        ])
