"""The activity: emails, calls, call data records, notes, tasks, meetings, successes, actions, CRM activities.

Day by day over the window (`activity`), emails, calls, tasks and account
notes at the rates below, and what follows from them: opens, clicks,
replies, bounces, call notes and data records, cadence actions, CRM logs,
meetings and their successes. The record builders are shared with
activity.py, so live records look the same. `ActivitiesHistory` is the
history's mixin for them.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Any

from .common import (
    DAY_US, HOUR_US, ID_BASE, MAILING_ID_BASE, MINUTE_US, SECOND_US, HistoryBase, add_new_feature_field,
    email_subject, ref, uuid_from, weighted_table,
)
from .lookups import DISPOSITIONS, SENTIMENTS

# Rates per person per calendar day (see the docstring of generator/__init__.py).
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

EMAIL_STATUSES = ("sent", "sent_from_gmail", "sent_from_external", "failed", "scheduled", "pending")
EMAIL_STATUS_WEIGHTS = (890, 40, 10, 10, 5, 3)
EMAIL_STATUS_TABLE = weighted_table(EMAIL_STATUSES, EMAIL_STATUS_WEIGHTS)
# Shares of the call dispositions (lookups.DISPOSITIONS, in its order).
DISPOSITION_WEIGHTS = (17, 33, 30, 5, 4, 3, 5, 1)
DISPOSITION_TABLE = weighted_table(DISPOSITIONS, DISPOSITION_WEIGHTS)
SENT_STATUSES = frozenset({"sent", "sent_from_gmail", "sent_from_external"})
CALL_NOTES = {
    "Connected": ("Spoke with them, interested in a demo", "Good conversation, send pricing", "Not a priority this quarter"),
    "Left Voicemail": ("Left voicemail", "Left VM, will follow up by email"),
}
TASK_SUBJECTS = ("Follow up", "Send pricing", "Call back", "Prepare demo", "Research account", "Send case study")


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


class ActivitiesHistory(HistoryBase):
    """The day-by-day activity and everything that follows from each email and call."""

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
