"""How many list requests per second the simulator serves (budget off).

The simulator must never be the bottleneck of a benchmark: the goal is at
least 1,000 list requests per second of 100 records each on loopback. The load
comes from wrk (Debian package `wrk`), a real load generator in its own
process, asking for pages 1-100 of 100 emails in ascending `updated_at`.

    python bench/bench_simulator_throughput.py [--people 5000] [--days 90] [--seconds 15]

Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

LUA = """
wrk.headers["Authorization"] = "Bearer {key}"
counter = 0
request = function()
  counter = counter + 1
  local page = (counter % 100) + 1
  return wrk.format("GET", "/v2/activities/emails?per_page=100&sort_by=updated_at&sort_direction=ASC&page=" .. page)
end
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    key = "bench-key"
    server = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "simulator", "--port", "0", "--budget", "0",
         "--people", str(args.people), "--days", str(args.days), "--api-key", key],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"(http://\S+)/v2", line)
        if not match:
            sys.exit(f"the simulator did not start: {line!r}")
        root = match.group(1)
        page = httpx.get(
            f"{root}/v2/activities/emails", params={"per_page": 100},
            headers={"Authorization": f"Bearer {key}"},
        )
        page.raise_for_status()
        records = len(page.json()["data"])
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "pages.lua"
            script.write_text(LUA.format(key=key))
            out = subprocess.run(
                ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(script), "--latency", root],
                capture_output=True, text=True, check=True,
            ).stdout
        stats = httpx.get(f"{root}/__sim/stats").json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(json.dumps({
        "benchmark": "simulator_throughput",
        "load_generator": "wrk",
        "people": args.people,
        "days": args.days,
        "connections": args.connections,
        "seconds": args.seconds,
        "records_per_response": records,
        "bytes_per_response": len(page.content),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "latency_p50_ms": _ms(latency["50"]),
        "latency_p99_ms": _ms(latency["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "requests_seen_by_simulator": stats["requests"],
    }))


if __name__ == "__main__":
    main()
