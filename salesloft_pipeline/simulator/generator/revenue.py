"""Revenue: the opportunities engagement leads to, the people on them and the pipeline's stages.

Opportunity stages are set up at the window start. Opportunities come from
the team's CRM (SalesLoft reads them, as it does for Salesforce, Dynamics
and HubSpot teams): about one per 8 accounts per 30 days of history (at
least 4), on accounts whose people the team works, half of them already in
the CRM when the window starts (synced in its first hours, with a CRM
`created_date` up to 120 days earlier, so some are closed already). Each
moves through the stages every 2-20 days; from Negotiation it closes, won or
lost, and any stage may be lost early. `updated_at` is the last change after
SalesLoft first saw it (a stage change, an amount edit). Open opportunities'
`close_date` is the expected one and may be after the anchor, the one
timestamp of the history that may be.

Each opportunity has 1-3 opportunity_people: the person whose engagement
opened its window (`opportunity_window_person_id`) and others of the
account. Amounts and probabilities are strings, as SalesLoft sends them.
`RevenueHistory` is the history's mixin; it draws from its own random
stream (`family_rng("revenue")`).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from .common import DAY_US, HOUR_US, MINUTE_US, SECOND_US, HistoryBase, crm_id
from .lookups import OPPORTUNITY_TAGS

# The pipeline, in order, with each stage's probability (a string, as SalesLoft sends it).
OPPORTUNITY_STAGES = (
    ("Qualification", "10"), ("Discovery", "20"), ("Proposal", "50"), ("Negotiation", "75"),
    ("Closed Won", "100"), ("Closed Lost", "0"),
)
WON, LOST = 4, 5
LEGACY_STAGE = "Prospecting"  # an old stage, no longer active
OPPORTUNITY_TYPES = ("New Business",) * 12 + ("Expansion",) * 5 + ("Renewal",) * 3
DEAL_SOURCES = ("Inbound", "Outbound", "Partner", "Event", "Referral")
OPPORTUNITIES_PER_ACCOUNT_DAY = 1 / 8 / 30
CRM_URL = "https://salesteam.my.salesforce.com"
SYNCED_AT = 3 * HOUR_US  # after the window start: the CRM's opportunities are synced, after the first imports


def opportunity_amount(rng) -> str:
    """1000.00 to 250000.00, log-uniform, in steps of 500."""
    value = math.exp(math.log(1000) + rng.random() * (math.log(250_000) - math.log(1000)))
    return f"{max(1000, min(250_000, round(value / 500) * 500)):.2f}"


def set_stage(record: dict[str, Any], stage: int) -> None:
    """An opportunity's stage fields for the stage's index in OPPORTUNITY_STAGES."""
    name, probability = OPPORTUNITY_STAGES[stage]
    record.update(stage_name=name, probability=probability, is_closed=stage >= WON, is_won=stage == WON)
    if record.get("custom_fields") and "Opportunity Stage" in record["custom_fields"]:
        record["custom_fields"]["Opportunity Stage"] = name


def close_date(fmt, us: int) -> str:
    """A CRM date as SalesLoft shows it: midnight UTC of that day."""
    return fmt(us - us % DAY_US, "UTC")


class RevenueHistory(HistoryBase):
    """Opportunity stages, opportunities and opportunity_people (after the other families)."""

    def revenue(self) -> None:
        rng = self.family_rng("revenue")
        fmt, start, end = self.fmt, self.start, self.end
        at = start + 6 * MINUTE_US
        stage_ids = self.sequence("opportunity_stages", len(OPPORTUNITY_STAGES) + 1)
        stages = []
        for i, (name, _) in enumerate(OPPORTUNITY_STAGES + ((LEGACY_STAGE, "0"),)):
            created = at + i * 21_113
            # The team tidies two stages up later in the window.
            updated = self.later(created, self.days * DAY_US, rng) if i in (1, 3) else created
            stages.append({
                "id": stage_ids[i], "created_at": fmt(created, self.admin_zone), "updated_at": fmt(updated, self.admin_zone),
                "name": name, "order": i + 1 if name != LEGACY_STAGE else 0, "active": name != LEGACY_STAGE,
            })
        self.store.load("opportunity_stages", stages)

        # Who can be on an opportunity: the people of each account.
        people_of: dict[int, list[int]] = {}
        for p, a in enumerate(self.person_account):
            if a >= 0:
                people_of.setdefault(a, []).append(p)
        accounts = sorted(people_of)
        if not accounts:
            self.opportunity_ids = []
            self.store.load("opportunities", [])
            return
        # Accounts whose people were contacted are likelier to open an opportunity.
        weights = [3 if any(self.person_last_contact[p][1] for p in people_of[a]) else 1 for a in accounts]
        count = max(4, round(len(self.account_ids) * self.days * OPPORTUNITIES_PER_ACCOUNT_DAY))
        crm_user = {}
        for blob in self.store.table("crm_users").blobs.values():
            record = orjson.loads(blob)
            crm_user[record["user"]["id"]] = record["crm_id"]
        step_number = {}
        for blob in self.store.table("steps").blobs.values():
            record = orjson.loads(blob)
            step_number[record["id"]] = record["step_number"]
        self.opportunity_ids = self.sequence("opportunities", count)
        opportunities, people = [], []
        for i, opportunity_id in enumerate(self.opportunity_ids):
            a = rng.choices(accounts, weights)[0]
            members = people_of[a]
            contacted = [p for p in members if self.person_last_contact[p][1]]
            p = rng.choice(contacted or members)
            record, joined = self._opportunity(rng, opportunity_id, i, a, p, crm_user, step_number)
            opportunities.append(record)
            others = [q for q in members if q != p]
            extra = min(len(others), rng.choices((0, 1, 2), (50, 35, 15))[0])
            for q in [p] + rng.sample(others, extra):
                person_id = self.person_ids[q]
                added = joined if q == p else self.later(joined, max(SECOND_US, end - joined), rng)
                stamp = fmt(added, self.user_zones[self.account_owner[a]])
                people.append({
                    "id": self.new_id("opportunity_people"), "created_at": stamp, "updated_at": stamp,
                    "person_id": person_id, "opportunity_id": opportunity_id, "opportunity_crm_id": record["crm_id"],
                    "person_crm_id": crm_id("003", person_id),
                })
        self.store.load("opportunities", opportunities)
        people.sort(key=lambda r: r["id"])
        self.store.load("opportunity_people", people)

    def _opportunity(self, rng, opportunity_id: int, i: int, a: int, p: int, crm_user: dict, step_number: dict):
        """One opportunity's record and the instant SalesLoft first saw it."""
        fmt, start, end = self.fmt, self.start, self.end
        owner = self.account_owner[a]
        zone = self.user_zones[owner]
        lo = max(self.account_created[a], self.person_created[p]) + HOUR_US
        if rng.random() < 0.5 and lo <= start + SYNCED_AT:
            # Already in the CRM: synced after the first imports.
            crm_created = start - int((1 + rng.random() * 119) * DAY_US)
            seen = start + SYNCED_AT + int(rng.random() * 30 * MINUTE_US)
        else:
            crm_created = self.moment(min(lo, end - 2 * HOUR_US), end - HOUR_US, rng)
            seen = crm_created + int(rng.random() * 5 * MINUTE_US)
        stage, changed, t = 0, crm_created, crm_created
        while True:
            t += int((2 + rng.random() * 18) * DAY_US)
            if t >= end:
                break
            if stage == 3 or rng.random() < 0.12:  # closes: won from Negotiation, lost otherwise
                stage = WON if stage == 3 and rng.random() < 0.5 else LOST
                changed = t
                break
            stage, changed = stage + 1, t
        updated = max(seen + int(rng.random() * 3 * SECOND_US) + 1, changed)
        if rng.random() < 0.2:  # an amount edited later
            updated = max(updated, self.later(seen, end - seen, rng))
        closes = changed if stage >= WON else crm_created + int((30 + rng.random() * 60) * DAY_US)
        creator = owner if rng.random() < 0.8 else rng.randrange(len(self.user_ids))
        membership = self.membership_at(p, seen)
        cadence = step = number = None
        if membership is not None:
            c = self.m_cadence[membership]
            cadence = self.cadence_refs[c]
            choices = self.cadence_email_steps[c] + self.cadence_phone_steps[c]
            if choices:
                step = self.step_refs[rng.choice(sorted(choices))]
                number = step_number.get(step["id"])
        kind = rng.choice(OPPORTUNITY_TYPES)
        first, last = self.user_names[owner]
        record_crm_id = crm_id("006", opportunity_id)
        custom: dict[str, str] = {}
        if i % 3:
            custom = {"Opportunity Stage": OPPORTUNITY_STAGES[stage][0], "Deal Source": rng.choice(DEAL_SOURCES)}
            if stage == WON:
                custom["Contract Start"] = close_date(fmt, closes + 14 * DAY_US)[:10]
        record = {
            "id": opportunity_id,
            "created_at": fmt(seen, zone), "updated_at": fmt(updated, zone),
            "name": f"{self.account_names[a]} - {kind}", "amount": opportunity_amount(rng),
            "stage_name": None, "probability": None, "is_closed": False, "is_won": False,
            "close_date": close_date(fmt, closes), "created_date": fmt(crm_created, "UTC"),
            "crm_last_updated_date": fmt(max(crm_created, updated - 2 * SECOND_US), "UTC"),
            "currency_iso_code": "USD", "opportunity_type": kind,
            "crm_id": record_crm_id, "crm_type": "salesforce", "crm_url": f"{CRM_URL}/{record_crm_id}",
            "account_crm_id": crm_id("001", self.account_ids[a]), "company_crm_id": crm_id("001", self.account_ids[a]),
            "account_name": self.account_names[a],
            "owner_crm_id": crm_user.get(self.user_ids[owner]), "owner_crm_name": f"{first} {last}",
            "created_by_crm_id": crm_user.get(self.user_ids[creator]),
            "opportunity_window_person_id": self.person_ids[p],
            "opportunity_window_started_at": fmt(max(start, seen - int(rng.random() * 7 * DAY_US)), zone),
            "custom_fields": custom,
            "tags": [rng.choice(OPPORTUNITY_TAGS)] if rng.random() < 0.2 else [],
            "most_recent_step_number": number,
            "most_recent_cadence": cadence, "most_recent_step": step, "most_recent_step_account": None,
            "owner": self.user_refs[owner], "creator": self.user_refs[creator], "account": self.account_refs[a],
        }
        set_stage(record, stage)
        return record, seen

