"""`writeback.people` to SalesLoft: the difference with what SalesLoft has, as creates and updates.

What SalesLoft has is staging's version of each person, or for people staging
does not know, what this pipeline created (the ledger) or SalesLoft's own
answer, with the changes this pipeline made since that version (ok rows of
the ledger newer than it) laid over it, so a rerun before the next extraction
sends nothing and asks nothing.
"""

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from salesloft_pipeline.salesloft import ApiError, SalesloftClient
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.tables import utc
from salesloft_pipeline.warehouse.writeback import LEDGER, PEOPLE_COLUMNS, Entry, Ledger, chunks

from .lookup import (
    PEOPLE_ASSET,
    REFERENCES,
    email_key,
    find_people,
    people_from_api,
    person_by_id,
    ref_id,
    staging_has,
)
from .sending import parse_errors, refused

ASSET = PEOPLE_ASSET
FIELDS = tuple(name for name, _, _ in PEOPLE_COLUMNS if name != "email_address")
BULK_JOB_MAX = 5000  # records per bulk job: one job_data call, results within 50 pages


# -- values ---------------------------------------------------------------------
def desired_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a row sets (NULL leaves a field alone), as SalesLoft takes them. Raises ValueError."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = row.get(name)
        if value is None:
            continue
        if name in ("tags", "custom_fields") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"{name} is not JSON: {value[:60]!r}") from None
        if name == "tags" and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
            raise ValueError("tags must be a JSON array of strings")
        if name == "custom_fields" and not isinstance(value, dict):
            raise ValueError("custom_fields must be a JSON object")
        if name in REFERENCES:
            value = int(value)
        values[name] = value
    return values


def current_value(record: Mapping[str, Any], name: str) -> Any:
    return ref_id(record, REFERENCES[name]) if name in REFERENCES else record.get(name)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def same(name: str, desired: Any, current: Any) -> bool:
    if name == "tags":
        return sorted({_text(t) for t in desired if _text(t)}) == sorted({_text(t) for t in current or []})
    if name == "custom_fields":
        current = current or {}
        return all(_text(current.get(k)) == _text(v) for k, v in desired.items())
    if name in REFERENCES:
        return current is not None and str(current) == str(desired)
    if name == "do_not_contact":
        return bool(current) == bool(desired)
    return _text(current) == _text(desired)


def changes(desired: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields to send so that `record` has `desired`; custom fields merged with the current ones."""
    body = {}
    for name, value in desired.items():
        current = current_value(record, name)
        if not same(name, value, current):
            body[name] = {**(current or {}), **value} if name == "custom_fields" else value
    return body


def overlay(record: dict[str, Any], body: Mapping[str, Any]) -> None:
    """`record` as it is after SalesLoft applied `body` (for comparing only)."""
    for name, value in body.items():
        if name in REFERENCES:
            record[REFERENCES[name]] = {"id": value}
        elif name == "custom_fields":
            record[name] = {**(record.get(name) or {}), **value}
        elif name in FIELDS:
            record[name] = value


# -- planning --------------------------------------------------------------------
@dataclass
class Plan:
    send: list[Entry] = field(default_factory=list)  # creates and updates, status pending
    unresolved: list[Entry] = field(default_factory=list)
    unchanged: int = 0  # rows SalesLoft already matches
    still_rejected: int = 0  # rows whose identical request SalesLoft refused before: not sent again
    emails: dict[str, str] = field(default_factory=dict)  # row key -> email spelled as SalesLoft has it


def read_rows(wh: Warehouse) -> list[dict[str, Any]]:
    names = [name for name, _, _ in PEOPLE_COLUMNS]
    return [dict(zip(names, row)) for row in wh.query(f"SELECT {', '.join(names)} FROM writeback.people")]


def _written_since_staging(wh: Warehouse, ledger: Ledger) -> dict[str, list[Entry]]:
    """Changes this pipeline made that staging's version of the person does not show yet, by person id."""
    where = f"asset = '{ASSET}' AND status = 'ok' AND resource_updated_at IS NOT NULL"
    if staging_has(wh, "people"):
        where += (
            f" AND NOT EXISTS (SELECT 1 FROM staging.people AS p WHERE CAST(p.id AS {wh.TYPES['text']}) ="
            f" {LEDGER}.resource_id AND p.updated_at >= {LEDGER}.resource_updated_at)"
        )
    written: dict[str, list[Entry]] = defaultdict(list)
    for entry in sorted(ledger.select(where), key=lambda e: e.resource_updated_at):
        written[entry.resource_id].append(entry)
    return written


def _change(entry: Entry) -> tuple[str, dict[str, Any]]:
    """What an entry changes, however it was sent (one request or a bulk job)."""
    return entry.action, {k: v for k, v in (entry.request or {}).items() if k in FIELDS}


def plan(client: SalesloftClient, wh: Warehouse, ledger: Ledger, run_id: str) -> Plan:
    result = Plan()

    def unresolved(key: str, note: str, row: Mapping[str, Any] | None = None) -> None:
        request = {k: v for k, v in (row or {}).items() if v is not None} or None
        result.unresolved.append(
            Entry(
                run_id,
                ASSET,
                key,
                "upsert",
                "unresolved",
                request=json.loads(json.dumps(request, default=str)),
                note=note,
            )
        )

    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read_rows(wh):
        key = email_key(row["email_address"])
        if key is None:
            unresolved("(no email)", "email_address is empty", row)
        else:
            by_key[key].append(row)
    wanted: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, rows in by_key.items():
        try:
            versions = {json.dumps(desired_fields(r), sort_keys=True, default=str) for r in rows}
        except (ValueError, TypeError) as error:
            unresolved(key, str(error), rows[0])
            continue
        if len(versions) > 1:
            unresolved(key, f"{len(rows)} rows of writeback.people have this email with different values", rows[0])
            continue
        wanted[key] = (str(rows[0]["email_address"]).strip(), json.loads(versions.pop()))

    found = find_people(client, wh, wanted, ledger)
    written = _written_since_staging(wh, ledger)
    answers = ledger.last_answers(ASSET)
    for key, (email, desired) in sorted(wanted.items()):
        people = found.get(key, [])
        if len(people) > 1:
            ids = ", ".join(str(p.id) for p in people)
            unresolved(key, f"ambiguous: {len(people)} people in SalesLoft have this email (ids {ids})")
            continue
        if people:
            person = people[0]
            record = dict(person.record)
            for entry in written.get(str(person.id), []):
                if person.updated_at is None or entry.resource_updated_at > person.updated_at:
                    overlay(record, entry.request or {})
            body = changes(desired, record)
            if not body:
                result.unchanged += 1
                continue
            entry = Entry(run_id, ASSET, key, "update", "pending", "PUT", f"people/{person.id}", body)
            entry.resource_id = str(person.id)
            result.emails[key] = str(person.record.get("email_address") or email)
        else:
            body = {"email_address": email, **desired}
            entry = Entry(run_id, ASSET, key, "create", "pending", "POST", "people", body)
            result.emails[key] = email
        before = answers.get(key)
        if refused(before) and _change(before) == _change(entry):
            result.still_rejected += 1  # SalesLoft refused exactly this; change the row to try again
            continue
        result.send.append(entry)
    return result


# -- bulk upsert ---------------------------------------------------------------------
def bulk_record(entry: Entry, email: str) -> dict[str, Any]:
    return {**(entry.request or {}), "email_address": email, "upsert_key": "email_address"}


def send_bulk(
    client: SalesloftClient,
    ledger: Ledger,
    entries: list[Entry],
    emails: Mapping[str, str],
    heartbeat: Callable[[], None],
    timeout: float,
) -> None:
    """Applies `entries` through person/upsert bulk jobs of up to BULK_JOB_MAX records each.

    The entries are durable (pending) before the job is made; the job's id is
    recorded before its data is sent; a job the next run finds still open was
    never started and is abandoned, one it finds running or done is awaited
    and its results recorded."""
    for job_entries in chunks(entries, BULK_JOB_MAX):
        for entry in job_entries:
            entry.method, entry.path = "POST", "bulk_jobs"
            entry.request = bulk_record(entry, emails[entry.row_key])
        ledger.write(job_entries)
        job = client.request("POST", "bulk_jobs", json={"type": "person/upsert"}).body["data"]
        job_id = str(job["id"])
        for entry in job_entries:
            entry.bulk_job_id, entry.path = job_id, f"bulk_jobs/{job_id}/job_data"
        ledger.write(job_entries)
        client.request("POST", f"bulk_jobs/{job_id}/job_data", json={"data": [e.request for e in job_entries]})
        client.request("PUT", f"bulk_jobs/{job_id}", json={"ready_to_execute": True})
        for entry in job_entries:
            entry.answer("sent", note=f"bulk job {job_id} executing")
        ledger.write(job_entries)
        finish_bulk(client, ledger, job_id, job_entries, heartbeat, timeout)


class BulkJobFailed(RuntimeError):
    """A bulk job ended in a state other than `done`. SalesLoft documents only open, executing and done;
    any other state (e.g. `failed`) is taken as the job having ended without finishing."""


WAITING_STATES = ("open", "executing")  # a job we marked ready may still show `open` for a moment


def wait_for_job(client: SalesloftClient, job_id: str, heartbeat: Callable[[], None], timeout: float) -> dict[str, Any]:
    """The job once `done`. Raises BulkJobFailed for any state but open, executing or done (not waited on),
    TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        job = client.get(f"bulk_jobs/{job_id}").body["data"]
        state = job.get("state")
        if state == "done":
            return job
        if state not in WAITING_STATES:
            raise BulkJobFailed(
                f"SalesLoft bulk job {job_id} ended in state {state!r}, not 'done': its rows stay 'sent' and the"
                " next run settles them one by one (is the person there, with these values?) and plans the rest"
                " again."
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"SalesLoft bulk job {job_id} is still {state!r} after {timeout:.0f} s;"
                " the next run collects its results"
            )
        heartbeat()
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def job_results(client: SalesloftClient, job_id: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    page = 1
    while True:
        body = client.get(f"bulk_jobs/{job_id}/results", [("per_page", 100), ("page", page)]).body
        data = body.get("data") or []
        results.extend(data)
        if not data or not ((body.get("metadata") or {}).get("paging") or {}).get("next_page"):
            return results
        page += 1


def finish_bulk(
    client: SalesloftClient,
    ledger: Ledger,
    job_id: str,
    entries: list[Entry],
    heartbeat: Callable[[], None],
    timeout: float,
) -> list[Entry]:
    """Waits for a started job and records its results; returns the entries it had no result for."""
    job = wait_for_job(client, job_id, heartbeat, timeout)
    finished = utc(job.get("finished_at") or job.get("updated_at")) or datetime.now(timezone.utc)
    outcome = {email_key((r.get("record") or {}).get("email_address")): r for r in job_results(client, job_id)}
    missing = []
    for entry in entries:
        result = outcome.get(entry.row_key)
        if result is None:
            missing.append(entry)
        elif result.get("status") == "success":
            resource = (result.get("resource") or {}).get("id")
            entry.answer("ok", http_status=200, resource_id=None if resource is None else str(resource),
                         resource_updated_at=finished, note=f"bulk job {job_id}")  # fmt: skip
        else:
            entry.answer("rejected", http_status=422, errors=parse_errors(result.get("error") or ""),
                         note=f"bulk job {job_id}")  # fmt: skip
    unanswered = {e.id for e in missing}
    ledger.write([e for e in entries if e.id not in unanswered])
    return missing


# -- reconciling what a stopped run left ---------------------------------------------
def reconcile(client: SalesloftClient, ledger: Ledger, heartbeat: Callable[[], None], timeout: float) -> list[Entry]:
    """Settles pending/sent rows of earlier runs by asking SalesLoft what became of them."""
    open_entries = ledger.open_entries(ASSET)
    by_job: dict[str, list[Entry]] = defaultdict(list)
    single: list[Entry] = []
    for entry in open_entries:
        (by_job[entry.bulk_job_id] if entry.bulk_job_id else single).append(entry)
    for job_id, entries in by_job.items():
        try:
            state = client.get(f"bulk_jobs/{job_id}").body["data"].get("state")
        except ApiError as error:
            if error.status != 404:
                raise
            state = None
        if state == "open":  # never marked ready: nothing of it ran, and nothing ever will
            for entry in entries:
                entry.answer("skipped", note=f"bulk job {job_id} was never started; planned again")
            ledger.write(entries)
            continue
        if state in ("executing", "done"):
            try:
                single += finish_bulk(client, ledger, job_id, entries, heartbeat, timeout)
                continue
            except BulkJobFailed:
                pass
        # Unknown to SalesLoft, or ended in another state (failed, cancelled...): row by row, as below.
        single += entries

    creates = [e for e in single if e.action == "create"]
    found = people_from_api(client, {e.row_key for e in creates}) if creates else {}
    for entry in single:
        if entry.action == "create":
            people = found.get(entry.row_key, [])
            if people:
                person = people[0]
                entry.answer("ok", resource_id=str(person.id), resource_updated_at=person.updated_at,
                             note="reconciled: the person is in SalesLoft")  # fmt: skip
            else:
                entry.answer("skipped", note="reconciled: not in SalesLoft, never applied; planned again")
        else:
            record = person_by_id(client, int(entry.resource_id)) if entry.resource_id else None
            body = {k: v for k, v in (entry.request or {}).items() if k in FIELDS}
            if record is not None and not changes(body, record):
                entry.answer("ok", resource_id=str(record["id"]), resource_updated_at=utc(record.get("updated_at")),
                             note="reconciled: SalesLoft has these values")  # fmt: skip
            else:
                entry.answer("skipped", note="reconciled: not applied; planned again")
        ledger.write([entry])
        heartbeat()
    return open_entries
