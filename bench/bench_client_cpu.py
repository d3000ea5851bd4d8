"""CPU and memory of the client: records fetched, parsed and validated per CPU-second
(budget off), and resident memory while `salesloft-pipeline extract` writes up to
`--memory-records` emails (all the simulator has if fewer).

The simulator runs in its own process so that only the client's CPU is counted.
1,000,000 emails take about 22,000 people over 90 days (the simulator then
holds about 2.7M records, some 3 GB).

    python bench/bench_client_cpu.py [--people 22500] [--days 90] [--cpu-records 150000] [--memory-records 1000000]

Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from salesloft_pipeline.salesloft import SalesloftClient, extract
from salesloft_pipeline.salesloft.paging import format_instant, parse_instant

KEY = "bench-key"


@contextmanager
def simulator(people: int, days: int) -> Iterator[str]:
    """A simulator in a child process; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "simulator", "--port", "0", "--budget", "0",
         "--people", str(people), "--days", str(days), "--api-key", KEY],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        match = re.search(r"(http://\S+/v2)", server.stdout.readline())  # type: ignore[union-attr]
        if not match:
            raise SystemExit("the simulator did not start")
        yield match.group(1)
    finally:
        server.terminate()
        server.wait(30)


def rss_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure_cpu(base_url: str, records: int) -> dict[str, float]:
    with SalesloftClient(KEY, base_url) as client:
        started_cpu, started = time.process_time(), time.monotonic()
        count = 0
        for _ in extract(client, "emails"):
            count += 1
            if count >= records:
                break
        cpu = time.process_time() - started_cpu
        wall = time.monotonic() - started
    return {"cpu_records": count, "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
            "records_per_cpu_second": round(count / cpu)}


def measure_memory(base_url: str, records: int) -> dict[str, float]:
    """Peak and sampled RSS of the extract command writing `records` records to /dev/null."""
    truth = httpx.get(base_url.removesuffix("/v2") + "/__sim/truth/emails", timeout=600).json()["records"]
    instants = sorted(parse_instant(r["updated_at"]) for r in truth)
    del truth
    until = instants[min(records, len(instants) - 1)]
    command = [sys.executable, "-m", "salesloft_pipeline.cli", "extract", "emails",
               "--until", format_instant(until), "--out", os.devnull]
    env = {**os.environ, "SALESLOFT_API_KEY": KEY, "SALESLOFT_BASE_URL": base_url}
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    samples: list[float] = []
    peak = 0.0
    while child.poll() is None:
        try:
            samples.append(rss_mb(child.pid, "VmRSS"))
            peak = max(peak, rss_mb(child.pid, "VmHWM"))
        except FileNotFoundError:
            break
        time.sleep(0.5)
    summary = json.loads(child.stderr.read().strip().splitlines()[-1])  # type: ignore[union-attr]
    tenth = max(1, len(samples) // 10)
    return {
        "memory_records": summary["records"],
        "peak_rss_mb": round(peak, 1),
        "rss_mb_at_10pct": round(samples[tenth], 1) if samples else None,
        "rss_mb_at_end": round(samples[-1], 1) if samples else None,
        "memory_seconds": summary["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=22500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--cpu-records", type=int, default=150_000)
    parser.add_argument("--memory-records", type=int, default=1_000_000)
    args = parser.parse_args()
    with simulator(args.people, args.days) as base_url:
        figures = {"benchmark": "client_cpu_memory", **measure_cpu(base_url, args.cpu_records)}
        if args.memory_records:
            figures.update(measure_memory(base_url, args.memory_records))
    figures.update({"goal_records_per_cpu_second": 20000, "goal_peak_rss_mb": 300})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
