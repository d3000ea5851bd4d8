"""On a simulated team, every engagement mart equals the same metrics computed in Python from the ground truth.

Extraction, staging and engagement run as Dagster assets against the
simulator over HTTP, into DuckDB and into Postgres; the expected values are
computed here, independently of the SQL, from `/__sim/truth/<stream>?full=true`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from salesloft_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

from salesloft_pipeline.defs.engagement import models
from salesloft_pipeline.defs.engagement.assets import ENGAGEMENT_ASSETS
from salesloft_pipeline.defs.engagement.checks import ENGAGEMENT_CHECKS
from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.defs.staging.assets import STAGING_ASSETS
from salesloft_pipeline.salesloft import BY_NAME
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import Warehouse, open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

DAYS = 8
SENT = {"sent", "sent_from_gmail", "sent_from_external"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    # This week's Monday, 00:00 UTC: the generator's rates follow the weekday, so
    # a fixed weekday and hour give the same dataset every run (an hourly anchor
    # made the metrics this test checks vary, now and then to zero no-shows).
    now = datetime.now(timezone.utc)
    anchor = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimulatorConfig(seed=23, people=160, days=DAYS, anchor=anchor, budget=0, webhook_duplicate_rate=0)
    with Simulator(config).serve() as simulator:
        yield simulator


def _first_day(sim: Simulator) -> date:
    return (sim.config.anchor - timedelta(days=DAYS)).date()


def _range_tags(first: date, last: date) -> dict[str, str]:
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def loaded(request: pytest.FixtureRequest, sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """Extraction, staging and engagement materialized through Dagster for the whole history."""
    with _url(request.param, tmp_path_factory.mktemp("sim")) as url:
        resources = {
            "salesloft": SalesloftResource(api_key=sim.api_key, base_url=sim.base_url),
            "warehouse": WarehouseResource(url=url),
        }
        first, today = _first_day(sim), datetime.now(timezone.utc).date()
        streams = [BY_NAME[s] for s in models.INPUT_STREAMS]
        incremental = [a for a in EXTRACT_ASSETS if a.key in {raw_asset_key(s) for s in streams if s.incremental}]
        snapshots = [a for a in EXTRACT_ASSETS if a.key in {raw_asset_key(s) for s in streams if not s.incremental}]
        assert dg.materialize(incremental, resources=resources, tags=_range_tags(first, today)).success
        assert dg.materialize(snapshots, resources=resources).success
        staging = [a for a in STAGING_ASSETS if a.key.path[-1] in models.INPUT_STREAMS]
        assert dg.materialize(staging, resources=resources).success
        result = dg.materialize([*ENGAGEMENT_ASSETS, *ENGAGEMENT_CHECKS], resources=resources, tags=_range_tags(first, today))
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
        yield open_warehouse(url)


class _url:
    def __init__(self, engine: str, tmp: Path) -> None:
        self.engine, self.tmp, self.postgres = engine, tmp, None

    def __enter__(self) -> str:
        if self.engine == "duckdb":
            return str(self.tmp / "warehouse.duckdb")
        self.postgres = fresh_database("slp_engagement")
        return self.postgres.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.postgres is not None:
            self.postgres.__exit__(*exc)


# -- the metrics, in Python, from the ground truth ---------------------------------
def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(timezone.utc)


def _id(reference: dict[str, Any] | None) -> Any:
    return None if reference is None else reference.get("id")


def truth(sim: Simulator, stream: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sim.url}/__sim/truth/{stream}", params={"full": "true"}, timeout=60)
    answer.raise_for_status()
    return answer.json()["records"]


def expected_facts(sim: Simulator) -> list[dict[str, Any]]:
    """One dict per activity, as the glossary in docs/metrics.md defines them."""
    facts: list[dict[str, Any]] = []
    touches: dict[tuple[Any, Any], list[datetime]] = defaultdict(list)
    guid_to_user = {u["guid"]: u["id"] for u in truth(sim, "users")}
    for e in truth(sim, "emails"):
        sent = _utc(e.get("sent_at"))
        if sent is None or e.get("status") not in SENT:
            continue
        bounced = bool(e.get("bounced"))
        counts = e.get("counts") or {}
        facts.append({
            "kind": "email", "at": sent, "user": _id(e["user"]), "cadence": _id(e["cadence"]), "step": _id(e["step"]),
            "person": _id(e["recipient"]), "bounced": bounced,
            "opened": not bounced and (counts.get("views") or 0) > 0,
            "clicked": not bounced and (counts.get("clicks") or 0) > 0,
            "replied": not bounced and (counts.get("replies") or 0) > 0,
        })
        if _id(e["recipient"]) is not None and _id(e["cadence"]) is not None:
            touches[(_id(e["recipient"]), _id(e["cadence"]))].append(sent)
    for c in truth(sim, "calls"):
        made = _utc(c["created_at"])
        connected = (c.get("disposition") or "").lower() == "connected" or c.get("connected") is True
        facts.append({
            "kind": "call", "at": made, "user": _id(c["user"]), "cadence": _id(c["cadence"]), "step": _id(c["step"]),
            "person": _id(c["called_person"]), "connected": connected, "duration": c.get("duration"),
            "disposition": c.get("disposition"), "sentiment": c.get("sentiment"),
        })
        if _id(c["called_person"]) is not None and _id(c["cadence"]) is not None:
            touches[(_id(c["called_person"]), _id(c["cadence"]))].append(made)
    for m in truth(sim, "meetings"):
        canceled = m.get("canceled_at") is not None or (m.get("status") or "").lower() in ("canceled", "cancelled")
        facts.append({
            "kind": "meeting", "at": _utc(m["created_at"]), "user": guid_to_user.get(_id(m["booked_by_user"])),
            "cadence": _id(m["cadence"]), "step": _id(m["step"]), "person": _id(m["person"]),
            "canceled": canceled, "no_show": bool(m.get("no_show")),
        })
    for s in truth(sim, "successes"):
        facts.append({
            "kind": "success", "at": _utc(s["succeeded_at"]), "user": _id(s["user"]),
            "cadence": _id(s.get("latest_cadence")), "step": _id(s.get("latest_step")), "person": _id(s["person"]),
        })
    for m in truth(sim, "cadence_memberships"):
        added = _utc(m["added_at"])
        person, cadence = _id(m["person"]), _id(m["cadence"])
        facts.append({"kind": "added", "at": added, "user": _id(m["user"]), "cadence": cadence, "step": None, "person": person})
        later = [t for t in touches.get((person, cadence), []) if t >= added]
        if later:
            first = min(later)
            facts.append({
                "kind": "first_touch", "at": first, "user": _id(m["user"]), "cadence": cadence, "step": None,
                "person": person, "wait": (first - added).total_seconds(),
            })
    return facts


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def daily_metrics(facts: list[dict[str, Any]]) -> dict[str, Any]:
    emails = [f for f in facts if f["kind"] == "email"]
    calls = [f for f in facts if f["kind"] == "call"]
    meetings = [f for f in facts if f["kind"] == "meeting" and not f["canceled"]]
    waits = [f["wait"] for f in facts if f["kind"] == "first_touch"]
    delivered = sum(not f["bounced"] for f in emails)
    metrics = {
        "emails_sent": len(emails),
        "emails_bounced": sum(f["bounced"] for f in emails),
        "emails_delivered": delivered,
        "emails_opened": sum(f["opened"] for f in emails),
        "emails_clicked": sum(f["clicked"] for f in emails),
        "emails_replied": sum(f["replied"] for f in emails),
        "people_emailed": len({f["person"] for f in emails if f["person"] is not None}),
        "calls": len(calls),
        "calls_connected": sum(f["connected"] for f in calls),
        "talk_time_seconds": sum(f["duration"] or 0 for f in calls if f["connected"]),
        "call_duration_seconds": sum(f["duration"] or 0 for f in calls),
        "meetings_booked": len(meetings),
        "meetings_no_show": sum(f["no_show"] for f in meetings),
        "successes": sum(f["kind"] == "success" for f in facts),
        "people_touched": len({f["person"] for f in emails + calls if f["person"] is not None}),
        "people_added_to_cadences": len({f["person"] for f in facts if f["kind"] == "added" and f["person"] is not None}),
        "first_touches": len(waits),
        "median_hours_to_first_touch": statistics.median(waits) / 3600 if waits else None,
    }
    metrics["open_rate"] = _rate(metrics["emails_opened"], delivered)
    metrics["click_rate"] = _rate(metrics["emails_clicked"], delivered)
    metrics["reply_rate"] = _rate(metrics["emails_replied"], delivered)
    metrics["bounce_rate"] = _rate(metrics["emails_bounced"], len(emails))
    metrics["connect_rate"] = _rate(metrics["calls_connected"], len(calls))
    return metrics


def funnel_metrics(facts: list[dict[str, Any]]) -> dict[str, Any]:
    emails = [f for f in facts if f["kind"] == "email"]
    calls = [f for f in facts if f["kind"] == "call"]
    delivered = sum(not f["bounced"] for f in emails)
    return {
        "people_reached": len({f["person"] for f in emails + calls if f["person"] is not None}),
        "emails_sent": len(emails),
        "emails_delivered": delivered,
        "replies": sum(f["replied"] for f in emails),
        "calls": len(calls),
        "calls_connected": sum(f["connected"] for f in calls),
        "meetings_booked": sum(f["kind"] == "meeting" and not f["canceled"] for f in facts),
        "reply_rate": _rate(sum(f["replied"] for f in emails), delivered),
    }


def outcome_metrics(facts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "calls": len(facts),
        "calls_connected": sum(f["connected"] for f in facts),
        "talk_time_seconds": sum(f["duration"] or 0 for f in facts if f["connected"]),
        "call_duration_seconds": sum(f["duration"] or 0 for f in facts),
    }


def expected(sim: Simulator, first: date, last: date) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    facts = [f for f in expected_facts(sim) if first <= f["at"].date() <= last]
    groups: dict[str, dict[tuple[Any, ...], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for f in facts:
        day = f["at"].date()
        groups["daily_engagement"][(day,)].append(f)
        groups["daily_engagement_by_user"][(day, f["user"])].append(f)
        groups["daily_engagement_by_cadence"][(day, f["cadence"])].append(f)
        if f["step"] is not None and f["kind"] in ("email", "call", "meeting"):
            groups["cadence_step_funnel"][(day, f["cadence"], f["step"])].append(f)
        if f["kind"] == "call":
            groups["call_outcomes"][(day, f["user"], f["cadence"], f["disposition"], f["sentiment"])].append(f)
    compute = {
        "daily_engagement": daily_metrics, "daily_engagement_by_user": daily_metrics,
        "daily_engagement_by_cadence": daily_metrics, "cadence_step_funnel": funnel_metrics,
        "call_outcomes": outcome_metrics,
    }
    return {model: {key: compute[model](group) for key, group in groups[model].items()} for model in compute}


def actual(wh: Warehouse, model: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    grain = models.GRAIN[model]
    with wh.connection() as conn:
        cursor = conn.execute(f"SELECT * FROM engagement.{model}")
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, r)) for r in cursor.fetchall()]
    return {tuple(r[g] for g in grain): {k: v for k, v in r.items() if k not in grain} for r in found}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-6)
    return a == b


@pytest.mark.parametrize("model", models.MARTS)
def test_marts_equal_the_metrics_computed_from_the_simulators_truth(
    sim: Simulator, loaded: Warehouse, model: str
) -> None:
    first, last = _first_day(sim), datetime.now(timezone.utc).date()
    want = expected(sim, first, last)[model]
    got = actual(loaded, model)
    assert len(want) > 5, "the simulated team should have activity on several days"
    assert set(got) == set(want)
    differences = [
        (key, column, got[key][column], value)
        for key, metrics in want.items()
        for column, value in metrics.items()
        if not same(got[key][column], value)
    ]
    assert not differences, differences[:10]


def test_the_simulated_team_exercises_every_metric(sim: Simulator, loaded: Warehouse) -> None:
    """Guards the comparison above from passing on zeros."""
    [totals] = loaded.query(
        "SELECT sum(emails_bounced), sum(emails_replied), sum(calls_connected), sum(meetings_booked),"
        " sum(meetings_no_show), sum(successes), sum(first_touches), sum(emails_opened), sum(emails_clicked)"
        " FROM engagement.daily_engagement"
    )
    assert all(t and t > 0 for t in totals), totals


def test_building_day_by_day_gives_what_one_full_build_gives(sim: Simulator, loaded: Warehouse) -> None:
    """One-day partitions find each membership's first touch across days exactly as the full recompute does."""
    first, last = _first_day(sim), datetime.now(timezone.utc).date()
    before = {m: actual(loaded, m) for m in models.MODELS if m != models.FACTS}
    [(facts_before,)] = loaded.query("SELECT count(*) FROM engagement.activity_facts WHERE activity = 'first_touch'")
    day = first
    while day <= last:
        models.build(loaded, models.MODELS, day, day)
        day += timedelta(days=1)
    [(facts_after,)] = loaded.query("SELECT count(*) FROM engagement.activity_facts WHERE activity = 'first_touch'")
    assert facts_after == facts_before > 0
    after = {m: actual(loaded, m) for m in before}
    for model in before:
        assert set(after[model]) == set(before[model]), model
        for key, metrics in before[model].items():
            assert all(same(after[model][key][c], v) for c, v in metrics.items()), (model, key)
    assert models.stale_days(loaded, first, last) == []
