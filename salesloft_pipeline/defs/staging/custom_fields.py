"""Custom fields as real columns of staging.people, staging.accounts and staging.opportunities.

SalesLoft sends a team's own fields as one JSON object per record,
`custom_fields`, keyed by the field's name. Staging gives each field its own
column, so an analyst writes `WHERE industry_segment = 'Enterprise'`; raw
tables keep the JSON as it came.

The columns come from two sources. The `custom_fields` stream describes the
team's fields (id, name, `field_type` person / company / opportunity,
`value_type` text / date): each gets a column named from its newest name,
filled from every name it has had (a renamed field keeps its column's data).
Keys that records carry without such a description (a field made after the
last refresh of `custom_fields`, or deleted since) get a text column too, so
no value is lost.

Names are sanitized (lower case, runs of anything but a-z and 0-9 become `_`,
a leading digit gets `cf_`, at most 55 characters); a name taken by a built-in
column gets `_custom` appended, and a name that two fields sanitize to is
numbered (`_2`, `_3`) in the order of the fields' ids, then of the keys.

A date field is a DATE column while every value it has held is an ISO date
(`2025-03-31`); once one is not, the column is text, every value as sent:
a value of the wrong type is kept, never dropped.

What the records carry is observed as staging builds them and kept in
`staging._custom_field_keys` (key, whether it ever held a non-date value),
so a merge looks only at the records it merges; a full rebuild observes the
whole raw table again. A key NULL row marks that the whole table was observed.
The columns are part of the staging SQL, and so of its fingerprint: a new or
renamed field changes it and the next build rebuilds the table, no migration.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from salesloft_pipeline.warehouse import PostgresWarehouse, Warehouse

# The staging tables with custom fields, and the `field_type` their fields have.
FIELD_TYPES = {"people": "person", "accounts": "company", "opportunities": "opportunity"}

KEYS_TABLE = "staging._custom_field_keys"
NAMES_TABLE = "staging._custom_field_names"
MAX_NAME = 55  # Postgres identifiers stop at 63 bytes; room for a suffix
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class CustomColumn:
    column: str  # the staging column
    keys: tuple[str, ...]  # the record keys it is read from, newest name first
    type: Literal["text", "date"]


def sanitize(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    column = re.sub(r"[^a-z0-9]+", "_", ascii_name).strip("_") or "field"
    if column[0].isdigit():
        column = "cf_" + column
    return column[:MAX_NAME].rstrip("_")


def create_tables(wh: Warehouse, conn: Any) -> None:
    text = wh.TYPES["text"]
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (stream {text} NOT NULL, key {text},"
        f" not_date {wh.TYPES['boolean']} NOT NULL)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {NAMES_TABLE} (field_type {text} NOT NULL, field_id {text} NOT NULL,"
        f" name {text} NOT NULL, seen {wh.TYPES['bigint']} NOT NULL)"
    )


def observe(wh: Warehouse, conn: Any, stream: str, everything: bool) -> None:
    """Records the custom field keys of raw.<stream>: of every row if `everything` (or if the
    whole table was never observed), else of the ids queued as changed."""
    create_tables(wh, conn)
    p = wh.PARAM
    stored = conn.execute(f"SELECT key, not_date FROM {KEYS_TABLE} WHERE stream = {p}", [stream]).fetchall()
    everything = everything or (None, False) not in stored
    keys = {} if everything else {k: bool(n) for k, n in stored if k is not None}
    scope = "" if everything else (
        f"WHERE CAST(id AS {wh.TYPES['text']}) IN (SELECT id FROM raw._changes WHERE stream = '{stream}')"
    )
    for key, value in conn.execute(_observation_sql(wh, stream, scope)).fetchall():
        keys[key] = keys.get(key, False) or not _is_date(value)
    conn.execute(f"DELETE FROM {KEYS_TABLE} WHERE stream = {p}", [stream])
    rows = [(stream, None, False), *((stream, k, n) for k, n in sorted(keys.items()))]
    wh._insert_rows(conn, KEYS_TABLE, ["stream", "key", "not_date"], rows)


def _observation_sql(wh: Warehouse, stream: str, scope: str) -> str:
    """Distinct (key, value) of the records' custom fields, the value reduced to a date-like
    string, 'null' or 'text', so the answer stays small (keys x distinct dates)."""
    records = f"(SELECT record FROM raw.{stream} {scope}) AS r"
    if isinstance(wh, PostgresWarehouse):
        fields = "CASE WHEN jsonb_typeof(r.record -> 'custom_fields') = 'object' THEN r.record -> 'custom_fields' END"
        pairs = f"SELECT e.key, e.value FROM {records}, jsonb_each_text({fields}) AS e"
        matches = f"value ~ '{ISO_DATE}'"
    else:
        fields = "CASE WHEN json_type(r.record -> 'custom_fields') = 'OBJECT' THEN r.record -> 'custom_fields' END"
        pairs = f"SELECT e.key, e.value ->> '$' AS value FROM {records}, json_each({fields}) AS e"
        matches = f"regexp_matches(value, '{ISO_DATE}')"
    return (
        f"SELECT DISTINCT key, CASE WHEN value IS NULL THEN 'null' WHEN {matches} THEN value ELSE 'text' END"
        f" FROM ({pairs}) AS pairs"
    )


def _is_date(value: str) -> bool:
    if value == "null":
        return True
    try:
        date.fromisoformat(value)  # the SQL let through only values shaped like 2025-03-31
    except ValueError:
        return False
    return True


def columns(wh: Warehouse, conn: Any, stream: str, builtin: set[str]) -> list[CustomColumn]:
    """The custom field columns of staging.<stream> (built-in column names are not taken)."""
    observed = {
        k: bool(n)
        for k, n in conn.execute(f"SELECT key, not_date FROM {KEYS_TABLE} WHERE stream = {wh.PARAM}", [stream]).fetchall()
        if k is not None
    }
    fields: list[tuple[tuple[str, ...], str]] = []  # (keys newest first, declared value type)
    described: set[str] = set()
    for names, value_type in _described_fields(wh, conn, FIELD_TYPES[stream]):
        fields.append((names, value_type))
        described.update(names)
    fields += [((key,), "text") for key in sorted(observed) if key not in described]

    taken, result = set(builtin), []
    for names, value_type in fields:
        column = sanitize(names[0])
        if column in builtin:
            column = f"{column}_custom"
        base, n = column, 1
        while column in taken:
            n += 1
            column = f"{base}_{n}"
        taken.add(column)
        is_date = value_type == "date" and not any(observed.get(k, False) for k in names)
        result.append(CustomColumn(column, names, "date" if is_date else "text"))
    return result


def _described_fields(wh: Warehouse, conn: Any, field_type: str) -> list[tuple[tuple[str, ...], str]]:
    """The fields the custom_fields stream describes for `field_type`, by id: (every name it
    has had, newest first; its value type). A full refresh replaces a field's old version,
    so the names each id has had are kept in staging._custom_field_names."""
    p = wh.PARAM
    if not conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = 'custom_fields'"
    ).fetchall():
        return []
    rows = conn.execute(
        "SELECT DISTINCT ON (id) id, record ->> 'name', record ->> 'value_type' FROM raw.custom_fields"
        f" WHERE record ->> 'field_type' = {p} AND record ->> 'name' IS NOT NULL"
        " ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC",
        [field_type],
    ).fetchall()
    rows = [(str(field_id), name, value_type) for field_id, name, value_type in rows]  # in the order of the ids
    known = set(conn.execute(f"SELECT field_id, name FROM {NAMES_TABLE} WHERE field_type = {p}", [field_type]).fetchall())
    new = [(field_type, field_id, name) for field_id, name, _ in rows if (field_id, name) not in known]
    wh._insert_rows(conn, NAMES_TABLE, ["field_type", "field_id", "name", "seen"], [(*n, i + len(known)) for i, n in enumerate(new)])
    # ... with the order they were first seen in, so older names come after newer ones.
    names: dict[str, list[str]] = {}
    for field_id, name in conn.execute(
        f"SELECT field_id, name FROM {NAMES_TABLE} WHERE field_type = {p} ORDER BY seen DESC", [field_type]
    ).fetchall():
        names.setdefault(field_id, []).append(name)
    return [
        ((name, *(n for n in names[field_id] if n != name)), value_type or "text")
        for field_id, name, value_type in rows
    ]


def select_sql(wh: Warehouse, custom: list[CustomColumn]) -> str:
    """The columns' expressions, to add to the staging SELECT (each line starts with a comma)."""
    lines = []
    for c in custom:
        values = [_value_sql(wh, key) for key in c.keys]
        value = values[0] if len(values) == 1 else f"COALESCE({', '.join(values)})"
        kind = "DATE" if c.type == "date" else wh.TYPES["text"]
        lines.append(f",\nCAST({value} AS {kind}) AS {c.column}")
    return "".join(lines)


def _value_sql(wh: Warehouse, key: str) -> str:
    if isinstance(wh, PostgresWarehouse):
        return f"latest.record -> 'custom_fields' ->> {_literal(key)}"
    # DuckDB reads a plain string as a JSON path ($, dots, brackets): a JSON pointer is literal.
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    return f"latest.record -> 'custom_fields' ->> {_literal(pointer)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
