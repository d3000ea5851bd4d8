"""Cadences, their steps, email and team templates (with attachments), and cadence memberships.

Cadences and steps come first, then templates, then who joins which cadence
when (`memberships`); the membership records (with the pending action of
each active one and the bulk reassignments) and the cadence records (with
their people and meeting counts) are written after the activity.
`CadencesHistory` is the history's mixin for them.
"""

from __future__ import annotations

from typing import Any

from .common import (
    API, DAY_US, HOUR_US, MINUTE_US, SECOND_US, SUBJECT_TOPICS, HistoryBase, add_new_feature_field,
    email_subject, ref, uuid_from,
)
from .lookups import PERSON_STAGES, STAGE

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


def membership_counts(sent=0, views=0, clicks=0, replies=0, bounces=0, calls=0) -> dict[str, int]:
    return {"views": views, "clicks": clicks, "replies": replies, "calls": calls, "sent_emails": sent, "bounces": bounces}


# -- record builder (shared with activity.py, so live records look the same) ---


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


class CadencesHistory(HistoryBase):
    """Cadences, steps, templates and memberships; the final memberships and cadences after the activity.

    `finish_memberships` also gives each active membership its pending action
    (with `action_record` of activities.py) and loads the actions stream."""

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
