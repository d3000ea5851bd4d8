"""The chaos soak's short variant (bench/bench_chaos.py): a few minutes of combined faults against
the whole deployment on the embedded defaults, then nothing lost, duplicated or stale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_chaos import faults_for, run_soak  # noqa: E402


@pytest.mark.timeout(1800)
def test_a_short_chaos_soak_loses_nothing(tmp_path: Path) -> None:
    result = run_soak(minutes=4, engine="duckdb", seed=3, people=120, days=3, fault_every=8, workdir=tmp_path)
    print(result)
    assert sum(result["faults_injected"].values()) >= 10, result
    assert not [k for k in result["faults_injected"] if k.startswith("unexpected_exit")], result
    assert set(result["faults_injected"]) <= set(faults_for("duckdb")), result
    assert result["records_compared"] > 0
    assert (result["lost"], result["extra"], result["stale"], result["duplicated"]) == (0, 0, 0, 0), result
    assert result["engagement_differs"] == [], result
    assert result["runs_in_flight_at_end"] == [], result
    assert result["webhooks"]["acknowledged"] > 0 and result["webhooks"]["acknowledged_not_stored"] == 0, result
    assert result["webhooks"]["unapplied"] == 0, result
    assert result["api"]["fault_free_sync_cost"] > 0, result
