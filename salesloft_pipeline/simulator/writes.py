"""Writes to the simulated team, as SalesLoft's API v2 takes them (docs/simulator.md, "Writes").

People are created and updated (`POST /v2/people`, `PUT /v2/people/{id}`),
added to cadences (`POST /v2/cadence_memberships`) and upserted in bulk
(`/v2/bulk_jobs`), with SalesLoft's validation answers (422
`{"errors": {field: [message]}}`). Every change goes through `Store.put`, so
ground truth, `updated_at` polling and webhooks see it like any other change,
and the team's activity (`Activity`) learns of new people and memberships so
it never makes a second membership for one person and cadence.

The server calls in on its event loop; each request's store changes are made
under the store lock without awaiting, so a concurrent read sees all or none
of them. A bulk job runs as a task on the loop, a chunk of records at a time.
`/__sim/bulk_jobs` makes the next jobs marked ready end in a failure state (`control`).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response

from . import generator as g
from .activity import Activity
from .config import SimulatorConfig
from .paging import paging_metadata
from .store import Change, Store

MAX_JOB_DATA = 5000  # records per job_data call
BULK_CHUNK = 200  # records a bulk job applies between two turns of the event loop
BULK_TYPES = ("person/upsert",)
# The states SalesLoft documents for a bulk job; a job made to fail (`/__sim/bulk_jobs`) ends in another.
BULK_STATES = ("open", "executing", "done")
UPSERT_KEYS = ("email_address", "id")
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Person fields set as text; `email_address`, tags, custom fields, flags and references have their own rules.
TEXT_FIELDS = (
    "first_name", "last_name", "title", "phone", "phone_extension", "mobile_phone", "home_phone",
    "secondary_email_address", "personal_email_address", "linkedin_url", "city", "state", "country",
    "work_city", "work_state", "work_country", "person_company_name", "person_company_website",
    "person_company_industry", "job_seniority", "locale", "personal_website", "twitter_handle",
)  # fmt: skip
# Reference parameters of a person: parameter -> (field of the record, stream, path of its _href).
REFERENCES = {
    "owner_id": ("owner", "users", "users"),
    "account_id": ("account", "accounts", "accounts"),
    "person_stage_id": ("person_stage", "person_stages", "person_stages"),
}
# Every field of a person record, in the generator's order (a new person has them all).
PERSON_FIELDS = (
    "id", "created_at", "updated_at", "last_contacted_at", "last_replied_at", "first_name", "last_name",
    "display_name", "email_address", "full_email_address", "secondary_email_address", "personal_email_address",
    "phone", "phone_extension", "home_phone", "mobile_phone", "linkedin_url", "title", "city", "state", "country",
    "work_city", "work_state", "work_country", "crm_url", "crm_id", "crm_object_type", "owner_crm_id",
    "person_company_name", "person_company_website", "person_company_industry", "do_not_contact", "bouncing",
    "locale", "locale_utc_offset", "eu_resident", "personal_website", "twitter_handle", "last_contacted_type",
    "job_seniority", "custom_fields", "tags", "contact_restrictions", "success_count", "starred", "untouched",
    "counts", "account", "owner", "last_contacted_by", "import", "person_stage", "most_recent_cadence",
    "last_completed_step_cadence", "last_completed_step", "cadences",
)  # fmt: skip
WRITE_OUTCOMES = ("person_created", "person_updated", "membership_created", "membership_readded")


class Refused(Exception):
    """A write SalesLoft would refuse: answered with `status` and `payload`."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def not_found() -> Refused:
    return Refused(404, {"error": "Not Found"})


def unprocessable(errors: dict[str, list[str]]) -> Refused:
    return Refused(422, {"errors": errors})


# -- parameters -----------------------------------------------------------------
def _nest(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rails-style parameters: `tags[]=a&tags[]=b` is a list, `custom_fields[k]=v` a dict."""
    params: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            name, _, inner = key[:-1].partition("[")
            params.setdefault(name, {})[inner] = value
        else:
            params[key] = value
    return params


async def read_params(request: Request) -> dict[str, Any]:
    """A write's parameters: query string, then a JSON or form-encoded body (the body wins)."""
    params = _nest(request.query_params.multi_items())
    body = await request.body()
    if not body.strip():
        return params
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params.update(_nest(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
        return params
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, {"error": "The request body is not valid JSON"}) from None
    if not isinstance(payload, dict):
        raise Refused(400, {"error": "The request body must be a JSON object"})
    params.update(payload)
    return params


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    return None


def _text(value: Any) -> str | None:
    """Whether `value` can be a text field; raises ValueError when it cannot."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def error_message(errors: dict[str, list[str]]) -> str:
    """A bulk job result's error: `field message; ...` (base errors without a field)."""
    return "; ".join(m if name == "base" else f"{name} {m}" for name, messages in errors.items() for m in messages)


def page_params(params: Any) -> tuple[int, int]:
    """`page` and `per_page` of a list, clamped like every list; 422 when not integers."""
    values = []
    for name, default in (("page", 1), ("per_page", DEFAULT_PER_PAGE)):
        raw = params.get(name)
        number = default if raw in (None, "") else _integer(raw)
        if number is None:
            raise unprocessable({name: ["must be an integer"]})
        values.append(number)
    return max(1, values[0]), min(MAX_PER_PAGE, max(1, values[1]))


# -- bulk jobs ------------------------------------------------------------------
@dataclass
class BulkJob:
    record: dict[str, Any]
    data: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    # Set when the job was marked ready while failures were asked for: (end state, records applied first).
    failure: tuple[str, int] | None = None


class BulkFailures(BaseModel):
    """`POST /__sim/bulk_jobs` (docs/simulator.md, "Inspection"): the next `fail_next` jobs marked ready
    apply their first `applied` records, then end in `state` instead of `done`."""

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(0, ge=0)
    state: str = "failed"
    applied: int = Field(0, ge=0)

    @field_validator("state")
    @classmethod
    def _not_a_running_state(cls, state: str) -> str:
        if not state.strip() or state in BULK_STATES:
            raise ValueError(f"must be a state other than {', '.join(BULK_STATES)} (e.g. 'failed')")
        return state


class Writes:
    """The write endpoints of one simulated team, and the lookups write-back needs."""

    def __init__(
        self,
        store: Store,
        activity: Activity,
        config: SimulatorConfig,
        emit: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.activity = activity
        self.config = config
        self.emit = emit
        self.jobs: dict[int, BulkJob] = {}
        self.failures = BulkFailures()
        self.failed_jobs: list[int] = []  # ids of the jobs that ended in a failure state, in order
        # What writes did, for /__sim/stats (keys: WRITE_OUTCOMES).
        self.outcomes: Counter[str] = Counter()
        self._next_job = 1
        self._tasks: set[asyncio.Task[None]] = set()
        # Indexes for duplicate checks and filters, built on first use, then kept by on_change.
        self._indexed = False
        self._by_email: dict[str, set[int]] = {}
        self._email_of: dict[int, str] = {}
        self._by_person: dict[int, dict[int, int]] = {}  # person -> cadence -> membership
        self._by_cadence: dict[int, set[int]] = {}
        store.listeners.append(self.on_change)

    # -- indexes ---------------------------------------------------------------
    def on_change(self, change: Change) -> None:
        """Store listener (called under the store lock): keeps the indexes current."""
        if not self._indexed:
            return
        if change.stream == "people":
            self._forget_email(change.record["id"])
            if change.kind != "deleted":
                self._index_email(change.record)
        elif change.stream == "cadence_memberships" and change.kind != "deleted":
            self._index_membership(change.record)

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        with self.store.lock:
            for blob in self.store.table("people").blobs.values():
                self._index_email(orjson.loads(blob))
            for blob in self.store.table("cadence_memberships").blobs.values():
                self._index_membership(orjson.loads(blob))
            self._indexed = True

    def _index_email(self, person: dict[str, Any]) -> None:
        email = person.get("email_address")
        if email:
            key = email.strip().lower()
            self._by_email.setdefault(key, set()).add(person["id"])
            self._email_of[person["id"]] = key

    def _forget_email(self, person_id: int) -> None:
        key = self._email_of.pop(person_id, None)
        if key is not None:
            owners = self._by_email.get(key, set())
            owners.discard(person_id)
            if not owners:
                self._by_email.pop(key, None)

    def _index_membership(self, membership: dict[str, Any]) -> None:
        person, cadence = membership["person"]["id"], membership["cadence"]["id"]
        self._by_person.setdefault(person, {})[cadence] = membership["id"]
        self._by_cadence.setdefault(cadence, set()).add(membership["id"])

    def people_by_email(self, email: str) -> set[int]:
        self._ensure_indexes()
        return set(self._by_email.get(email.strip().lower(), ()))

    # -- list filters ------------------------------------------------------------
    def filter_ids(self, stream: str, params: Any, filtering: dict[str, Any]) -> set[Any] | None:
        """Ids admitted by the write-back filters of a list (None: no such filter given).

        people: `email_addresses[]` (case-insensitive); cadence_memberships:
        `person_id`, `cadence_id`; cadences: `name[]` (exact). Echoed in `filtering`."""
        if stream == "people":
            emails = params.getlist("email_addresses[]") or params.getlist("email_addresses")
            if not emails:
                return None
            filtering["email_addresses"] = emails
            self._ensure_indexes()
            with self.store.lock:
                return {i for e in emails for i in self._by_email.get(e.strip().lower(), ())}
        if stream == "cadence_memberships":
            wanted: set[Any] | None = None
            for name in ("person_id", "cadence_id"):
                raw = params.get(name)
                if raw is None:
                    continue
                number = _integer(raw)
                if number is None:
                    raise unprocessable({name: ["must be an integer"]})
                filtering[name] = raw
                self._ensure_indexes()
                with self.store.lock:
                    if name == "person_id":
                        found = set(self._by_person.get(number, {}).values())
                    else:
                        found = set(self._by_cadence.get(number, ()))
                wanted = found if wanted is None else wanted & found
            return wanted
        if stream == "cadences":
            names = params.getlist("name[]") or params.getlist("name")
            if not names:
                return None
            filtering["name"] = names
            with self.store.lock:
                table = self.store.table("cadences")
                return {i for i, blob in table.blobs.items() if orjson.loads(blob).get("name") in names}
        return None

    # -- routing -----------------------------------------------------------------
    @staticmethod
    def endpoint(method: str, path: str) -> str | None:
        """The endpoint a request is for (`"POST /v2/people"`), or None when it is no write route.

        Reads of people and memberships stay with the list and record code."""
        parts = path.split("/")
        head, rest = parts[0], parts[1:]
        if head == "people" and method != "GET" and len(rest) <= 1:
            return f"{method} /v2/people" + ("/{id}" if rest else "")
        if head == "cadence_memberships" and method != "GET" and not rest:
            return f"{method} /v2/cadence_memberships"
        if head == "bulk_jobs":
            if not rest:
                return f"{method} /v2/bulk_jobs"
            if len(rest) == 1:
                return f"{method} /v2/bulk_jobs/{{id}}"
            if len(rest) == 2 and rest[1] in ("job_data", "results"):
                return f"{method} /v2/bulk_jobs/{{id}}/{rest[1]}"
        return None

    async def handle(self, request: Request, endpoint: str, path: str) -> dict[str, Any]:
        """Answers one write route's request with the 200 body; raises Refused otherwise."""
        method, _, route = endpoint.partition(" ")
        parts = path.split("/")
        raw_id = parts[1] if len(parts) > 1 else None
        if route == "/v2/people" and method == "POST":
            return {"data": self.create_person(await read_params(request))}
        if route == "/v2/people/{id}" and method == "PUT":
            return {"data": self.update_person(raw_id or "", await read_params(request))}
        if route == "/v2/cadence_memberships" and method == "POST":
            return {"data": self.add_to_cadence(await read_params(request))}
        if route == "/v2/bulk_jobs":
            if method == "POST":
                return {"data": self.create_job(await read_params(request))}
            if method == "GET":
                return self._page([dict(j.record) for j in self.jobs.values()], request.query_params)
        if route.startswith("/v2/bulk_jobs/{id}"):
            job = self.jobs.get(_integer(raw_id) or 0)
            if job is None:
                raise not_found()
            if route == "/v2/bulk_jobs/{id}":
                if method == "GET":
                    return {"data": dict(job.record)}
                if method == "PUT":
                    return {"data": self.update_job(job, await read_params(request))}
            elif route == "/v2/bulk_jobs/{id}/job_data" and method == "POST":
                return {"data": self.add_job_data(job, await read_params(request))}
            elif route == "/v2/bulk_jobs/{id}/results" and method == "GET":
                return self._page(list(job.results), request.query_params)
        # A write route, but not with this method.
        raise Refused(405, {"error": "Method Not Allowed"})

    # -- time ----------------------------------------------------------------------
    def _now_us(self) -> int:
        """Now, but after every change made so far (history, activity, earlier writes),
        so an incremental reader past the newest record still sees this one."""
        now = g.to_us(datetime.now(timezone.utc))
        return max(now, self.store.latest_change_us + 1, self.activity.last_us + 1)

    def _stamp(self, t: int, user_id: Any) -> str:
        return g.CLOCK.format(t, self.activity.user_zone.get(user_id, "UTC"))

    def _me(self) -> int | None:
        """The user the API key belongs to (the one `/v2/me` answers)."""
        return min(self.store.table("users").ids(), default=None)

    # -- people ----------------------------------------------------------------------
    def create_person(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            person, errors = self._save_person(None, params)
        if person is None:
            raise unprocessable(errors)
        return person

    def update_person(self, raw_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            person_id = self.store.table("people").coerce_id(raw_id)
            existing = self.store.get("people", person_id) if person_id is not None else None
            if existing is None:
                raise not_found()
            person, errors = self._save_person(existing, params)
        if person is None:
            raise unprocessable(errors)
        return person

    def _save_person(
        self, existing: dict[str, Any] | None, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
        """Creates (`existing` None) or updates a person: (the record, {}) or (None, field errors).

        Called under the store lock."""
        self._ensure_indexes()
        changes, errors = self._person_changes(existing, params)
        if errors:
            return None, errors
        t = self._now_us()
        if existing is None:
            person = self._blank_person(self.store.next_id("people"))
            changes.setdefault("owner", g.ref("users", self._me()) if self._me() is not None else None)
        else:
            person = existing
        old_account = (person.get("account") or {}).get("id")
        custom = changes.pop("custom_fields", None)
        person.update(changes)
        if custom is not None:
            merged = dict(person.get("custom_fields") or {})
            for name, value in custom.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = value
            person["custom_fields"] = merged
        if "account" in changes and changes["account"] and "person_company_name" not in changes:
            account = self.store.get("accounts", changes["account"]["id"]) or {}
            person["person_company_name"] = account.get("name")
        first, last, email = person.get("first_name"), person.get("last_name"), person.get("email_address")
        person["display_name"] = " ".join(p for p in (first, last) if p) or None
        person["full_email_address"] = (
            f'"{person["display_name"]}" <{email}>' if email and person["display_name"] else email
        )
        owner = (person.get("owner") or {}).get("id")
        person["updated_at"] = self._stamp(t, owner)
        if existing is None:
            person["created_at"] = person["updated_at"]
        self.store.put("people", person)
        self.outcomes["person_created" if existing is None else "person_updated"] += 1
        # The team's activity works written people too, but only those it can email
        # (it draws new prospects' addresses from an existing person's domain).
        if person.get("email_address"):
            self.activity.people.add(person["id"])
        else:
            self.activity.people.remove(person["id"])
        new_account = (person.get("account") or {}).get("id")
        if new_account != old_account:
            self._account_people(t, old_account, new_account, person["id"])
        return person, {}

    def _person_changes(
        self, existing: dict[str, Any] | None, params: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The record fields a create or update sets, and SalesLoft's errors for it."""
        changes: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name in TEXT_FIELDS:
            if name in params:
                try:
                    changes[name] = _text(params[name])
                except ValueError:
                    errors.setdefault(name, []).append("is invalid")
        if "email_address" in params:
            raw = params["email_address"]
            email = raw.strip() if isinstance(raw, str) else raw
            if _blank(email):
                changes["email_address"] = None
            elif not isinstance(email, str) or not EMAIL_RE.match(email):
                errors.setdefault("email_address", []).append("is invalid")
            else:
                owners = self._by_email.get(email.lower(), set()) - {existing and existing["id"]}
                if owners:
                    errors.setdefault("email_address", []).append("has already been taken")
                changes["email_address"] = email
        if "tags" in params:
            tags = params["tags"]
            if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
                changes["tags"] = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
            elif tags is None:
                changes["tags"] = []
            else:
                errors.setdefault("tags", []).append("is invalid")
        if "custom_fields" in params:
            custom = params["custom_fields"]
            if isinstance(custom, dict) and all(not isinstance(v, (dict, list)) for v in custom.values()):
                changes["custom_fields"] = {
                    str(k): None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
                    for k, v in custom.items()
                }
            else:
                errors.setdefault("custom_fields", []).append("is invalid")
        if "do_not_contact" in params:
            flag = _boolean(params["do_not_contact"])
            if flag is None:
                errors.setdefault("do_not_contact", []).append("is invalid")
            else:
                changes["do_not_contact"] = flag
        for name, (record_field, stream, href) in REFERENCES.items():
            if name not in params:
                continue
            raw = params[name]
            if _blank(raw):
                if name == "owner_id":
                    errors.setdefault(name, []).append("can't be blank")
                else:
                    changes[record_field] = None
                continue
            number = _integer(raw)
            if number is None or self.store.get(stream, number) is None:
                errors.setdefault(name, []).append("does not exist")
            else:
                changes[record_field] = g.ref(href, number)
        merged = {**(existing or {}), **changes}
        if "email_address" in errors:  # an email was given, if not a usable one
            merged["email_address"] = params["email_address"]
        if _blank(merged.get("email_address")) and (_blank(merged.get("phone")) or _blank(merged.get("last_name"))):
            errors.setdefault("base", []).append("Either email_address or phone and last_name must be provided")
        return changes, errors

    @staticmethod
    def _blank_person(person_id: int) -> dict[str, Any]:
        person: dict[str, Any] = dict.fromkeys(PERSON_FIELDS)
        person.update(
            id=person_id, do_not_contact=False, bouncing=False, eu_resident=False, custom_fields={}, tags=[],
            contact_restrictions=[], success_count=0, starred=False, untouched=True, counts=g.people_counts(),
            cadences=[],
        )  # fmt: skip
        g.add_new_feature_field("people", person)
        return person

    def _account_people(self, t: int, old: int | None, new: int | None, person_id: int) -> None:
        """An account's `counts.people` follows the people who join or leave it."""
        for account_id, joined in ((old, False), (new, True)):
            if account_id is None:
                continue
            members = self.activity.account_people.setdefault(account_id, set())
            if joined:
                members.add(person_id)
            else:
                members.discard(person_id)
            account = self.store.get("accounts", account_id)
            if account is not None:
                account["counts"]["people"] = len(members)
                account["updated_at"] = self._stamp(t, (account.get("owner") or {}).get("id"))
                self.store.put("accounts", account)

    # -- cadence memberships -------------------------------------------------------------
    def add_to_cadence(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            self._ensure_indexes()
            errors: dict[str, list[str]] = {}
            found: dict[str, dict[str, Any]] = {}
            for name, stream in (("person_id", "people"), ("cadence_id", "cadences"), ("user_id", "users")):
                raw = params.get(name)
                if _blank(raw):
                    if name != "user_id":
                        errors[name] = ["can't be blank"]
                    continue
                number = _integer(raw)
                record = self.store.get(stream, number) if number is not None else None
                if record is None:
                    errors[name] = ["not found"]
                else:
                    found[name] = record
            cadence = found.get("cadence_id")
            if cadence is not None and cadence.get("archived_at"):
                errors["cadence_id"] = ["is archived"]
            person = found.get("person_id")
            existing = None
            if person is not None and cadence is not None:
                existing_id = self._by_person.get(person["id"], {}).get(cadence["id"])
                existing = self.store.get("cadence_memberships", existing_id) if existing_id else None
                if existing is not None and existing["currently_on_cadence"]:
                    errors.setdefault("base", []).append("person is already on this cadence")
            if errors:
                raise unprocessable(errors)
            assert person is not None and cadence is not None
            user_id = found["user_id"]["id"] if "user_id" in found else self._me()
            t = self._now_us()
            stamp = self._stamp(t, user_id)
            if existing is not None:
                # SalesLoft keeps one membership per person and cadence: a re-add reuses it.
                existing.update(
                    added_at=stamp, updated_at=stamp, current_state="active", currently_on_cadence=True,
                    person_deleted=False, user=g.ref("users", user_id),
                )  # fmt: skip
                membership = existing
            else:
                membership = g.membership_record(
                    g.CLOCK.format, self.activity.user_zone.get(user_id, "UTC"),
                    self.store.next_id("cadence_memberships"), t, t, t, "active", g.ref("people", person["id"]),
                    g.ref("cadences", cadence["id"]), g.ref("users", user_id), None, g.membership_counts(),
                )  # fmt: skip
            self.store.put("cadence_memberships", membership)
            self.outcomes["membership_readded" if existing is not None else "membership_created"] += 1
            self._tell_activity(person["id"], cadence["id"], membership["id"])
            cadence_ref = g.ref("cadences", cadence["id"])
            person["most_recent_cadence"] = cadence_ref
            if cadence_ref not in person["cadences"]:
                person["cadences"].append(cadence_ref)
            person["updated_at"] = self._stamp(t, (person.get("owner") or {}).get("id"))
            self.store.put("people", person)
            return membership

    def _tell_activity(self, person_id: int, cadence_id: int, membership_id: int) -> None:
        """The team's activity then works this membership and never makes a second one."""
        activity = self.activity
        if activity.memberships.get((person_id, cadence_id)) != membership_id:
            activity.memberships[(person_id, cadence_id)] = membership_id
            activity.person_memberships.setdefault(person_id, []).append(membership_id)
        activity.membership_pool.add(membership_id)

    # -- bulk jobs ---------------------------------------------------------------------
    def _job_stamp(self) -> str:
        return g.CLOCK.format(g.to_us(datetime.now(timezone.utc)), "UTC")

    def create_job(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("type")
        if _blank(kind):
            raise unprocessable({"type": ["can't be blank"]})
        if kind not in BULK_TYPES:
            raise unprocessable({"type": ["is not included in the list"]})
        with self.store.lock:
            job_id, self._next_job = self._next_job, self._next_job + 1
        stamp = self._job_stamp()
        record = {
            "id": job_id, "type": kind, "state": "open", "ready_to_execute": False, "created_at": stamp,
            "updated_at": stamp, "marked_ready_at": None, "started_at": None, "finished_at": None,
            "total": 0, "processed": 0, "errors": 0,
        }  # fmt: skip
        self.jobs[job_id] = BulkJob(record)
        return dict(record)

    def add_job_data(self, job: BulkJob, params: dict[str, Any]) -> dict[str, Any]:
        data = params.get("data")
        if job.record["state"] != "open":
            raise unprocessable({"base": ["job data can only be added while the job is open"]})
        if not isinstance(data, list) or not data:
            raise unprocessable({"data": ["can't be blank"]})
        if not all(isinstance(item, dict) for item in data):
            raise unprocessable({"data": ["must be a list of objects"]})
        if len(data) > MAX_JOB_DATA:
            raise unprocessable({"data": [f"can't contain more than {MAX_JOB_DATA} records"]})
        job.data.extend(dict(item) for item in data)
        job.record["total"] = len(job.data)
        job.record["updated_at"] = self._job_stamp()
        return {"records": len(data)}

    def update_job(self, job: BulkJob, params: dict[str, Any]) -> dict[str, Any]:
        ready = _boolean(params.get("ready_to_execute"))
        if "ready_to_execute" in params and ready is None:
            raise unprocessable({"ready_to_execute": ["is invalid"]})
        if ready and job.record["state"] == "open":
            if self.failures.fail_next:
                self.failures.fail_next -= 1
                job.failure = (self.failures.state, self.failures.applied)
            stamp = self._job_stamp()
            job.record.update(
                state="executing", ready_to_execute=True, marked_ready_at=stamp, started_at=stamp, updated_at=stamp
            )
            answer = dict(job.record)
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return answer
        if ready:
            raise unprocessable({"ready_to_execute": ["job is not open"]})
        return dict(job.record)

    async def _run(self, job: BulkJob) -> None:
        """Applies the job's records in order, a chunk at a time, then announces it done.

        A job made to fail stops after its first `applied` records: only those are processed, have
        results and changed anything; it ends in its failure state and is announced all the same."""
        end = len(job.data) if job.failure is None else min(job.failure[1], len(job.data))
        for start in range(0, end, BULK_CHUNK):
            with self.store.lock:
                for record in job.data[start : min(start + BULK_CHUNK, end)]:
                    self._upsert(job, record)
            await asyncio.sleep(0)
        stamp = self._job_stamp()
        job.record.update(state="done" if job.failure is None else job.failure[0], finished_at=stamp, updated_at=stamp)
        if job.failure is not None:
            self.failed_jobs.append(job.record["id"])
        self.emit("bulk_job_completed", dict(job.record))

    async def control(self, request: Request) -> Response:
        """`/__sim/bulk_jobs`: GET answers the failure settings left; POST replaces them (BulkFailures)."""
        if request.method == "POST":
            try:
                self.failures = BulkFailures.model_validate(await read_params(request))
            except Refused as error:
                return Response(orjson.dumps(error.payload), status_code=error.status, media_type="application/json")
            except ValidationError as error:
                errors = {"errors": orjson.loads(error.json(include_url=False))}
                return Response(orjson.dumps(errors), status_code=422, media_type="application/json")
        answer = {**self.failures.model_dump(), "failed_jobs": list(self.failed_jobs)}
        return Response(orjson.dumps(answer), media_type="application/json")

    def _upsert(self, job: BulkJob, submitted: dict[str, Any]) -> None:
        """One record of a person/upsert job: an update of the person it names, else a create."""
        key = submitted.get("upsert_key") or "email_address"
        fields = {k: v for k, v in submitted.items() if k not in ("upsert_key", "id")}
        existing = None
        errors: dict[str, list[str]] | None = None
        if key not in UPSERT_KEYS:
            errors = {"upsert_key": ["is not included in the list"]}
        elif key == "id":
            person_id = _integer(submitted.get("id"))
            existing = self.store.get("people", person_id) if person_id is not None else None
            if existing is None:
                errors = {"id": ["does not exist"]}
        else:
            email = submitted.get("email_address")
            if _blank(email) or not isinstance(email, str):
                errors = {"email_address": ["can't be blank"]}
            else:
                matches = sorted(self.people_by_email(email))
                existing = self.store.get("people", matches[0]) if matches else None
        person = None
        if errors is None:
            person, errors = self._save_person(existing, fields)
        job.record["processed"] += 1
        if errors:
            job.record["errors"] += 1
        job.results.append({
            "id": len(job.results) + 1,
            "status": "error" if errors else "success",
            "error": error_message(errors) if errors else None,
            "record": submitted,
            "resource": None if errors or person is None else {"id": person["id"]},
        })  # fmt: skip

    def _page(self, items: list[dict[str, Any]], params: Any) -> dict[str, Any]:
        page, per_page = page_params(params)
        chunk = items[(page - 1) * per_page : page * per_page]
        paging = paging_metadata(params, page, per_page, len(chunk), len(items), self.config.exact_last_page)
        sorting = {"sort_by": "id", "sort_direction": "ASC"}
        return {"metadata": {"filtering": {}, "paging": paging, "sorting": sorting}, "data": chunk}

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
