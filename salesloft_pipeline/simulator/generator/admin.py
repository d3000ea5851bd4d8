"""The team's administration and configuration: roles, CRM settings, integrations, audit reports.

Small lists an admin sets up, most of them early in the window and in the
admin's time zone, coherent with the rest of the history:
- custom_roles: the roles users have ("Admin", "User": the ids of users'
  `role` references) and a few custom ones (string ids);
- call_instructions: one per phone step, with that step's id (steps'
  `details` and actions' `action_details` point at them) and times;
- crm_activity_fields: the CRM fields SalesLoft fills when it logs a
  call or an email;
- crm_account_team_members: CRM account teams of the first accounts, with
  the CRM users' ids and the account team member roles;
- pending_emails: the few emails waiting for an external email client;
- audit_reports: report requests of the admin, with their download links;
- external_configurations and external_mappings: external ids of people
  (a help desk) and opportunities (the CRM's ids);
- webhook_subscriptions: the team's own, from integrations, on event types
  the simulator never sends or disabled (so they deliver nothing);
- signals_registrations and registrations_plays: signal integrations
  (video views, webinars, intent) and the plays built on them.
`AdminHistory` is the history's mixin; it draws from its own random stream
(`family_rng("admin")`).
"""

from __future__ import annotations

from typing import Any

import orjson

from .common import DAY_US, HOUR_US, MINUTE_US, TEAM_ID, HistoryBase, crm_id, ref, uuid_from

CUSTOM_ROLES = ("Sales Manager", "Read Only Analyst", "RevOps")
CALL_INSTRUCTIONS = (
    "Call once, leave voicemail if not answered. Conference conversation.",
    "Ask about their current process and who owns it.",
    "Reference the email sent earlier; book a 15 minute follow-up.",
    "Confirm the decision makers and the timeline.",
    "If the gatekeeper answers, ask for the best time to reach them.",
)
# (title, crm object type, source, field, field type, value, picklist values)
CRM_ACTIVITY_FIELDS = (
    ("Call Outcome", "Task", "phone", "Call_Outcome__c", "picklist", "",
     {"Connected": "Connected", "Left Voicemail": "Left Voicemail", "No Answer": "No Answer"}),
    ("Call Type", "Phonecall", "phone", "CallType", "picklist", "Outbound", {"Outbound": "Outbound", "Inbound": "Inbound"}),
    ("Follow-up Needed", "Task", "phone", "Follow_up_Needed__c", "boolean", "false", {}),
    ("Email Direction", "Email", "email", "Direction__c", "string", "outbound", {}),
    ("Logged by SalesLoft", "Task", "email", "Logged_by_SalesLoft__c", "boolean", "true", {}),
)
AUDITED_RECORD_TYPES = ("Account", "Person", "Cadence", "User")
# (type, signal name, integration slug, description)
SIGNALS = (
    ("video_watched", "Video Watched", "vidyard", "A prospect watched a video you sent."),
    ("webinar_attended", "Webinar Attended", "on24", "A prospect attended one of your webinars."),
    ("intent_surge", "Intent Surge", "bombora", "An account is researching topics you sell into."),
)
# Subscriptions the team's integrations made: never delivered by the simulator (see the docstring).
TEAM_SUBSCRIPTIONS = (
    ("link_swap", True, "https://hooks.zapier.example.com/hooks/catch/5512/linkswap"),
    ("conversation_recording_created", True, "https://api.gong.example.com/v1/salesloft/webhooks"),
    ("person_updated", False, "https://crm-sync.example.com/salesloft/people"),
)


def en(text: str) -> dict[str, str]:
    """A localized text, as signal integrations give them."""
    return {"en-us": text}


class AdminHistory(HistoryBase):
    """The administration and configuration lists (after the other families)."""

    def admin(self) -> None:
        rng = self.family_rng("admin")
        fmt, start, end, zone = self.fmt, self.start, self.end, self.admin_zone
        admin_guid = self.user_guids[0]
        first, last = self.user_names[0]

        def early(i: int) -> int:
            """The admin's i-th setting, in the window's first hours."""
            return start + 2 * HOUR_US + i * 7 * MINUTE_US + int(rng.random() * 5 * MINUTE_US)

        def load(stream: str, records: list[dict[str, Any]]) -> None:
            self.store.load(stream, records)

        load("custom_roles", [{"id": "Admin", "name": "Admin"}, {"id": "User", "name": "User"}] + [
            {"id": uuid_from(rng), "name": name} for name in CUSTOM_ROLES
        ])

        steps = [orjson.loads(blob) for blob in self.store.table("steps").blobs.values()]
        load("call_instructions", [
            {"id": step["id"], "created_at": step["created_at"], "updated_at": step["updated_at"],
             "instructions": CALL_INSTRUCTIONS[step["id"] % len(CALL_INSTRUCTIONS)]}
            for step in steps if step["type"] == "phone"
        ])

        fields = []
        for i, (title, object_type, source, field, field_type, value, picklist) in enumerate(CRM_ACTIVITY_FIELDS):
            created = early(i)
            updated = self.later(created, self.days * DAY_US, rng) if i % 2 else created
            fields.append({
                "id": self.new_id("crm_activity_fields"), "created_at": fmt(created, zone), "updated_at": fmt(updated, zone),
                "title": title, "salesforce_object_type": "Task", "crm_object_type": object_type, "source": source,
                "field": field, "field_type": field_type, "value": value, "picklist_values": picklist,
            })
        load("crm_activity_fields", fields)

        crm_users = [orjson.loads(blob) for blob in self.store.table("crm_users").blobs.values()]
        roles = [r["name"] for r in map(orjson.loads, self.store.table("account_team_member_roles").blobs.values())]
        members = []
        if crm_users:
            for a in range(min(8, len(self.account_ids))):
                for crm_user in rng.sample(crm_users, min(len(crm_users), 1 + (a % 2))):
                    members.append({
                        "id": self.new_id("crm_account_team_members"),
                        "crm_id": crm_id("01M", self.account_ids[a], crm_user["id"]),
                        "account_crm_id": crm_id("001", self.account_ids[a]), "user_crm_id": crm_user["crm_id"],
                        "team_member_role": rng.choice(roles), "account_access_level": rng.choice(("full", "read")),
                        "user_crm_name": crm_user["name"],
                    })
        load("crm_account_team_members", members)

        load("pending_emails", [
            {"id": self.new_id("pending_emails"), "mailbox": self.user_emails[rng.randrange(len(self.user_emails))],
             "mime_email_payload": ref("mime_email_payloads", self.new_id("mime_email_payloads"))}
            for _ in range(3 + len(self.user_ids) // 25)
        ])

        reports = []
        for i in range(4):
            requested = end - int((0.1 + rng.random() * 0.8) * self.days * DAY_US)
            status = ("completed", "completed", "processing", "failed")[i]
            until = requested - DAY_US
            since = until - (7 + rng.randrange(24)) * DAY_US
            reports.append({
                "id": self.new_id("audit_reports"), "name": f"{AUDITED_RECORD_TYPES[i]} audit",
                "status": status, "error": "The report could not be generated" if status == "failed" else None,
                "requested_on": fmt(requested, zone)[:10],
                "started_on": fmt(requested + MINUTE_US, zone)[:10],
                "completed_on": fmt(min(end, requested + 20 * MINUTE_US), zone)[:10] if status == "completed" else None,
                "since": fmt(since, zone)[:10], "until": fmt(until, zone)[:10],
                "requestor_name": f"{first} {last}", "requestor_email": self.user_emails[0], "user_guid": admin_guid,
                "record_type": AUDITED_RECORD_TYPES[i], "record_ids": [], "data_source": "Database",
                "email_notification": i % 2 == 0,
                "download_url": (
                    f"https://salesloft-audit-reports.s3.amazonaws.com/{TEAM_ID}/{uuid_from(rng)}.csv"
                    if status == "completed" else None
                ),
                "audited_user_guids": [], "actions": [],
            })
        load("audit_reports", reports)

        integrations = {slug: self.new_id("integrations") for slug in ("salesforce", "zendesk", "gong")}
        configurations = [
            ("crm_opportunity", "opportunities", "salesforce", False),
            ("zendesk", "people", "zendesk", False),
            ("gong", "people", "gong", True),
        ]
        config_ids = self.sequence("external_configurations", len(configurations))
        load("external_configurations", [
            {"id": config_id, "external_type": external_type, "object_type": object_type,
             "source_type": "integration", "source_id": integrations[source], "deleted": deleted}
            for config_id, (external_type, object_type, source, deleted) in zip(config_ids, configurations)
        ])
        mappings = []
        opportunities = [orjson.loads(b) for b in self.store.table("opportunities").blobs.values()][:4]
        for opportunity in opportunities:
            mappings.append(("opportunities", opportunity["id"], "crm_opportunity", opportunity["crm_id"]))
        for person_id in rng.sample(self.person_ids, min(4, len(self.person_ids))):
            mappings.append(("people", person_id, "zendesk", str(360_000_000_000 + person_id)))
        records = []
        for i, (object_type, object_id, external_type, external_id) in enumerate(mappings):
            created = self.moment(start + HOUR_US, end - HOUR_US, rng)
            records.append({
                "id": self.new_id("external_mappings"), "object_type": object_type, "object_id": object_id,
                "external_type": external_type, "external_id": external_id,
                "created_at": fmt(created, zone), "updated_at": fmt(created, zone),
            })
        load("external_mappings", records)

        load("webhook_subscriptions", [
            {"id": self.new_id("webhook_subscriptions"), "user_guid": admin_guid, "tenant_id": TEAM_ID,
             "event_type": event_type, "enabled": enabled, "callback_url": url, "callback_token": "%032x" % rng.getrandbits(128)}
            for event_type, enabled, url in TEAM_SUBSCRIPTIONS
        ])

        registrations, plays = [], []
        for i, (signal_type, name, slug, description) in enumerate(SIGNALS):
            integration = ref("integrations", self.new_id("integrations"))
            created = early(10 + i)
            registration_id = self.new_id("signals_registrations")
            registrations.append({
                "id": registration_id, "type": signal_type, "signal_name": name, "owner_user_guid": admin_guid,
                "integration_slug": slug, "integration": integration,
                "indicators": [{"name": "score", "type": "number", "label": en("Score")}],
                "globally_installed_at": fmt(created, "UTC"), "description": en(description),
                "data_shape": {"type": "object", "properties": {"score": {"type": "number"}, "url": {"type": "string"}}},
                "attribution": ["person", "tracked_email_content"] if i < 2 else ["account"],
                "created_at": fmt(created, zone), "updated_at": fmt(self.later(created, DAY_US, rng), zone),
            })
            for k, state in enumerate(("enabled", "draft")[: 1 + i % 2]):
                play_created = self.later(created, 2 * HOUR_US, rng)
                plays.append({
                    "id": self.new_id("registrations_plays"), "identifier": f"{slug}-{signal_type}-{k + 1}",
                    "state": state, "signal_type": signal_type,
                    "signal_registration": ref("integrations/signals/registrations", registration_id),
                    "integration": integration, "owner_user_guid": admin_guid, "owner_tenant_id": TEAM_ID,
                    "name": en(f"{name} follow-up"), "label": en(name),
                    "description": en(f"Add people to a cadence when: {description.lower()}"),
                    "indicators": ["score"], "attributes": {"minimum_score": 50 + 10 * k},
                    "enabled_at": fmt(play_created, zone) if state == "enabled" else None,
                    "created_at": fmt(play_created, zone),
                })
        load("signals_registrations", registrations)
        load("registrations_plays", plays)

