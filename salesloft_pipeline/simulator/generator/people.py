"""People and accounts, users and groups: who the team is and whom it sells to.

Users with their groups, phone number assignments, CRM users and meeting
(calendar) searches; accounts, people and the imports they came in. Who and
where exist first (`users_and_groups`, `accounts_and_people`); the records of
people, imports and accounts are written after the activity
(`finish_people_and_accounts`), once their counts, last contacts and bulk
edits are known. `PeopleHistory` is the history's mixin for them.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from .common import (
    API, CLOCK, DAY_US, HOUR_US, MINUTE_US, SECOND_US, TEAM_ID, ZONE_CYCLE, ZONE_WEIGHTS, HistoryBase,
    add_new_feature_field, ref, uuid_from,
)
from .lookups import STAGE

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
LEAD_SOURCES = ("Inbound", "Webinar", "Trade Show", "Outbound", "Referral", "Content Download")


def people_counts(sent=0, viewed=0, clicked=0, replied=0, bounced=0, calls=0) -> dict[str, int]:
    return {
        "emails_sent": sent, "emails_viewed": viewed, "emails_clicked": clicked,
        "emails_replied_to": replied, "emails_bounced": bounced, "calls": calls,
    }


class PeopleHistory(HistoryBase):
    """Users, groups, accounts and people; their final records after the activity."""

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

    # -- the state after the window ----------------------------------------
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
