"""`writeback.cadence_enrollments` to SalesLoft: people added to cadences, once.

A person is added to a cadence once: a membership of that person in that
cadence (in staging, whatever its state, or recorded `ok` in the ledger)
means the row is already true, so people who finished or left a cadence are
not put back on it by every run.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from salesloft_pipeline.salesloft import ApiError, SalesloftClient
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.writeback import ENROLLMENT_COLUMNS, Entry, Ledger

from .lookup import cadences_named, email_key, find_people, memberships, query_in, record_of, staging_has
from .sending import refused

ASSET = "writeback/cadence_enrollments"
ALREADY_ON = "already on this cadence"


@dataclass
class Plan:
    send: list[Entry] = field(default_factory=list)
    unresolved: list[Entry] = field(default_factory=list)
    unchanged: int = 0  # the person is (or was) on the cadence already
    still_rejected: int = 0


def read_rows(wh: Warehouse) -> list[dict[str, Any]]:
    names = [name for name, _, _ in ENROLLMENT_COLUMNS]
    sql = f"SELECT DISTINCT {', '.join(names)} FROM writeback.cadence_enrollments"
    return [dict(zip(names, row)) for row in wh.query(sql)]


def describe(row: Mapping[str, Any]) -> str:
    """A readable key for a row that could not be resolved."""
    person = row.get("person_id") or _clean(row.get("person_email")) or "?"
    cadence = row.get("cadence_id") or row.get("cadence_name") or "?"
    return f"person={person} cadence={cadence}"


def _clean(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


class Cadences:
    """Cadence ids by name: staging's cadences, then SalesLoft's for names staging does not know."""

    def __init__(self, client: SalesloftClient, wh: Warehouse) -> None:
        self.client = client
        self.by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if staging_has(wh, "cadences"):
            for (raw,) in wh.query("SELECT record FROM staging.cadences"):
                record = record_of(raw)
                self.by_name[record.get("name")].append(record)

    def resolve(self, name: str) -> tuple[int | None, str | None]:
        """(cadence id, None), or (None, why not)."""
        cadences = self.by_name.get(name)
        if not cadences:
            cadences = self.by_name[name] = cadences_named(self.client, name)
        live = [c for c in cadences if not c.get("archived_at")]
        if len(live) == 1:
            return int(live[0]["id"]), None
        if len(live) > 1:
            return (
                None,
                f"ambiguous: {len(live)} cadences are named {name!r} (ids {', '.join(str(c['id']) for c in live)})",
            )
        if cadences:
            return None, f"cadence {name!r} is archived"
        return None, f"no cadence is named {name!r}"


def users_by_email(wh: Warehouse) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    if staging_has(wh, "users"):
        for (raw,) in wh.query("SELECT record FROM staging.users"):
            record = record_of(raw)
            key = email_key(record.get("email"))
            if key:
                found[key].append(int(record["id"]))
    return found


def existing_pairs(wh: Warehouse, person_ids: Iterable[int]) -> set[tuple[int, int]]:
    """(person, cadence) pairs with a membership in staging, for these people."""
    pairs: set[tuple[int, int]] = set()
    if not staging_has(wh, "cadence_memberships"):
        return pairs
    sql = "SELECT person_id, cadence_id FROM staging.cadence_memberships WHERE person_id IN ("
    rows = query_in(wh, sql, sorted(set(person_ids)))
    pairs.update((int(p), int(c)) for p, c in rows if p is not None and c is not None)
    return pairs


def plan(
    client: SalesloftClient, wh: Warehouse, ledger: Ledger, run_id: str, planned_people: set[str] = frozenset()
) -> Plan:
    """`planned_people`: emails writeback/people would create (a dry run's), taken as resolvable."""
    result = Plan()

    def unresolved(row: Mapping[str, Any], note: str) -> None:
        request = json.loads(json.dumps({k: v for k, v in row.items() if v is not None}, default=str))
        result.unresolved.append(
            Entry(run_id, ASSET, describe(row), "enroll", "unresolved", request=request, note=note)
        )

    rows = read_rows(wh)
    emails = {email_key(r["person_email"]) for r in rows if r["person_id"] is None and email_key(r["person_email"])}
    people = find_people(client, wh, emails, ledger)
    cadences = Cadences(client, wh)
    users = users_by_email(wh) if any(r["user_id"] is None and _clean(r["user_email"]) for r in rows) else {}

    wanted: dict[str, tuple[dict[str, Any], Mapping[str, Any]]] = {}
    for row in rows:
        person_id = row["person_id"]
        if person_id is None:
            key = email_key(row["person_email"])
            if key is None:
                unresolved(row, "neither person_id nor person_email is given")
                continue
            matches = people.get(key, [])
            if len(matches) > 1:
                unresolved(
                    row,
                    f"ambiguous: {len(matches)} people have the email {key} ({', '.join(str(p.id) for p in matches)})",
                )
                continue
            if not matches:
                if key in planned_people:
                    person_id = f"(person {key}, created by writeback/people)"
                else:
                    unresolved(row, f"no person in SalesLoft has the email {key}")
                    continue
            else:
                person_id = matches[0].id
        cadence_id = row["cadence_id"]
        if cadence_id is None:
            name = _clean(row["cadence_name"])
            if name is None:
                unresolved(row, "neither cadence_id nor cadence_name is given")
                continue
            cadence_id, why = cadences.resolve(name)
            if cadence_id is None:
                unresolved(row, why or "unknown cadence")
                continue
        user_id = row["user_id"]
        if user_id is None and _clean(row["user_email"]):
            matches = users.get(email_key(row["user_email"]), [])
            if len(matches) != 1:
                what = "ambiguous: several users have" if matches else "no user has"
                unresolved(row, f"{what} the email {email_key(row['user_email'])}")
                continue
            user_id = matches[0]
        body = {"person_id": person_id, "cadence_id": int(cadence_id)}
        if user_id is not None:
            body["user_id"] = int(user_id)
        key = f"{person_id}:{int(cadence_id)}"
        if key in wanted and wanted[key][0] != body:
            unresolved(row, f"conflicts with another row for the same person and cadence ({wanted[key][0]})")
            continue
        wanted[key] = (body, row)

    done = ledger_done(ledger) | {
        f"{p}:{c}"
        for p, c in existing_pairs(wh, [b["person_id"] for b, _ in wanted.values() if isinstance(b["person_id"], int)])
    }
    answers = ledger.last_answers(ASSET)
    for key, (body, _) in sorted(wanted.items()):
        if key in done:
            result.unchanged += 1
            continue
        before = answers.get(key)
        if refused(before) and before.request == body:
            result.still_rejected += 1
            continue
        result.send.append(Entry(run_id, ASSET, key, "enroll", "pending", "POST", "cadence_memberships", body))
    return result


def ledger_done(ledger: Ledger) -> set[str]:
    return {e.row_key for e in ledger.select(f"asset = '{ASSET}' AND status = 'ok'")}


def interpret(entry: Entry, error: ApiError) -> tuple[str, str] | None:
    """SalesLoft's "already on this cadence" means the row is true: ok, not rejected."""
    if error.status == 422 and ALREADY_ON in error.detail:
        return "ok", "the person was already on the cadence"
    return None


def reconcile(client: SalesloftClient, ledger: Ledger, heartbeat: Callable[[], None]) -> list[Entry]:
    """Settles pending/sent rows of earlier runs: is the person on the cadence?"""
    open_entries = ledger.open_entries(ASSET)
    for entry in open_entries:
        body = entry.request or {}
        found = memberships(client, int(body["person_id"]), int(body["cadence_id"]))
        if found:
            entry.answer("ok", resource_id=str(found[0]["id"]), note="reconciled: the person is on the cadence")
        else:
            entry.answer("skipped", note="reconciled: not on the cadence, never applied; planned again")
        ledger.write([entry])
        heartbeat()
    return open_entries
