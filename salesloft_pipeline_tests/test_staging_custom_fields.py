"""Custom fields as staging columns: a new field, a renamed one, a key that collides with a
built-in column, a value of the wrong type; merges equal a full rebuild.

On a real DuckDB file and the real Postgres (salesloft_pipeline_tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.defs.staging.custom_fields import sanitize
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

PEOPLE, ACCOUNTS, FIELDS = BY_NAME["people"], BY_NAME["accounts"], BY_NAME["custom_fields"]
DAY = date(2025, 3, 3)


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        warehouse = open_warehouse(str(tmp_path / "warehouse.duckdb"))
        warehouse.setup([raw_table(PEOPLE), raw_table(ACCOUNTS), raw_table(FIELDS)])
        yield warehouse
    else:
        with fresh_database("slp_custom") as url:
            warehouse = open_warehouse(url)
            warehouse.setup([raw_table(PEOPLE), raw_table(ACCOUNTS), raw_table(FIELDS)])
            yield warehouse


def person(pid: int, updated: str, custom: Any) -> dict[str, Any]:
    return {
        "id": pid, "created_at": "2025-03-01T10:00:00.000000-05:00", "updated_at": updated,
        "first_name": f"P{pid}", "custom_fields": custom,
    }


def field(fid: int, name: str, value_type: str = "text", field_type: str = "person", updated: str = "2025-03-01") -> dict:
    return {
        "id": fid, "name": name, "field_type": field_type, "value_type": value_type,
        "created_at": "2025-01-01T00:00:00.000000Z", "updated_at": f"{updated}T00:00:00.000000Z",
    }


def describe(wh: Warehouse, *fields: dict) -> None:
    wh.replace_snapshot(raw_table(FIELDS), list(fields))


def load(wh: Warehouse, *people: dict) -> None:
    wh.replace_partition(raw_table(PEOPLE), DAY, list(people))


def columns(wh: Warehouse, table: str = "people") -> dict[str, str]:
    p = wh.PARAM
    rows = wh.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = 'staging' AND table_name = {p} ORDER BY ordinal_position",
        [table],
    )
    return {name: kind.lower() for name, kind in rows}


def values(wh: Warehouse, *names: str, table: str = "people") -> dict[int, tuple]:
    return {row[0]: tuple(row[1:]) for row in wh.query(f"SELECT id, {', '.join(names)} FROM staging.{table}")}


def rebuilt_equals_merged(wh: Warehouse) -> bool:
    merged = sorted(map(repr, wh.query("SELECT * FROM staging.people")))
    build_staging(wh, PEOPLE, force=True)
    return merged == sorted(map(repr, wh.query("SELECT * FROM staging.people")))


def test_each_described_field_is_a_column_an_analyst_can_filter_on(wh: Warehouse) -> None:
    describe(wh, field(1, "Industry Segment"), field(2, "Renewal Date", "date"), field(3, "Segment", field_type="company"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Industry Segment": "Enterprise", "Renewal Date": "2025-09-30"}),
         person(11, "2025-03-03T09:00:00.000000Z", {"Industry Segment": "SMB"}),
         person(12, "2025-03-03T09:00:00.000000Z", {}))
    assert build_staging(wh, PEOPLE).mode == "full"
    cols = columns(wh)
    assert cols["industry_segment"] in ("varchar", "text", "character varying")
    assert cols["renewal_date"] == "date"
    assert "segment" not in cols  # a company field: staging.accounts has it, not people
    assert wh.query("SELECT id FROM staging.people WHERE industry_segment = 'Enterprise'") == [(10,)]
    assert values(wh, "renewal_date") == {10: (date(2025, 9, 30),), 11: (None,), 12: (None,)}
    # The raw JSON stays in raw.
    [(raw,)] = wh.query("SELECT count(*) FROM raw.people WHERE record IS NOT NULL")
    assert raw == 3


def test_a_new_field_mid_history_adds_a_column_on_the_next_build(wh: Warehouse) -> None:
    describe(wh, field(1, "Persona"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Persona": "Champion"}))
    build_staging(wh, PEOPLE)
    assert "lead_source" not in columns(wh)
    # A field the team made after the last refresh of custom_fields: the records carry it first.
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Persona": "Champion"}),
         person(11, "2025-03-03T10:00:00.000000Z", {"Persona": "User", "Lead Source": "Webinar"}))
    assert build_staging(wh, PEOPLE).mode == "full"  # no migration: the model changed
    assert values(wh, "persona", "lead_source") == {10: ("Champion", None), 11: ("User", "Webinar")}
    # Then custom_fields describes it as a date: still the same column, now a date.
    describe(wh, field(1, "Persona"), field(2, "Lead Source", "text"), field(4, "Signed On", "date"))
    build_staging(wh, PEOPLE)
    assert columns(wh)["signed_on"] == "date"
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Persona": "Champion"}),
         person(11, "2025-03-03T10:00:00.000000Z", {"Persona": "User", "Lead Source": "Webinar"}),
         person(12, "2025-03-03T11:00:00.000000Z", {"Signed On": "2025-02-28"}))
    assert build_staging(wh, PEOPLE).mode == "merged"  # known keys: the table stays, one id merged
    assert values(wh, "signed_on")[12] == (date(2025, 2, 28),)
    assert rebuilt_equals_merged(wh)


def test_a_renamed_field_keeps_its_column_filled_from_both_names(wh: Warehouse) -> None:
    describe(wh, field(1, "Tier"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Tier": "Gold"}),
         person(11, "2025-03-03T09:00:00.000000Z", {"Tier": "Silver"}))
    build_staging(wh, PEOPLE)
    # Renamed in SalesLoft: the field's id stays; records updated since carry the new name.
    describe(wh, field(1, "Customer Tier", updated="2025-03-04"))
    wh.upsert_records(raw_table(PEOPLE), [person(11, "2025-03-04T09:00:00.000000Z", {"Customer Tier": "Gold"})])
    assert build_staging(wh, PEOPLE).mode == "full"
    cols = columns(wh)
    assert "customer_tier" in cols and "tier" not in cols
    assert values(wh, "customer_tier") == {10: ("Gold",), 11: ("Gold",)}
    assert rebuilt_equals_merged(wh)


def test_a_key_that_collides_with_a_built_in_column_or_another_field_gets_a_suffix(wh: Warehouse) -> None:
    describe(wh, field(1, "Updated At"), field(2, "lead-source"), field(3, "Lead Source"), field(5, "2024 Goal"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z",
                    {"Updated At": "yesterday", "lead-source": "a", "Lead Source": "b", "2024 Goal": "100",
                     "$.weird/key~'x": "kept"}))
    build_staging(wh, PEOPLE)
    cols = columns(wh)
    assert {"updated_at_custom", "lead_source", "lead_source_2", "cf_2024_goal", "weird_key_x"} <= set(cols)
    assert "timestamp" in cols["updated_at"]  # the built-in column is untouched
    assert values(wh, "updated_at_custom", "lead_source", "lead_source_2", "cf_2024_goal", "weird_key_x") == {
        10: ("yesterday", "a", "b", "100", "kept")
    }


def test_a_value_of_the_wrong_type_is_kept_as_text_never_dropped(wh: Warehouse) -> None:
    describe(wh, field(2, "Renewal Date", "date"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", {"Renewal Date": "2025-09-30"}),
         person(11, "2025-03-03T09:00:00.000000Z", {"Renewal Date": None}))
    build_staging(wh, PEOPLE)
    assert columns(wh)["renewal_date"] == "date"
    # A value that is no date (and one that looks like one but is not): the column becomes text.
    wh.upsert_records(raw_table(PEOPLE), [person(12, "2025-03-03T10:00:00.000000Z", {"Renewal Date": "next spring"}),
                                          person(13, "2025-03-03T10:00:00.000000Z", {"Renewal Date": "2025-02-30"}),
                                          person(14, "2025-03-03T10:00:00.000000Z", {"Renewal Date": 7})])
    assert build_staging(wh, PEOPLE).mode == "full"
    assert columns(wh)["renewal_date"] in ("varchar", "text", "character varying")
    assert values(wh, "renewal_date") == {
        10: ("2025-09-30",), 11: (None,), 12: ("next spring",), 13: ("2025-02-30",), 14: ("7",)
    }
    assert rebuilt_equals_merged(wh)


def test_records_without_an_object_of_custom_fields_build(wh: Warehouse) -> None:
    describe(wh, field(1, "Persona"))
    load(wh, person(10, "2025-03-03T09:00:00.000000Z", None), person(11, "2025-03-03T09:00:00.000000Z", []),
         person(12, "2025-03-03T09:00:00.000000Z", "oops"), person(13, "2025-03-03T09:00:00.000000Z", {"Persona": "x"}))
    build_staging(wh, PEOPLE)
    assert values(wh, "persona") == {10: (None,), 11: (None,), 12: (None,), 13: ("x",)}


def test_accounts_get_company_fields(wh: Warehouse) -> None:
    describe(wh, field(3, "Segment", field_type="company"), field(1, "Persona"))
    account = {"id": 7, "created_at": "2025-03-01T10:00:00Z", "updated_at": "2025-03-03T10:00:00Z",
               "name": "Acme", "custom_fields": {"Segment": "Enterprise"}}
    wh.replace_partition(raw_table(ACCOUNTS), DAY, [account])
    build_staging(wh, ACCOUNTS)
    assert values(wh, "segment", table="accounts") == {7: ("Enterprise",)}
    assert "persona" not in columns(wh, "accounts")


def test_sanitize() -> None:
    assert sanitize("Industry Segment") == "industry_segment"
    assert sanitize("  Größe / Size (€) ") == "groe_size"
    assert sanitize("2024 Goal") == "cf_2024_goal"
    assert sanitize("???") == "field"
    assert len(sanitize("x" * 200)) == 55
