"""Finding SalesLoft records for writeback rows: staging first, then the API.

API filters are checked again on our side: SalesLoft ignores filter names it
does not know and would then answer with unrelated records, which must never
be taken for a match.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.salesloft.errors import ApiError
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.tables import utc

EMAILS_PER_REQUEST = 50  # keeps the query string short
PER_PAGE = 100


def email_key(value: Any) -> str | None:
    """The case-insensitive key of an email address; None when blank."""
    if value is None:
        return None
    key = str(value).strip().lower()
    return key or None


def record_of(value: Any) -> dict[str, Any]:
    """A record column: text from DuckDB, decoded JSON from Postgres."""
    if isinstance(value, str):
        return json.loads(value)
    return dict(value or {})


def ref_id(record: Mapping[str, Any], name: str) -> Any:
    ref = record.get(name)
    return ref.get("id") if isinstance(ref, Mapping) else None


def staging_has(wh: Warehouse, table: str) -> bool:
    return table in wh.tables("staging")


class Person:
    """A person as SalesLoft has it: id, version time and record."""

    def __init__(self, record: Mapping[str, Any], source: str) -> None:
        self.id = int(record["id"])
        self.updated_at: datetime | None = utc(record.get("updated_at"))
        self.record = dict(record)
        self.source = source  # staging or api


def people_in_staging(wh: Warehouse, keys: Iterable[str]) -> dict[str, list[Person]]:
    """Staging's people whose email (any case) is one of `keys`, by key."""
    wanted = set(keys)
    found: dict[str, list[Person]] = defaultdict(list)
    if not wanted or not staging_has(wh, "people"):
        return found
    # The email list is joined in SQL against the input rather than sent as parameters.
    rows = wh.query(
        "SELECT record FROM staging.people WHERE lower(trim(record ->> 'email_address')) IN ("
        " SELECT lower(trim(email_address)) FROM writeback.people"
        " UNION SELECT lower(trim(person_email)) FROM writeback.cadence_enrollments)"
    )
    for (raw,) in rows:
        record = record_of(raw)
        key = email_key(record.get("email_address"))
        if key in wanted:
            found[key].append(Person(record, "staging"))
    return found


def people_from_api(client: SalesloftClient, keys: Iterable[str]) -> dict[str, list[Person]]:
    """SalesLoft's people whose email (any case) is one of `keys`, by key, asked in batches."""
    wanted = sorted(set(keys))
    found: dict[str, list[Person]] = defaultdict(list)
    for start in range(0, len(wanted), EMAILS_PER_REQUEST):
        batch = wanted[start : start + EMAILS_PER_REQUEST]
        params = [("email_addresses[]", e) for e in batch] + [("per_page", PER_PAGE), ("page", 1)]
        for record in client.get("people", params).body.get("data") or []:
            key = email_key(record.get("email_address"))
            if key in batch:
                found[key].append(Person(record, "api"))
    return found


def find_people(client: SalesloftClient, wh: Warehouse, keys: Iterable[str]) -> dict[str, list[Person]]:
    """People by email key: staging's, and SalesLoft's for keys staging does not know."""
    keys = set(keys)
    found = people_in_staging(wh, keys)
    missing = keys - set(found)
    if missing:
        found.update(people_from_api(client, missing))
    return found


def person_by_id(client: SalesloftClient, person_id: int) -> dict[str, Any] | None:
    try:
        return client.get(f"people/{person_id}").body.get("data")
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def memberships(client: SalesloftClient, person_id: int, cadence_id: int) -> list[dict[str, Any]]:
    """SalesLoft's memberships of one person in one cadence (none or one)."""
    params = [("person_id", person_id), ("cadence_id", cadence_id), ("per_page", PER_PAGE), ("page", 1)]
    return [
        m
        for m in client.get("cadence_memberships", params).body.get("data") or []
        if str(ref_id(m, "person")) == str(person_id) and str(ref_id(m, "cadence")) == str(cadence_id)
    ]


def cadences_named(client: SalesloftClient, name: str) -> list[dict[str, Any]]:
    params = [("name[]", name), ("per_page", PER_PAGE), ("page", 1)]
    return [c for c in client.get("cadences", params).body.get("data") or [] if c.get("name") == name]
