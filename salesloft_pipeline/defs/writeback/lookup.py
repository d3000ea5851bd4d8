"""Finding SalesLoft records for writeback rows: staging first, then the API.

People by email: staging's, then the people this pipeline created that staging
does not show yet (from the ledger), then SalesLoft's for the emails left.

API filters are checked again on our side: SalesLoft ignores filter names it
does not know and would then answer with unrelated records, which must never
be taken for a match.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.salesloft.errors import ApiError
from salesloft_pipeline.warehouse import Warehouse
from salesloft_pipeline.warehouse.tables import utc
from salesloft_pipeline.warehouse.writeback import Entry, Ledger, chunks

EMAILS_PER_REQUEST = 50  # keeps the query string short
PER_PAGE = 100
PEOPLE_ASSET = "writeback/people"
REFERENCES = {"owner_id": "owner", "account_id": "account", "person_stage_id": "person_stage"}


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
        self.source = source  # staging, ledger or api


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


def _latest_creates(ledger: Ledger, keys: list[str]) -> dict[str, Entry]:
    """The latest `ok` create of each of `keys` (row keys of writeback/people) that has the person's id."""
    latest: dict[str, Entry] = {}
    p = ledger.p
    for batch in chunks(keys, 500):
        for entry in ledger.select(
            f"asset = {p} AND action = 'create' AND status = 'ok' AND row_key IN ({', '.join([p] * len(batch))})"
            " ORDER BY coalesce(answered_at, created_at), created_at",
            [PEOPLE_ASSET, *batch],
        ):
            latest[entry.row_key] = entry
    return {key: entry for key, entry in latest.items() if entry.resource_id}


def query_in(wh: Warehouse, sql: str, values: Sequence[Any], params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of `sql` (ending in `IN (`) for `values`, sent 500 a query to keep statements small."""
    rows: list[tuple[Any, ...]] = []
    for batch in chunks(values, 500):
        rows.extend(wh.query(f"{sql}{', '.join([wh.PARAM] * len(batch))})", [*params, *batch]))
    return rows


def _ids_in(wh: Warehouse, sql: str, ids: list[str], params: Sequence[Any] = ()) -> set[str]:
    """Of `ids`, those `sql` (ending in `IN (`) finds."""
    return {str(i) for (i,) in query_in(wh, sql, ids, params)}


def people_we_created(wh: Warehouse, ledger: Ledger, keys: Iterable[str]) -> dict[str, list[Person]]:
    """People this pipeline created (the latest `ok` create of each key), as it sent them, by key.

    Trusted only until something could have shown the person and did not, so
    the email is then asked of SalesLoft instead (never taken as gone, which
    could create a duplicate): staging has the id (its version wins, whatever
    email it has now); `raw._tombstones` has it (deleted in SalesLoft); or an
    extraction of people that began after the create was answered has loaded
    the day of the person's version or a later one, and the person is still
    not in staging (deleted, or changed since)."""
    creates = _latest_creates(ledger, sorted(set(keys)))
    if not creates:
        return {}
    ids = sorted({e.resource_id for e in creates.values()})
    text = wh.TYPES["text"]
    shown: set[str] = set()
    if staging_has(wh, "people"):
        shown |= _ids_in(wh, f"SELECT CAST(id AS {text}) FROM staging.people WHERE CAST(id AS {text}) IN (", ids)
    raw = wh.tables("raw")
    if "_tombstones" in raw:
        sql = f"SELECT id FROM raw._tombstones WHERE stream = {wh.PARAM} AND id IN ("
        shown |= _ids_in(wh, sql, ids, ["people"])
    loads = wh.loaded_partitions("people") if "_loads" in raw else {}
    found: dict[str, list[Person]] = {}
    for key, entry in creates.items():
        answered = entry.answered_at or entry.created_at
        day = (entry.resource_updated_at or answered).date()
        if entry.resource_id in shown or any(d >= day and at > answered for d, (_, at) in loads.items()):
            continue
        record: dict[str, Any] = {"id": int(entry.resource_id), "updated_at": entry.resource_updated_at}
        for name, value in (entry.request or {}).items():
            if name in REFERENCES:  # SalesLoft's records name references as objects
                record[REFERENCES[name]] = {"id": value}
            elif name != "upsert_key":  # a bulk job's record has it
                record[name] = value
        record.setdefault("email_address", key)
        found[key] = [Person(record, "ledger")]
    return found


def find_people(
    client: SalesloftClient, wh: Warehouse, keys: Iterable[str], ledger: Ledger | None = None
) -> dict[str, list[Person]]:
    """People by email key: staging's; for keys staging does not know, those this pipeline
    created (with `ledger`), then SalesLoft's."""
    keys = set(keys)
    found = people_in_staging(wh, keys)
    if ledger is not None:
        found.update(people_we_created(wh, ledger, keys - set(found)))
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
