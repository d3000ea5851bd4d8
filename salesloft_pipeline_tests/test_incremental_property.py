"""Incremental staging and engagement equal a full rebuild, whatever happened (hypothesis).

Random sequences of day loads (as the extraction makes them), webhook upserts,
deletes, resurrections and out-of-order versions, with staging merges and
engagement updates run at random points in between, end with staging and
every engagement table equal to a full rebuild of the same raw data, on a
real DuckDB file and the real Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloft_pipeline.defs.engagement import changes, models
from salesloft_pipeline.defs.extract.tables import all_raw_tables, raw_table
from salesloft_pipeline.defs.staging.build import build_staging
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database
from salesloft_pipeline_tests.test_engagement_data import call, email, membership, user

D0 = date(2025, 3, 2)
DAYS = [D0 + timedelta(days=n) for n in range(4)]
STREAMS = ("emails", "calls", "cadence_memberships", "users")
PEOPLE, CADENCES, IDS = (101, 102, 103), (10, 20), range(1, 7)


def at(day: int, hour: int) -> str:
    moment = datetime.combine(DAYS[day], datetime.min.time(), timezone.utc) + timedelta(hours=hour)
    return moment.isoformat(timespec="microseconds")


# A version of one record: which record, when it was updated (day, hour) and what it says.
versions = st.fixed_dictionaries(
    {
        "stream": st.sampled_from(("emails", "calls", "cadence_memberships")),
        "id": st.sampled_from(IDS),
        "updated": st.tuples(st.integers(0, 3), st.integers(0, 23)),
        "activity": st.tuples(st.integers(0, 3), st.integers(0, 23)),
        "person": st.sampled_from(PEOPLE),
        "cadence": st.sampled_from((*CADENCES, None)),
        "sent": st.booleans(),
        "replies": st.integers(0, 2),
        "disposition": st.sampled_from(("Connected", "No Answer", None)),
    }
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("load"), st.integers(0, 3), st.lists(versions, max_size=6)),
        st.tuples(st.just("webhook"), versions),
        st.tuples(st.just("delete"), versions),
        st.tuples(st.just("users"), st.sets(st.sampled_from(("g-1", "g-2", "g-3")), max_size=3)),
        st.tuples(st.just("merge"), st.sets(st.sampled_from(STREAMS), min_size=1)),
        st.tuples(st.just("update")),
    ),
    min_size=1,
    max_size=25,
)


def record(v: dict[str, Any]) -> dict[str, Any]:
    updated, activity = at(*v["updated"]), at(*v["activity"])
    if v["stream"] == "emails":
        made = email(v["id"], 1, v["person"], activity if v["sent"] else None, v["cadence"],
                     status="sent" if v["sent"] else "scheduled", replies=v["replies"], views=v["replies"])  # fmt: skip
    elif v["stream"] == "calls":
        made = call(v["id"], 2, v["person"], activity, v["disposition"], cadence=v["cadence"])
    else:
        made = membership(v["id"], 1, v["person"], v["cadence"] or 10, activity)
    return {**made, "updated_at": updated}


def apply(wh: Warehouse, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "load":  # what extraction commits for one day: the versions updated on it
        day = DAYS[op[1]]
        by_stream: dict[str, dict[int, dict[str, Any]]] = {}
        for v in op[2]:
            v = {**v, "updated": (op[1], v["updated"][1])}
            by_stream.setdefault(v["stream"], {})[v["id"]] = record(v)
        for stream in ("emails", "calls", "cadence_memberships"):
            wh.replace_partition(raw_table(BY_NAME[stream]), day, list(by_stream.get(stream, {}).values()))
    elif kind == "webhook":
        wh.upsert_records(raw_table(BY_NAME[op[1]["stream"]]), [record(op[1])])
    elif kind == "delete":
        wh.mark_deleted(op[1]["stream"], [(op[1]["id"], at(*op[1]["updated"]))])
    elif kind == "users":
        wh.replace_snapshot(raw_table(BY_NAME["users"]), [user(int(g[-1]), g) for g in sorted(op[1])])
    elif kind == "merge":
        for stream in sorted(op[1]):
            build_staging(wh, BY_NAME[stream])
    elif kind == "update":
        for stream in STREAMS:
            build_staging(wh, BY_NAME[stream])
        changes.update_changed_days(wh, DAYS[0], DAYS[-1])


def tables(wh: Warehouse) -> dict[str, list[str]]:
    names = [f"staging.{s}" for s in STREAMS] + [f"engagement.{m}" for m in models.MODELS]
    return {name: sorted(map(repr, wh.query(f"SELECT * FROM {name}"))) for name in names}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "duckdb":
        yield str(tmp_path_factory.mktemp("property") / "warehouse.duckdb")
    else:
        with fresh_database("slp_property") as url:
            yield url


def fresh(url: str) -> Warehouse:
    wh = open_warehouse(url)
    if "://" in url:
        wh.execute_script("DROP SCHEMA IF EXISTS raw CASCADE; DROP SCHEMA IF EXISTS staging CASCADE;"
                          " DROP SCHEMA IF EXISTS engagement CASCADE")  # fmt: skip
    else:
        Path(url).unlink(missing_ok=True)
    wh.setup(all_raw_tables())
    # Every input exists from the start (as after a first load), so an update can always run.
    wh.replace_snapshot(raw_table(BY_NAME["users"]), [user(1, "g-1")])
    for stream in ("meetings", "successes"):
        build_staging(wh, BY_NAME[stream])
    return wh


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_incremental_staging_and_engagement_equal_a_full_rebuild(engine: str, ops: list[tuple[Any, ...]]) -> None:
    wh = fresh(engine)
    for op in ops:
        apply(wh, op)
    apply(wh, ("update",))
    incremental = tables(wh)
    for stream in STREAMS:
        build_staging(wh, BY_NAME[stream], force=True)
    models.build(wh, models.MODELS, DAYS[0], DAYS[-1], rebuild=True)
    assert tables(wh) == incremental
