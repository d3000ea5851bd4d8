"""The README's first command, run on a clean clone, and its summary checked against the warehouse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from salesloft_pipeline.warehouse import open_warehouse

REPOSITORY = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, re.DOTALL)


def test_the_quick_start_is_two_commands_install_and_demo_then_pytest() -> None:
    assert quick_start_commands()[:2] == ["pip install -e '.[dev]' && salesloft-pipeline demo --headless", "pytest"]


def test_headless_demo_on_a_clean_clone_matches_its_warehouse(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(clone)], check=True)
    # The install half of the command is what CI has just done; the clone's own
    # package is imported (the working directory comes first on sys.path).
    demo = quick_start_commands()[0].split(" && ", 1)[1].split()[1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESLOFT_")}
    run = subprocess.run(
        [sys.executable, "-m", "salesloft_pipeline.cli", *demo],
        cwd=clone, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    out = run.stdout

    wh = open_warehouse(str(clone / ".salesloft_pipeline" / "demo" / "warehouse.duckdb"))
    table_rows = {
        name: (int(raw.replace(",", "")), int(staged.replace(",", "")))
        for name, raw, staged in re.findall(r"^  (\w+)\s+([\d,]+)\s+([\d,]+)$", out, re.MULTILINE)
    }
    assert {"people", "emails", "calls", "cadence_memberships", "users"} <= set(table_rows)
    assert {"opportunities", "opportunity_people", "conversations", "transcriptions", "tags"} <= set(table_rows)
    for name, (raw, staged) in table_rows.items():
        assert wh.query(f"SELECT count(*) FROM raw.{name}") == [(raw,)], name
        assert wh.query(f"SELECT count(*) FROM staging.{name}") == [(staged,)], name

    api = re.search(r"SalesLoft API: ([\d,]+) requests, cost ([\d,]+), 429s (\d+)", out)
    assert api and int(api.group(2).replace(",", "")) > 0 and api.group(3) == "0"
    webhooks = re.search(r"Webhooks: (\d+) events stored and applied", out)
    assert webhooks and int(webhooks.group(1)) > 0
    [(from_webhooks,)] = wh.query("SELECT count(*) FROM raw.people WHERE _source = 'webhook'")
    assert from_webhooks > 0

    pipeline = re.search(r"Pipeline the cadences touched \(last touch, 30 days\): ([\d,]+) opportunities, ([\d,.]+) amount", out)
    assert pipeline and int(pipeline.group(1).replace(",", "")) > 0
    [(opportunities, amount)] = wh.query(
        "SELECT sum(opportunities), sum(pipeline_amount) FROM engagement.cadence_pipeline WHERE attribution = 'last_touch'"
    )
    assert (opportunities, f"{amount:,.2f}") == (int(pipeline.group(1).replace(",", "")), pipeline.group(2))

    # Days in the simulated team's zone, the one its key's user has (SalesLoft's /v2/me).
    assert "Engagement days are counted in US/Eastern (time_zone of /v2/me user" in out
    assert "Last 7 days (US/Eastern):" in out
    metrics = re.findall(r"^  (\d{4}-\d\d-\d\d)\s+(\d+)\s+(\d+)\s+\S+\s+(\d+)\s+\S+\s+(\d+)$", out, re.MULTILINE)
    assert len(metrics) == 7
    for day, sent, delivered, calls, meetings in metrics:
        [stored] = wh.query(
            "SELECT emails_sent, emails_delivered, calls, meetings_booked FROM engagement.daily_engagement"
            f" WHERE activity_day = DATE '{day}'"
        )
        assert stored == (int(sent), int(delivered), int(calls), int(meetings)), day
