"""Write-back assets against the simulator over loopback, on a real DuckDB file and the real Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.extract.tables import raw_table
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.defs.writeback.assets import WRITEBACK_ASSETS, writeback_people
from salesloft_pipeline.salesloft import BY_NAME, SalesloftClient
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline.warehouse.writeback import Ledger
from salesloft_pipeline.webhooks import SQLiteEventStore
from salesloft_pipeline.webhooks.subscriptions import subscribe
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_webhooks_apply import SECRET, Endpoint, run_sensor, wait_for_deliveries

STAGED = ["people", "cadences", "cadence_memberships", "users"]
PEOPLE_OP, ENROLL_OP = "writeback__people", "writeback__cadence_enrollments"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    anchor = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = SimulatorConfig(
        seed=31, people=60, days=3, anchor=anchor, budget=0, webhook_retry_seconds=0.2, webhook_duplicate_rate=0
    )
    with Simulator(config).serve() as simulator:
        yield simulator


# -- helpers -------------------------------------------------------------------------
def sl(sim: Simulator) -> SalesloftResource:
    return SalesloftResource(api_key=sim.api_key, base_url=sim.base_url)


def load_staging(sim: Simulator, url: str, streams: list[str] = STAGED, today_only: bool = False) -> None:
    """Extraction then staging, as the schedule would run them."""
    first = datetime.now(timezone.utc).date() if today_only else (sim.config.anchor - timedelta(days=3)).date()
    last = datetime.now(timezone.utc).date()
    keys = {raw_asset_key(BY_NAME[s]) for s in streams}
    result = dg.materialize(
        [a for a in EXTRACT_ASSETS if a.key in keys and BY_NAME[a.key.path[-1]].incremental],
        resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)},
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )
    assert result.success
    full = [a for a in EXTRACT_ASSETS if a.key in keys and not BY_NAME[a.key.path[-1]].incremental]
    staging = [a for a in STAGING_ASSETS if a.key.path[-1] in streams]
    result = dg.materialize(full + staging, resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)})
    assert result.success


def writeback(
    sim: Simulator,
    url: str,
    people: dict[str, Any] | None = None,
    enrollments: dict[str, Any] | None = None,
    assets: list[dg.AssetsDefinition] = WRITEBACK_ASSETS,
) -> dg.ExecuteInProcessResult:
    ops = {PEOPLE_OP: {"config": people or {}}, ENROLL_OP: {"config": enrollments or {}}}
    names = {a.op.name for a in assets}
    return dg.materialize(
        assets,
        resources={"salesloft": sl(sim), "warehouse": WarehouseResource(url=url)},
        run_config={"ops": {k: v for k, v in ops.items() if k in names}},
    )


def fill(url: str, people: list[dict[str, Any]], enrollments: list[dict[str, Any]] = ()) -> None:
    """Replaces writeback.* with these rows, through plain SQL as a user's model would."""
    wh = open_warehouse(url)
    Ledger(wh).setup()
    p = wh.PARAM
    with wh.connection() as conn:
        for table, rows in (("people", people), ("cadence_enrollments", enrollments)):
            conn.execute(f"DELETE FROM writeback.{table}")
            for row in rows:
                conn.execute(
                    f"INSERT INTO writeback.{table} ({', '.join(row)}) VALUES ({', '.join([p] * len(row))})",
                    list(row.values()),
                )


def truth(sim: Simulator, stream: str) -> dict[Any, dict[str, Any]]:
    answer = httpx.get(f"{sim.url}/__sim/truth/{stream}", params={"full": "true"}, timeout=60).json()
    return {r["id"]: r for r in answer["records"]}


def by_email(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in truth(sim, "people").values():
        found.setdefault((record.get("email_address") or "").lower(), []).append(record)
    return found


def pairs(sim: Simulator) -> dict[tuple[int, int], list[dict[str, Any]]]:
    found: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for m in truth(sim, "cadence_memberships").values():
        found.setdefault((m["person"]["id"], m["cadence"]["id"]), []).append(m)
    return found


def stats(sim: Simulator) -> dict[str, Any]:
    return httpx.get(f"{sim.url}/__sim/stats", timeout=30).json()


def reset_stats(sim: Simulator) -> None:
    httpx.post(f"{sim.url}/__sim/stats/reset", timeout=30).raise_for_status()


def writes_sent(sim: Simulator) -> dict[str, int]:
    return {k: v for k, v in stats(sim)["writes_by_endpoint"].items() if v}


def ledger_rows(url: str, run_id: str | None = None) -> list[dict[str, Any]]:
    ledger = Ledger(open_warehouse(url))
    entries = ledger.select("run_id = " + ledger.p if run_id else "1 = 1", [run_id] if run_id else [])
    return [e.__dict__ for e in entries]


def run_ids(result: dg.ExecuteInProcessResult) -> str:
    return result.dagster_run.run_id


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scenario(sim: Simulator) -> dict[str, Any]:
    """Two new people, two existing ones (one changed, one already right), two enrollments."""
    people = truth(sim, "people")
    users = list(truth(sim, "users").values())
    cadences = sorted(truth(sim, "cadences").values(), key=lambda c: c["id"])
    on = pairs(sim)
    existing = [p for p in sorted(people.values(), key=lambda p: p["id"]) if p.get("email_address")]
    e1, e2 = existing[3], existing[4]
    c_named = cadences[0]
    c_by_id = next(c for c in cadences if (e2["id"], c["id"]) not in on)
    tag = unique("wb")
    n1, n2 = f"{tag}-one@example.com", f"{tag}-two@example.com"
    return {
        "n1": n1,
        "n2": n2,
        "e1": e1,
        "e2": e2,
        "user": users[0],
        "c_named": c_named,
        "c_by_id": c_by_id,
        "people": [
            {
                "email_address": n1.upper(),
                "first_name": "Nadia",
                "last_name": "Writeback",
                "title": "VP Sales",
                "tags": '["writeback", "crm"]',
                "custom_fields": '{"Lead Source": "CRM"}',
                "owner_id": users[0]["id"],
            },
            {"email_address": n2, "city": "Lyon"},
            {"email_address": e1["email_address"].upper(), "title": f"Chief {tag}"},
            {"email_address": e2["email_address"], "title": e2.get("title"), "first_name": e2.get("first_name")},
        ],
        "enrollments": [
            {"person_email": n1.title(), "cadence_name": c_named["name"], "user_email": users[0]["email"]},
            {"person_id": e2["id"], "cadence_id": c_by_id["id"]},
        ],
    }


def assert_applied(sim: Simulator, s: dict[str, Any]) -> tuple[int, int]:
    found = by_email(sim)
    [one], [two] = found[s["n1"]], found[s["n2"]]
    assert (one["first_name"], one["title"], one["owner"]["id"]) == ("Nadia", "VP Sales", s["user"]["id"])
    assert sorted(one["tags"]) == ["crm", "writeback"] and one["custom_fields"]["Lead Source"] == "CRM"
    assert two["city"] == "Lyon"
    assert truth(sim, "people")[s["e1"]["id"]]["title"].startswith("Chief wb-")
    on = pairs(sim)
    [m1] = on[(one["id"], s["c_named"]["id"])]
    [m2] = on[(s["e2"]["id"], s["c_by_id"]["id"])]
    assert m1["user"]["id"] == s["user"]["id"] and m1["currently_on_cadence"] and m2["currently_on_cadence"]
    return one["id"], two["id"]


def assert_nothing_sent(sim: Simulator, url: str, result: dg.ExecuteInProcessResult) -> None:
    """After reset_stats: the rerun made no request at all (no lookup either) and wrote no ledger row."""
    assert result.success
    assert writes_sent(sim) == {}, "a rerun sent writes"
    assert stats(sim)["requests"] == 0, "a rerun asked SalesLoft"
    assert ledger_rows(url, run_ids(result)) == []


def round_trip(sim: Simulator, url: str, webhooks: Path | None = None) -> None:
    load_staging(sim, url)
    s = scenario(sim)
    fill(url, s["people"], s["enrollments"])
    if webhooks is not None:
        store = SQLiteEventStore(webhooks)
        endpoint = Endpoint(store)
        hook_url = endpoint.__enter__()
        with SalesloftClient(sim.api_key, sim.base_url) as client:
            subscribe(client, hook_url, SECRET)

    first = writeback(sim, url)
    assert first.success
    one_id, two_id = assert_applied(sim, s)
    rows = ledger_rows(url, run_ids(first))
    summary = sorted((r["asset"], r["action"], r["status"]) for r in rows)
    assert summary == [
        ("writeback/cadence_enrollments", "enroll", "ok"),
        ("writeback/cadence_enrollments", "enroll", "ok"),
        ("writeback/people", "create", "ok"),
        ("writeback/people", "create", "ok"),
        ("writeback/people", "update", "ok"),
    ]
    created = {r["row_key"]: r for r in rows if r["action"] == "create"}
    assert created[s["n1"]]["resource_id"] == str(one_id) and created[s["n1"]]["http_status"] == 200
    update = next(r for r in rows if r["action"] == "update")
    assert update["request"] == {"title": truth(sim, "people")[s["e1"]["id"]]["title"]}  # only what changed
    assert metadata(first, writeback_people.key)["already_true"] == 1

    # Straight away, before SalesLoft's changes come back: nothing to send, nothing to look up (the
    # people just created, n1 of the enrollment too, are known from the ledger).
    reset_stats(sim)
    assert_nothing_sent(sim, url, writeback(sim, url))

    wh = open_warehouse(url)
    if webhooks is not None:  # the changes come back by webhook: person_created/updated, membership_created
        wait_for_deliveries(sim)
        instance = dg.DagsterInstance.ephemeral()
        _, runs = run_sensor(instance, None, Path(url), webhooks)
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        endpoint.__exit__(None, None, None)
        staged = {r[0] for r in wh.query("SELECT id FROM staging.people")}
        assert {one_id, two_id} <= staged
        memberships = set(wh.query("SELECT person_id, cadence_id FROM staging.cadence_memberships"))
        assert (one_id, s["c_named"]["id"]) in memberships
        reset_stats(sim)
        again = writeback(sim, url)
        assert_nothing_sent(sim, url, again)
        assert metadata(again, writeback_people.key)["api_requests"] == 0  # staging knew everyone

    # And by extraction of today's partition.
    load_staging(sim, url, ["people", "cadence_memberships"], today_only=True)
    [(title,)] = wh.query(f"SELECT record ->> 'title' FROM staging.people WHERE id = {one_id}")
    assert title == "VP Sales"
    memberships = set(wh.query("SELECT person_id, cadence_id FROM staging.cadence_memberships"))
    assert {(one_id, s["c_named"]["id"]), (s["e2"]["id"], s["c_by_id"]["id"])} <= memberships
    reset_stats(sim)
    assert_nothing_sent(sim, url, writeback(sim, url))


# -- tests -----------------------------------------------------------------------------
def test_round_trip_duckdb_with_webhooks_and_extraction(sim: Simulator, tmp_path: Path) -> None:
    round_trip(sim, str(tmp_path / "warehouse.duckdb"), webhooks=tmp_path / "events.sqlite")


def test_round_trip_postgres(sim: Simulator) -> None:
    with fresh_database("slp_writeback") as url:
        round_trip(sim, url)


def test_people_we_created_are_known_until_salesloft_says_otherwise(sim: Simulator, tmp_path: Path) -> None:
    """Our own creates resolve their emails until a tombstone or a later extraction says the person is gone."""
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url, ["people"])
    wh = open_warehouse(url)
    tag = unique("ours")
    a, b = f"{tag}-a@example.com", f"{tag}-b@example.com"
    fill(url, [{"email_address": a, "title": "A", "owner_id": None}, {"email_address": b.upper(), "city": "Nice"}])
    assert writeback(sim, url, assets=[writeback_people]).success
    [a_id], [b_id] = ([p["id"] for p in by_email(sim)[e]] for e in (a, b))

    reset_stats(sim)  # before any extraction or webhook: known from the ledger, no lookup
    assert_nothing_sent(sim, url, writeback(sim, url, assets=[writeback_people]))

    def rerun_creates_again(email: str, gone_id: int) -> None:
        reset_stats(sim)
        result = writeback(sim, url, assets=[writeback_people])
        assert result.success
        assert writes_sent(sim) == {"POST /v2/people": 1}, "the deleted person was taken as existing"
        assert stats(sim)["requests"] == 2  # one lookup of the email, one create
        [row] = ledger_rows(url, run_ids(result))
        [person] = by_email(sim)[email]
        assert (row["row_key"], row["action"], row["status"]) == (email, "create", "ok")
        assert row["resource_id"] == str(person["id"]) and person["id"] != gone_id

    # Deleted in SalesLoft; the person_deleted webhook's tombstone reaches staging (no extraction since).
    deleted = httpx.post(f"{sim.url}/__sim/delete", json={"stream": "people", "id": a_id}).json()["deleted"]
    wh.mark_deleted("people", [(a_id, deleted["updated_at"])])  # what the webhook apply job does
    build_staging(wh, BY_NAME["people"])
    rerun_creates_again(a, a_id)

    # Deleted in SalesLoft, no webhook: the next extraction of people does not bring it to staging.
    httpx.post(f"{sim.url}/__sim/delete", json={"stream": "people", "id": b_id}).raise_for_status()
    reset_stats(sim)
    assert_nothing_sent(sim, url, writeback(sim, url, assets=[writeback_people]))  # nothing can know yet
    load_staging(sim, url, ["people"], today_only=True)
    rerun_creates_again(b, b_id)

    reset_stats(sim)  # a's new person came by extraction, b's new one is in the ledger
    assert_nothing_sent(sim, url, writeback(sim, url, assets=[writeback_people]))


def test_rejected_rows_are_recorded_and_do_not_stop_the_others(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url, ["people", "cadences", "users"])
    tag = unique("rej")
    cadence = next(c for c in truth(sim, "cadences").values() if not c.get("archived_at"))
    # Someone never on that cadence, so the unknown user is the enrollment's only fault (the simulated
    # team's history depends on the hour the tests run in).
    on_cadence = {person for person, cadence_id in pairs(sim) if cadence_id == cadence["id"]}
    existing = next(p for p in truth(sim, "people").values() if p.get("email_address") and p["id"] not in on_cadence)
    good = [f"{tag}-{i}@example.com" for i in range(3)]
    fill(
        url,
        [
            {"email_address": good[0], "title": "fine"},
            {"email_address": f"{tag}-not-an-email", "title": "bad"},
            {"email_address": f"{tag}-owner@example.com", "owner_id": 987654321},
            {"email_address": good[1]},
            {"email_address": good[2], "tags": '"not a list"'},  # refused before sending: unresolved
        ],
        [
            {"person_email": good[0], "cadence_id": 987654321},  # unknown cadence: SalesLoft's 422
            {"person_email": good[1], "cadence_id": cadence["id"]},
            {"person_id": existing["id"], "cadence_id": cadence["id"], "user_id": 987654321},  # unknown user
        ],
    )
    reset_stats(sim)
    result = writeback(sim, url)
    assert result.success
    rows = {(r["asset"], r["row_key"]): r for r in ledger_rows(url, run_ids(result))}
    people = {k[1]: r for k, r in rows.items() if k[0] == "writeback/people"}
    assert {k: r["status"] for k, r in people.items()} == {
        good[0]: "ok",
        good[1]: "ok",
        f"{tag}-not-an-email": "rejected",
        f"{tag}-owner@example.com": "rejected",
        good[2]: "unresolved",
    }
    assert people[f"{tag}-not-an-email"]["http_status"] == 422
    assert "email_address" in people[f"{tag}-not-an-email"]["errors"]
    assert "owner_id" in str(people[f"{tag}-owner@example.com"]["errors"])
    assert "tags" in people[good[2]]["note"]
    found = by_email(sim)
    assert all(len(found[e]) == 1 for e in good[:2]) and f"{tag}-not-an-email" not in found

    enrolled = sorted((r["status"], r["http_status"]) for k, r in rows.items() if k[0].endswith("enrollments"))
    assert enrolled == [("ok", 200), ("rejected", 422), ("rejected", 422)]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "writeback_people_all_rows_resolved": False,
        "writeback_people_none_rejected": False,
        "writeback_enrollments_all_rows_resolved": True,
        "writeback_enrollments_none_rejected": False,
    }

    # The same rows again: what SalesLoft refused is not sent again until the row changes.
    reset_stats(sim)
    again = writeback(sim, url)
    assert writes_sent(sim) == {}
    statuses = {r["status"] for r in ledger_rows(url, run_ids(again))}
    assert statuses == {"unresolved"}
    assert metadata(again, writeback_people.key)["still_rejected_not_resent"] == 2


def test_unknown_and_ambiguous_references_are_reported_not_guessed(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url, ["people", "cadences", "users"])
    wh = open_warehouse(url)
    cadences = sorted(truth(sim, "cadences").values(), key=lambda c: c["id"])
    # A second cadence of the same name reaches staging (as a cadence_created webhook would bring it).
    twin = {**cadences[1], "id": 99_000_001}
    wh.upsert_records(raw_table(BY_NAME["cadences"]), [twin])
    build_staging(wh, BY_NAME["cadences"])
    person = next(p for p in truth(sim, "people").values() if p.get("email_address"))
    tag = unique("amb")
    fill(
        url,
        [
            {"email_address": f"{tag}@example.com", "title": "A"},
            {"email_address": f"{tag}@EXAMPLE.com", "title": "B"},  # same person, two different values
        ],
        [
            {"person_email": f"{tag}-nobody@example.com", "cadence_id": cadences[0]["id"]},
            {"person_email": person["email_address"], "cadence_name": cadences[1]["name"]},
            {"person_email": person["email_address"], "cadence_name": f"{tag} no such cadence"},
            {"person_email": person["email_address"], "cadence_id": cadences[0]["id"], "user_email": "x@nowhere"},
        ],
    )
    reset_stats(sim)
    result = writeback(sim, url)
    assert result.success
    assert writes_sent(sim) == {}
    notes = sorted(r["note"] for r in ledger_rows(url, run_ids(result)) if r["status"] == "unresolved")
    assert len(notes) == 5, notes
    assert any("different values" in n for n in notes)
    assert any(n.startswith("ambiguous: 2 cadences") and "99000001" in n for n in notes)
    assert any("no person in SalesLoft has the email" in n for n in notes)
    assert any("no cadence is named" in n for n in notes)
    assert any("no user has the email x@nowhere" in n for n in notes)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["writeback_enrollments_all_rows_resolved"] is False


def test_dry_run_records_what_would_be_sent_and_sends_nothing(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url)
    s = scenario(sim)
    fill(url, s["people"], s["enrollments"])
    before = truth(sim, "people")
    reset_stats(sim)
    dry = {"dry_run": True}
    result = writeback(sim, url, people=dry, enrollments=dry)
    assert result.success
    assert writes_sent(sim) == {}
    assert truth(sim, "people") == before
    rows = ledger_rows(url, run_ids(result))
    assert {r["status"] for r in rows} == {"dry_run"}
    assert sorted((r["action"], r["method"], r["path"]) for r in rows) == sorted(
        [
            ("create", "POST", "people"),
            ("create", "POST", "people"),
            ("update", "PUT", f"people/{s['e1']['id']}"),
            ("enroll", "POST", "cadence_memberships"),
            ("enroll", "POST", "cadence_memberships"),
        ]
    )
    # The enrollment of a person the people asset would create names that person.
    assert any(str(r["request"]["person_id"]).startswith(f"(person {s['n1']}") for r in rows if r["action"] == "enroll")
    assert metadata(result, writeback_people.key)["rows_dry_run"] == 3

    # A real run afterwards sends exactly that: the same requests, and nothing else.
    reset_stats(sim)
    real = writeback(sim, url)
    assert real.success
    one_id, _ = assert_applied(sim, s)
    placeholder = f"(person {s['n1']}, created by writeback/people)"

    def sent(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
        request = dict(row["request"])
        if request.get("person_id") == placeholder:  # the dry run's name for the person it would create
            request["person_id"] = one_id
        return row["asset"], row["action"], row["method"], row["path"], json.dumps(request, sort_keys=True)

    real_rows = ledger_rows(url, run_ids(real))
    assert {r["status"] for r in real_rows} == {"ok"}
    assert sorted(map(sent, real_rows)) == sorted(map(sent, rows))
    endpoints = {"POST": "POST /v2/people", "PUT": "PUT /v2/people/{id}"}
    dry_endpoints = [
        endpoints[r["method"]] if r["path"].startswith("people") else "POST /v2/cadence_memberships" for r in rows
    ]
    assert writes_sent(sim) == {e: dry_endpoints.count(e) for e in set(dry_endpoints)}


def test_bulk_upsert_above_the_threshold(sim: Simulator, tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    load_staging(sim, url, ["people"])
    tag = unique("bulk")
    existing = sorted((p for p in truth(sim, "people").values() if p.get("email_address")), key=lambda p: p["id"])[
        10:14
    ]
    rows = [{"email_address": f"{tag}-{i}@example.com", "title": f"Bulk {i}", "tags": '["bulk"]'} for i in range(8)]
    rows += [{"email_address": p["email_address"].upper(), "city": f"{tag} city"} for p in existing]
    rows.append({"email_address": f"{tag}-broken", "title": "refused"})
    fill(url, rows)
    reset_stats(sim)
    config = {"bulk_threshold": 5}
    result = writeback(sim, url, people=config, assets=[writeback_people])
    assert result.success
    sent = writes_sent(sim)
    assert sent.get("POST /v2/bulk_jobs") == 1 and sent.get("POST /v2/bulk_jobs/{id}/job_data") == 1
    assert "POST /v2/people" not in sent and "PUT /v2/people/{id}" not in sent
    ledger = {r["row_key"]: r for r in ledger_rows(url, run_ids(result))}
    assert len(ledger) == 13 and len({r["bulk_job_id"] for r in ledger.values()}) == 1
    assert ledger[f"{tag}-broken"]["status"] == "rejected" and ledger[f"{tag}-broken"]["errors"]
    assert {r["status"] for k, r in ledger.items() if k != f"{tag}-broken"} == {"ok"}
    found = by_email(sim)
    for i in range(8):
        [person] = found[f"{tag}-{i}@example.com"]
        assert person["title"] == f"Bulk {i}" and str(person["id"]) == ledger[f"{tag}-{i}@example.com"]["resource_id"]
    people = truth(sim, "people")
    assert all(people[p["id"]]["city"] == f"{tag} city" for p in existing)

    reset_stats(sim)
    again = writeback(sim, url, people=config, assets=[writeback_people])
    assert again.success and writes_sent(sim) == {}
    assert ledger_rows(url, run_ids(again)) == []


def test_one_writer_per_asset(tmp_path: Path) -> None:
    ledger = Ledger(open_warehouse(str(tmp_path / "warehouse.duckdb")))
    ledger.setup()
    from salesloft_pipeline.warehouse.writeback import LeaseHeld

    ledger.acquire("writeback/people", "run-a", lambda run: None)
    with pytest.raises(LeaseHeld, match="run-a"):
        ledger.acquire("writeback/people", "run-b", lambda run: None)  # unknown to Dagster, renewed just now
    with pytest.raises(LeaseHeld):
        ledger.acquire("writeback/people", "run-b", lambda run: True)
    ledger.acquire("writeback/cadence_enrollments", "run-b", lambda run: None)  # another asset: free
    ledger.acquire("writeback/people", "run-b", lambda run: False)  # run-a ended: free
    ledger.acquire("writeback/people", "run-c", lambda run: True, stale_after=timedelta(0))  # not renewed: free
    ledger.release("writeback/people", "run-c")
    ledger.acquire("writeback/people", "run-d", lambda run: True)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_example_models_fill_the_input_tables(engine: str, tmp_path: Path) -> None:
    from salesloft_pipeline.defs.staging.build import SQL_DIR

    def check(url: str) -> None:
        wh = open_warehouse(url)
        Ledger(wh).setup()
        json_type = wh.TYPES["json"]
        wh.execute_script(
            f"""
            CREATE SCHEMA IF NOT EXISTS crm;
            CREATE SCHEMA IF NOT EXISTS staging;
            CREATE TABLE crm.contacts (email TEXT, first_name TEXT, last_name TEXT, job_title TEXT, phone TEXT,
                city TEXT, region TEXT, country TEXT, crm_id TEXT, owner_email TEXT, company_domain TEXT,
                unsubscribed BOOLEAN, lifecycle_stage TEXT, created_at TIMESTAMPTZ);
            CREATE TABLE staging.users (id BIGINT, record {json_type});
            CREATE TABLE staging.accounts (id BIGINT, record {json_type});
            INSERT INTO staging.users VALUES (7, '{{"id": 7, "email": "Rep@Team.example"}}');
            INSERT INTO staging.accounts VALUES (9, '{{"id": 9, "domain": "acme.example"}}');
            INSERT INTO crm.contacts VALUES
                (' Ada@Acme.example ', 'Ada', 'L', 'CTO', NULL, 'Paris', NULL, 'FR', 'c-1', 'rep@team.example',
                 'acme.example', false, 'mql', now()),
                ('old@else.example', 'Old', 'C', NULL, NULL, NULL, NULL, NULL, 'c-2', NULL, NULL, NULL, 'customer', now());
            """
        )
        # CRM ids with a quote and a backslash: they must come through as text, not break or add JSON fields.
        tricky = {"quote@acme.example": 'c-"3\\', "inject@acme.example": 'x", "Evil": "y'}
        with wh.connection() as conn:
            for email, crm_id in tricky.items():
                sql = (
                    f"INSERT INTO crm.contacts (email, crm_id, lifecycle_stage) VALUES ({wh.PARAM}, {wh.PARAM}, 'lead')"
                )
                conn.execute(sql, [email, crm_id])
        wh.execute_script((SQL_DIR / "writeback" / "people.sql").read_text())
        wh.execute_script((SQL_DIR / "writeback" / "cadence_enrollments.sql").read_text())
        rows = wh.query("SELECT email_address, owner_id, account_id, custom_fields FROM writeback.people")
        people = {
            email: (owner, account, json.loads(c) if isinstance(c, str) else c) for email, owner, account, c in rows
        }
        assert people == {
            "ada@acme.example": (7, 9, {"CRM Id": "c-1"}),
            **{email: (None, None, {"CRM Id": crm_id}) for email, crm_id in tricky.items()},
        }
        assert wh.query("SELECT person_email, cadence_name FROM writeback.cadence_enrollments") == [
            ("ada@acme.example", "Inbound Lead Follow-up")
        ]

    if engine == "duckdb":
        check(str(tmp_path / "warehouse.duckdb"))
    else:
        with fresh_database("slp_writeback_sql") as url:
            check(url)
