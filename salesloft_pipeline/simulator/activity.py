"""The world going on after the history: a working team's changes, applied on demand.

`Activity.advance(seconds)` applies what a team of `config.people` prospects
(and people/100 reps) does in that many seconds, at the generator's rates per
person and day (averaged over the week, so a test's hour is never a quiet
night). Every change goes through `Store.put`/`Store.delete`, so webhook
listeners see each one. Timestamps are spread over (previous advance, now],
in ascending order, never after `now`.

The changes added with the revenue and Conversation Intelligence streams
(`LATER_CHANGES`: new opportunities, stage changes, amount edits, recorded
conversations) draw from random streams of their own and change nothing
the first ones read, so those happen exactly as before. Activity
histories and calendar events follow the emails, calls, notes and meetings
they are derived from (no draws of their own).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import orjson

from . import generator as g
from .config import SimulatorConfig
from .store import Store, instant_us

# (kind of change, rate per person per calendar day, guaranteed in an advance of an hour or more)
CHANGES: tuple[tuple[str, float, bool], ...] = (
    ("send_email", g.EMAILS_PER_PERSON_DAY, True),
    # Opens, clicks, replies and late bounces of emails sent earlier (~0.7 per email).
    ("engage_email", 0.7 * g.EMAILS_PER_PERSON_DAY, True),
    ("call", g.CALLS_PER_PERSON_DAY, True),
    ("book_meeting", 0.011, True),
    ("update_meeting", 0.002, False),
    ("add_note", 0.053, True),
    ("add_task", g.TASKS_PER_PERSON_DAY, True),
    ("complete_task", 0.6 * g.TASKS_PER_PERSON_DAY, True),
    ("add_to_cadence", 0.02, True),
    ("finish_membership", 0.015, False),
    ("edit_person", 0.02, True),
    ("create_person", 0.003, False),
    ("edit_account", 0.005, False),
    ("create_account", 0.0005, False),
    ("delete_person", 0.0008, True),
    ("delete_note", 0.001, True),
    ("delete_task", 0.002, True),
    ("delete_account", 0.0002, False),
)
# Changes added later, by family (each draws from its own random stream): same layout as CHANGES.
LATER_CHANGES: dict[str, tuple[tuple[str, float, bool], ...]] = {
    "revenue": (
        # One opportunity per 8 accounts (a person in 4 has one) per 30 days, as in the history.
        ("new_opportunity", 1 / 4 / 8 / 30, True),
        ("advance_opportunity", 0.002, True),
        ("edit_opportunity_amount", 0.001, True),
    ),
    # 30% of connected calls with a call data record are recorded (generator/conversations.py).
    "conversations": (
        ("record_conversation", g.RECORDED_SHARE * g.CDR_SHARE * 0.17 * g.CALLS_PER_PERSON_DAY, True),
    ),
}
# Emails this many days back (at the team's send rate) can still gain engagement.
ENGAGEMENT_DAYS = 14
ENGAGEMENTS = ("view",) * 60 + ("click",) * 5 + ("reply",) * 6 + ("bounce",)


# Records that follow another stream's: source stream -> (derived stream, builder(record, activity) or None).
DERIVED = {
    "emails": ("activity_histories", lambda email, a: g.email_history(email, a.user_guid.get(email["user"]["id"]))),
    "calls": ("activity_histories", lambda call, a: g.call_history(call, a.user_guid.get(call["user"]["id"]))),
    "notes": ("activity_histories", lambda note, a: g.note_history(note, a.user_guid.get(note["user"]["id"]))),
    "meetings": (
        "calendar_events",
        lambda meeting, a: g.calendar_event(meeting, a.guid_zone.get(meeting["booked_by_user"]["id"], "UTC")),
    ),
}


def _no_changes() -> dict[str, Counter]:
    return {"created": Counter(), "updated": Counter(), "deleted": Counter()}


class _Pool:
    """Ids to draw from at random, with O(1) add and remove."""

    def __init__(self, ids=()) -> None:
        self.items: list[Any] = []
        self.index: dict[Any, int] = {}
        for item in ids:
            self.add(item)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Any) -> None:
        if item not in self.index:
            self.index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: Any) -> None:
        position = self.index.pop(item, None)
        if position is None:
            return
        last = self.items.pop()
        if position < len(self.items):
            self.items[position] = last
            self.index[last] = position

    def pick(self, rng: random.Random) -> Any | None:
        return self.items[int(rng.random() * len(self.items))] if self.items else None


class Activity:
    """Applies a team's activity to a populated store, `seconds` at a time."""

    def __init__(self, store: Store, config: SimulatorConfig, *, minimum_per_kind: int = 1) -> None:
        """`minimum_per_kind`: an advance of an hour or more makes at least this many
        changes of each main kind (emails sent and engaged, calls, people edited and
        deleted, ...), so a small team still shows every kind of change."""
        self.store = store
        self.seed = config.seed
        self.rng = random.Random(f"salesloft-activity:{config.seed}")
        self.family_rngs = {family: random.Random(f"salesloft-activity:{config.seed}:{family}") for family in LATER_CHANGES}
        self.people_n = max(1, config.people)
        self.minimum = minimum_per_kind
        self.last_us = g.to_us(config.anchor)
        self.changes = _no_changes()
        with store.lock:
            self._index(store)

    def _index(self, store: Store) -> None:
        """What the activity draws from, read once from the store."""

        def records(stream: str) -> list[dict[str, Any]]:
            return [store.get(stream, record_id) for record_id in store.table(stream).ids()]

        users = records("users")
        self.user_zone = {u["id"]: u.get("time_zone", "UTC") for u in users}
        self.user_guid = {u["id"]: u.get("guid") or str(u["id"]) for u in users}
        self.guid_zone = {self.user_guid[u["id"]]: self.user_zone[u["id"]] for u in users}
        self.user_email = {u["id"]: u.get("email") or "" for u in users}
        self.user_name = {u["id"]: u.get("name") for u in users}
        self.user_ids = sorted(self.user_zone)
        cadences = [c for c in records("cadences") if not c.get("archived_at") and not c.get("draft")]
        self.cadence_ids = sorted(c["id"] for c in cadences)
        self.steps: dict[tuple[int, str], list[int]] = {}
        for step in records("steps"):
            self.steps.setdefault((step["cadence"]["id"], step["type"]), []).append(step["id"])
        self.people = _Pool(store.table("people").ids())
        self.accounts = _Pool(store.table("accounts").ids())
        self.account_people: dict[int, set[int]] = {}
        for person_id in self.people.items:
            account = store.get("people", person_id).get("account")
            if account:
                self.account_people.setdefault(account["id"], set()).add(person_id)
        self.memberships: dict[tuple[int, int], int] = {}
        self.person_memberships: dict[int, list[int]] = {}
        for m in records("cadence_memberships"):
            self.memberships[(m["person"]["id"], m["cadence"]["id"])] = m["id"]
            self.person_memberships.setdefault(m["person"]["id"], []).append(m["id"])
        self.membership_pool = _Pool(sorted(self.memberships.values()))
        self.emails = sorted(store.table("emails").ids())
        self.notes = _Pool(store.table("notes").ids())
        self.tasks = _Pool(store.table("tasks").ids())
        self.meetings = _Pool(store.table("meetings").ids())
        opportunities = records("opportunities")
        self.opportunities = _Pool(sorted(o["id"] for o in opportunities))
        self.open_opportunities = _Pool(sorted(o["id"] for o in opportunities if not o["is_closed"]))
        self.crm_user_id = {c["user"]["id"]: c["crm_id"] for c in records("crm_users")}
        conversation = next(iter(store.table("conversations").ids()), None)
        self.organization_id = (
            store.get("conversations", conversation)["organization_id"] if conversation is not None
            else g.uuid_from(random.Random(f"salesloft-activity:{self.seed}:organization"))
        )
        # Connected calls with a call data record and no conversation yet, oldest first: built on first use.
        self.unrecorded: list[tuple[int, int]] | None = None

    # -- the public surface -------------------------------------------------
    def advance(self, seconds: float, now: datetime | None = None) -> dict[str, dict[str, int]]:
        """Applies `seconds` of activity, timestamped within (previous advance, now].

        Returns {"created": {stream: n}, "updated": {...}, "deleted": {...}}."""
        now_us = g.to_us(now or datetime.now(timezone.utc))
        rng = self.rng
        self.changes = _no_changes()
        with self.store.lock:
            # Monotonic: never before the previous change (an advance, a bulk edit),
            # even if `now` went back.
            self.last_us = max(self.last_us, self.store.latest_change_us)
            end = max(now_us, self.last_us + 1)
            start = max(self.last_us, end - int(seconds * g.SECOND_US))
            steps = [self._plan(rng, CHANGES, seconds, start, end)]
            # The later families' changes, each from its own random stream, merged in by time
            # (the first ones keep their order among themselves, so they happen as before).
            steps += [self._plan(self.family_rngs[f], changes, seconds, start, end) for f, changes in LATER_CHANGES.items()]
            for t, kind in heapq.merge(*steps, key=lambda step: step[0]):
                getattr(self, kind)(t)
            self.last_us = end
        return {outcome: dict(sorted(counts.items())) for outcome, counts in self.changes.items()}

    def _plan(self, rng: random.Random, changes, seconds: float, start: int, end: int) -> list[tuple[int, str]]:
        """(instant, kind of change) of `seconds` of these changes, in time order."""
        plan = []
        for kind, rate, guaranteed in changes:
            expected = rate * self.people_n * seconds / 86_400
            count = int(expected) + (rng.random() < expected - int(expected))
            if guaranteed and seconds >= 3600:
                count = max(count, self.minimum)
            plan.extend([kind] * count)
        rng.shuffle(plan)
        span = end - start
        times = sorted(min(end, start + 1 + int(rng.random() * span)) for _ in plan)
        return list(zip(times, plan))

    # -- helpers --------------------------------------------------------------
    def _put(self, stream: str, record: dict[str, Any], kind: str | None = None) -> None:
        change = self.store.put(stream, record, kind)
        self.changes["created" if change.kind == "created" else "updated"][stream] += 1
        derived = DERIVED.get(stream)
        if derived is not None:
            target, build = derived
            entry = build(record, self)
            if entry is not None:
                self._put(target, entry)

    def _delete(self, stream: str, record_id: Any) -> None:
        if self.store.delete(stream, record_id) is not None:
            self.changes["deleted"][stream] += 1
            if stream == "notes":  # off the person's timeline too
                self._delete("activity_histories", f"note-{record_id}")

    def _fmt(self, t: int, user_id: int | None) -> str:
        return g.CLOCK.format(t, self.user_zone.get(user_id, "UTC"))

    def _person(self) -> dict[str, Any] | None:
        """A random existing person (a few tries past ids deleted behind our back)."""
        for _ in range(5):
            person_id = self.people.pick(self.rng)
            if person_id is None:
                return None
            person = self.store.get("people", person_id)
            if person is not None:
                return person
            self.people.remove(person_id)
        return None

    def _owner(self, record: dict[str, Any]) -> int:
        owner = record.get("owner") or record.get("user")
        return owner["id"] if owner else self.rng.choice(self.user_ids)

    def _active_membership(self, person_id: int, step_type: str) -> tuple[dict | None, int | None]:
        """The person's latest membership on a cadence with a step of that type, and the step."""
        for membership_id in reversed(self.person_memberships.get(person_id, [])):
            membership = self.store.get("cadence_memberships", membership_id)
            if membership and membership["currently_on_cadence"]:
                steps = self.steps.get((membership["cadence"]["id"], step_type))
                if steps:
                    return membership, self.rng.choice(steps)
        return None, None

    def _count_on(self, t: int, person: dict, membership: dict | None, person_field: str,
                  membership_field: str | None, contact: str | None = None) -> None:
        """Counts an email or call event on its person and membership."""
        person["counts"][person_field] += 1
        person["updated_at"] = self._fmt(t, self._owner(person))
        if contact is not None:
            person["last_contacted_at"] = person["updated_at"]
            person["last_contacted_type"] = contact
            person["last_contacted_by"] = person["owner"]
            person["untouched"] = False
        if person_field == "emails_replied_to":
            person["last_replied_at"] = person["updated_at"]
        if person_field == "emails_bounced":
            person["bouncing"] = True
        self._put("people", person)
        if membership is not None and membership_field is not None:
            membership["counts"][membership_field] += 1
            membership["updated_at"] = self._fmt(t, membership["user"]["id"])
            self._put("cadence_memberships", membership)

    # -- the changes ----------------------------------------------------------
    def send_email(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        rng = self.rng
        user = self._owner(person)
        membership, step = self._active_membership(person["id"], "email")
        email_id = self.store.next_id("emails")
        record = g.email_record(
            g.CLOCK.format, self.user_zone.get(user, "UTC"), email_id, t, t, t, t, "sent", False,
            (0, 0, 0, 0, 0, 0), (rng.random() < 0.95, rng.random() < 0.7), "100.0",
            g.ref("people", person["id"]), person["email_address"], g.ref("users", user), g.mailing_id(email_id),
            None, None, membership and membership["cadence"], None if step is None else g.ref("steps", step), None,
        )
        self._put("emails", record, "created")
        self.emails.append(email_id)
        self._count_on(t, person, membership, "emails_sent", "sent_emails", contact="email")

    def engage_email(self, t: int) -> None:
        """An email sent earlier is opened, clicked, replied to or bounces."""
        rng = self.rng
        recent = max(50, int(g.EMAILS_PER_PERSON_DAY * self.people_n * ENGAGEMENT_DAYS))
        for _ in range(5):
            if not self.emails:
                return
            email = self.store.get("emails", self.emails[-1 - int(rng.random() * min(recent, len(self.emails)))])
            if email and email["status"] in g.SENT_STATUSES and not email["bounced"]:
                break
        else:
            return
        event = ENGAGEMENTS[int(rng.random() * len(ENGAGEMENTS))]
        counts = email["counts"]
        if event == "bounce" and counts["views"]:
            event = "view"  # an opened email does not bounce any more
        person = self.store.get("people", email["recipient"]["id"])
        membership_id = self.memberships.get((email["recipient"]["id"], (email["cadence"] or {}).get("id")))
        membership = self.store.get("cadence_memberships", membership_id) if membership_id else None
        first = {"view": counts["views"] == 0, "click": counts["clicks"] == 0, "reply": counts["replies"] == 0}
        if event == "bounce":
            email["bounced"] = True
            fields = ("emails_bounced", "bounces")
        elif event == "view":
            counts["views"] += 1
            counts["unique_devices"] = max(1, counts["unique_devices"])
            counts["unique_locations"] = max(1, counts["unique_locations"])
            fields = ("emails_viewed", "views")
        elif event == "click":
            counts["clicks"] += 1
            fields = ("emails_clicked", "clicks")
        else:
            counts["replies"] += 1
            fields = ("emails_replied_to", "replies")
        email["updated_at"] = self._fmt(t, email["user"]["id"])
        self._put("emails", email)
        if person is not None and (event == "bounce" or first[event]):
            self._count_on(t, person, membership, fields[0], fields[1])
        elif membership is not None:
            membership["counts"][fields[1]] += 1
            membership["updated_at"] = self._fmt(t, membership["user"]["id"])
            self._put("cadence_memberships", membership)

    def call(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        rng, store = self.rng, self.store
        user = self._owner(person)
        zone = self.user_zone.get(user, "UTC")
        membership, step = self._active_membership(person["id"], "phone")
        disposition = g.DISPOSITION_TABLE[int(rng.random() * len(g.DISPOSITION_TABLE))]
        connected = disposition == "Connected"
        duration = 30 + int(rng.random() * 900) if connected else (None if rng.random() < 0.7 else 5 + int(rng.random() * 40))
        sentiment = rng.choice(g.SENTIMENTS) if connected and rng.random() < 0.8 else None
        call_id = store.next_id("calls")
        person_ref, user_ref, call_ref = g.ref("people", person["id"]), g.ref("users", user), g.ref("activities/calls", call_id)
        note = None
        if rng.random() < g.CALL_NOTE_SHARE:
            note_id = store.next_id("notes")
            content = rng.choice(g.CALL_NOTES.get(disposition, ("missed call",)))
            self._put("notes", g.note_record(g.CLOCK.format, zone, note_id, t, t, content, "person", person_ref, user_ref, call_ref))
            self.notes.add(note_id)
            note = g.ref("notes", note_id)
        phone = person.get("phone") or person.get("mobile_phone") or "+15555550100"
        self._put("calls", g.call_record(
            g.CLOCK.format, zone, call_id, t, t, phone, duration, disposition, sentiment, [], user_ref, person_ref,
            None, None, note, membership and membership["cadence"], None if step is None else g.ref("steps", step),
        ))
        if rng.random() < g.CDR_SHARE:
            cdr_id = store.next_id("call_data_records")
            self._put("call_data_records", g.call_data_record(
                g.CLOCK.format, zone, cdr_id, t, t, call_ref, phone, "+15555550199",
                duration, disposition, [], user_ref, person_ref, g.uuid_from(rng),
            ))
            if connected and self.unrecorded is not None:
                self.unrecorded.append((call_id, cdr_id))
        self._count_on(t, person, membership, "calls", "calls", contact="call")

    def book_meeting(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        rng, store = self.rng, self.store
        user = self._owner(person)
        name = person["display_name"]
        # Booked as it is held: the start is the last quarter hour, never in the future.
        start = t - t % (15 * g.MINUTE_US)
        account = person.get("account")
        meeting_id = store.next_id("meetings")
        self._put("meetings", g.meeting_record(
            g.CLOCK.format, meeting_id, t, t, start, g.ref("people", person["id"]), name, person["email_address"],
            self.user_email.get(user, ""), account["id"] if account else None,
            g.ref("users", self.user_guid.get(user, str(user))), None, None, "%026x" % rng.getrandbits(104),
            None, False, None,
        ), "created")
        self.meetings.add(meeting_id)
        counts = person["counts"]
        self._put("successes", g.success_record(
            g.CLOCK.format, self.user_zone.get(user, "UTC"), store.next_id("successes"), t, t, g.ref("users", user),
            g.ref("people", person["id"]), None, None, None, None, (counts["emails_sent"], counts["calls"]),
        ))

    def update_meeting(self, t: int) -> None:
        meeting = self.store.get("meetings", self.meetings.pick(self.rng))
        if meeting is None or meeting["canceled_at"]:
            return
        if self.rng.random() < 0.5:
            meeting["canceled_at"] = g.CLOCK.format(t, "UTC")
            meeting["status"] = "canceled"
        else:
            meeting["no_show"] = True
        meeting["updated_at"] = g.CLOCK.format(t, "UTC")
        self._put("meetings", meeting)

    def add_note(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        user = self._owner(person)
        account = person.get("account")
        on_account = account is not None and self.rng.random() < 0.3
        note_id = self.store.next_id("notes")
        self._put("notes", g.note_record(
            g.CLOCK.format, self.user_zone.get(user, "UTC"), note_id, t, t,
            "Account update" if on_account else "Follow up next week", "account" if on_account else "person",
            g.ref("accounts", account["id"]) if on_account else g.ref("people", person["id"]), g.ref("users", user), None,
        ))
        self.notes.add(note_id)

    def add_task(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        user = self._owner(person)
        task_id = self.store.next_id("tasks")
        account = person.get("account")
        self._put("tasks", g.task_record(
            g.CLOCK.format, self.user_zone.get(user, "UTC"), task_id, t, t, t, None,
            self.rng.choice(("call", "email", "general")), f"{self.rng.choice(g.TASK_SUBJECTS)} with {person['first_name']}",
            g.ref("users", user), g.ref("people", person["id"]), account and g.ref("accounts", account["id"]), None,
        ))
        self.tasks.add(task_id)

    def complete_task(self, t: int) -> None:
        for _ in range(5):
            task = self.store.get("tasks", self.tasks.pick(self.rng))
            if task is not None and task["current_state"] == "scheduled":
                break
        else:
            return
        stamp = self._fmt(t, task["user"]["id"])
        task.update(current_state="completed", completed_at=stamp, updated_at=stamp, completed_by_user=task["user"])
        self._put("tasks", task, "completed")

    def add_to_cadence(self, t: int) -> None:
        """A person joins a cadence; a person re-added keeps their membership id."""
        person = self._person()
        if person is None or not self.cadence_ids:
            return
        cadence_id = self.rng.choice(self.cadence_ids)
        user = self._owner(person)
        stamp = self._fmt(t, user)
        existing = self.memberships.get((person["id"], cadence_id))
        membership = self.store.get("cadence_memberships", existing) if existing else None
        if membership is not None:
            membership.update(
                added_at=stamp, updated_at=stamp, current_state="active", currently_on_cadence=True, person_deleted=False
            )
        else:
            membership = g.membership_record(
                g.CLOCK.format, self.user_zone.get(user, "UTC"), self.store.next_id("cadence_memberships"), t, t, t,
                "active", g.ref("people", person["id"]), g.ref("cadences", cadence_id), g.ref("users", user), None,
                g.membership_counts(),
            )
            self.memberships[(person["id"], cadence_id)] = membership["id"]
            self.person_memberships.setdefault(person["id"], []).append(membership["id"])
            self.membership_pool.add(membership["id"])
        self._put("cadence_memberships", membership)
        cadence = g.ref("cadences", cadence_id)
        person["most_recent_cadence"] = cadence
        if cadence not in person["cadences"]:
            person["cadences"].append(cadence)
        person["updated_at"] = stamp
        self._put("people", person)

    def finish_membership(self, t: int) -> None:
        membership = self.store.get("cadence_memberships", self.membership_pool.pick(self.rng))
        if membership is None or not membership["currently_on_cadence"]:
            return
        membership.update(
            current_state=self.rng.choice(g.MEMBERSHIP_DONE_STATES), currently_on_cadence=False,
            updated_at=self._fmt(t, membership["user"]["id"]),
        )
        self._put("cadence_memberships", membership)

    def edit_person(self, t: int) -> None:
        person = self._person()
        if person is None:
            return
        title, seniority = self.rng.choice(g.TITLES)
        person.update(title=title, job_seniority=seniority, updated_at=self._fmt(t, self._owner(person)))
        self._put("people", person)

    def create_person(self, t: int) -> None:
        """A new prospect, shaped like an existing one (same fields, fresh identity, no activity)."""
        template = self._person()
        if template is None:
            return
        rng = self.rng
        person_id = self.store.next_id("people")
        first, last = rng.choice(g.FIRST_NAMES), rng.choice(g.LAST_NAMES)
        domain = template["email_address"].split("@")[-1]
        stamp = self._fmt(t, self._owner(template))
        template.update(
            id=person_id, created_at=stamp, updated_at=stamp, first_name=first, last_name=last,
            display_name=f"{first} {last}", email_address=f"{first.lower()}.{last.lower()}{person_id}@{domain}",
            last_contacted_at=None, last_replied_at=None, last_contacted_type=None, last_contacted_by=None,
            counts=g.people_counts(), cadences=[], most_recent_cadence=None, success_count=0, untouched=True,
            bouncing=False, tags=[],
        )
        template["full_email_address"] = f'"{first} {last}" <{template["email_address"]}>'
        self._put("people", template)
        self.people.add(person_id)
        if template.get("account"):
            self._account_people_changed(t, template["account"]["id"], add=person_id)

    def _account_people_changed(self, t: int, account_id: int, add: int | None = None, remove: int | None = None) -> None:
        members = self.account_people.setdefault(account_id, set())
        if add is not None:
            members.add(add)
        members.discard(remove)
        account = self.store.get("accounts", account_id)
        if account is not None:
            account["counts"]["people"] = len(members)
            account["updated_at"] = self._fmt(t, self._owner(account))
            self._put("accounts", account)

    def edit_account(self, t: int) -> None:
        account = self.store.get("accounts", self.accounts.pick(self.rng))
        if account is None:
            return
        account.update(
            industry=self.rng.choice(g.INDUSTRIES), size=self.rng.choice(g.SIZES), updated_at=self._fmt(t, self._owner(account))
        )
        self._put("accounts", account)

    def create_account(self, t: int) -> None:
        template = self.store.get("accounts", self.accounts.pick(self.rng))
        if template is None:
            return
        account_id = self.store.next_id("accounts")
        name = f"{self.rng.choice(g.COMPANY_WORDS)} {self.rng.choice(g.COMPANY_SUFFIXES)} {account_id}"
        domain = f"{name.split()[0].lower()}{account_id}.example.com"
        stamp = self._fmt(t, self._owner(template))
        template.update(
            id=account_id, name=name, domain=domain, website=f"https://{domain}", created_at=stamp, updated_at=stamp,
            conversational_name=name.split()[0], counts={"people": 0}, last_contacted_at=None,
            last_contacted_type=None, last_contacted_by=None, last_contacted_person=None,
        )
        self._put("accounts", template)
        self.accounts.add(account_id)

    def delete_person(self, t: int) -> None:
        """Deletes a person; their memberships stay, marked person_deleted."""
        person = self._person()
        if person is None:
            return
        self._delete("people", person["id"])
        self.people.remove(person["id"])
        for membership_id in self.person_memberships.pop(person["id"], []):
            membership = self.store.get("cadence_memberships", membership_id)
            if membership is not None:
                membership.update(
                    person_deleted=True, currently_on_cadence=False, updated_at=self._fmt(t, membership["user"]["id"])
                )
                self._put("cadence_memberships", membership)
        if person.get("account"):
            self._account_people_changed(t, person["account"]["id"], remove=person["id"])

    def delete_note(self, t: int) -> None:
        note_id = self.notes.pick(self.rng)
        if note_id is not None:
            self.notes.remove(note_id)
            self._delete("notes", note_id)

    def delete_task(self, t: int) -> None:
        task_id = self.tasks.pick(self.rng)
        if task_id is not None:
            self.tasks.remove(task_id)
            self._delete("tasks", task_id)

    def delete_account(self, t: int) -> None:
        """Deletes an account; its people stay, without an account."""
        account_id = self.accounts.pick(self.rng)
        if account_id is None:
            return
        for person_id in sorted(self.account_people.pop(account_id, ())):
            person = self.store.get("people", person_id)
            if person is not None:
                person.update(account=None, person_company_name=None, updated_at=self._fmt(t, self._owner(person)))
                self._put("people", person)
        self.accounts.remove(account_id)
        self._delete("accounts", account_id)


    # -- revenue (own random stream) -------------------------------------------
    def new_opportunity(self, t: int) -> None:
        """An opportunity opens on the account of a person a cadence works, with that person on it."""
        rng, store = self.family_rngs["revenue"], self.store
        template = store.get("opportunities", self.opportunities.pick(rng))
        for _ in range(5):  # read-only draws: the first changes' pools stay as they are
            person = store.get("people", self.people.pick(rng))
            if person is not None and person.get("account") and person.get("most_recent_cadence"):
                break
        else:
            return
        account = store.get("accounts", person["account"]["id"])
        if template is None or account is None:
            return
        owner = (account.get("owner") or template["owner"])["id"]
        stamp, utc = self._fmt(t, owner), g.CLOCK.format(t, "UTC")
        opportunity_id = store.next_id("opportunities")
        crm_id = g.crm_id("006", opportunity_id)
        kind = rng.choice(g.OPPORTUNITY_TYPES)
        template.update(
            id=opportunity_id, created_at=stamp, updated_at=stamp, name=f"{account['name']} - {kind}",
            amount=g.opportunity_amount(rng), opportunity_type=kind,
            close_date=g.close_date(g.CLOCK.format, t + int((30 + rng.random() * 60) * g.DAY_US)),
            created_date=utc, crm_last_updated_date=utc, crm_id=crm_id, crm_url=f"{g.CRM_URL}/{crm_id}",
            account_crm_id=g.crm_id("001", account["id"]), company_crm_id=g.crm_id("001", account["id"]),
            account_name=account["name"], owner_crm_id=self.crm_user_id.get(owner), created_by_crm_id=self.crm_user_id.get(owner),
            owner_crm_name=self.user_name.get(owner), opportunity_window_person_id=person["id"], opportunity_window_started_at=stamp,
            custom_fields={"Opportunity Stage": "", "Deal Source": rng.choice(g.DEAL_SOURCES)}, tags=[],
            most_recent_cadence=person["most_recent_cadence"], most_recent_step=None, most_recent_step_number=None,
            owner=g.ref("users", owner), creator=g.ref("users", owner), account=g.ref("accounts", account["id"]),
        )
        g.set_stage(template, 0)
        self._put("opportunities", template, "created")
        self.opportunities.add(opportunity_id)
        self.open_opportunities.add(opportunity_id)
        self._put("opportunity_people", {
            "id": store.next_id("opportunity_people"), "created_at": stamp, "updated_at": stamp,
            "person_id": person["id"], "opportunity_id": opportunity_id, "opportunity_crm_id": crm_id,
            "person_crm_id": g.crm_id("003", person["id"]),
        })

    def advance_opportunity(self, t: int) -> None:
        """An open opportunity moves on a stage, or closes (won from Negotiation, lost from any)."""
        rng = self.family_rngs["revenue"]
        opportunity = self.store.get("opportunities", self.open_opportunities.pick(rng))
        if opportunity is None or opportunity["is_closed"]:
            return
        stage = [name for name, _ in g.OPPORTUNITY_STAGES].index(opportunity["stage_name"])
        if stage == 3 or rng.random() < 0.12:
            stage = g.WON if stage == 3 and rng.random() < 0.5 else g.LOST
            opportunity["close_date"] = g.close_date(g.CLOCK.format, t)
            self.open_opportunities.remove(opportunity["id"])
        else:
            stage += 1
        g.set_stage(opportunity, stage)
        self._edited_opportunity(t, opportunity)

    def edit_opportunity_amount(self, t: int) -> None:
        """A new amount, on any opportunity (a closed one's is corrected too)."""
        rng = self.family_rngs["revenue"]
        opportunity = self.store.get("opportunities", self.opportunities.pick(rng))
        if opportunity is not None:
            opportunity["amount"] = g.opportunity_amount(rng)
            self._edited_opportunity(t, opportunity)

    def _edited_opportunity(self, t: int, opportunity: dict[str, Any]) -> None:
        opportunity["updated_at"] = self._fmt(t, (opportunity.get("owner") or {}).get("id"))
        opportunity["crm_last_updated_date"] = g.CLOCK.format(t, "UTC")
        self._put("opportunities", opportunity)

    # -- Conversation Intelligence (own random stream) -------------------------
    def record_conversation(self, t: int) -> None:
        """The latest connected call not recorded yet becomes a conversation, transcribed at once."""
        rng, store = self.family_rngs["conversations"], self.store
        if self.unrecorded is None:
            self.unrecorded = self._unrecorded_calls()
        while self.unrecorded:
            call_id, cdr_id = self.unrecorded.pop()
            call = store.get("calls", call_id)
            if call is not None:
                break
        else:
            return
        ended = instant_us(call["created_at"])
        started = ended - (call["duration"] or 30) * g.SECOND_US
        user = call["user"]["id"]
        person = store.get("people", call["called_person"]["id"]) or {}
        name = person.get("display_name") or "a prospect"
        account = (person.get("account") or {}).get("id")
        conversation_id, transcription_id, recording_id = g.uuid_from(rng), g.uuid_from(rng), g.uuid_from(rng)
        self._put("conversations", g.conversation_record(
            g.CLOCK.format, self.user_zone.get(user, "UTC"), conversation_id, transcription_id, recording_id,
            self.organization_id, started, ended, t, t, f"Call with {name}", self.user_guid.get(user),
            call["called_person"]["id"], account, cdr_id,
        ))
        self._put("transcriptions", g.transcription_record(g.CLOCK.format, transcription_id, conversation_id, t, t))

    def _unrecorded_calls(self) -> list[tuple[int, int]]:
        store = self.store
        recorded = {c["call_id"] for c in map(orjson.loads, store.table("conversations").blobs.values())}
        cdr_of = {}
        for blob in store.table("call_data_records").blobs.values():
            cdr = orjson.loads(blob)
            if str(cdr["id"]) not in recorded:
                cdr_of[cdr["call"]["id"]] = cdr["id"]
        marker = b'"disposition":"Connected"'
        return sorted(
            (call_id, cdr_of[call_id]) for call_id, blob in store.table("calls").blobs.items()
            if call_id in cdr_of and marker in blob
        )


def make_ties(store: Store, stream: str, count: int, updated_at: str | None = None) -> tuple[str, list]:
    """Gives `count` existing records of the stream one identical `updated_at` (a bulk edit).

    `updated_at` defaults to now in UTC with microseconds. Returns it and the ids."""
    if updated_at is None:
        updated_at = g.CLOCK.format(g.to_us(datetime.now(timezone.utc)), "UTC")
    with store.lock:
        ids = store.table(stream).ids()
        chosen = sorted(random.Random(f"ties:{stream}:{count}:{updated_at}").sample(ids, min(count, len(ids))))
        for record_id in chosen:
            record = store.get(stream, record_id)
            record["updated_at"] = updated_at
            store.put(stream, record)
    return updated_at, chosen
