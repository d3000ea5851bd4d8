"""Sustained signed webhook deliveries per second, with p50/p99 latency, on loopback.

Starts `salesloft-pipeline webhooks serve` as a real subprocess on a fresh
event store, pre-signs `--events` distinct deliveries (wrk's Lua has no HMAC)
and drives them with wrk (closed loop, `--connections` at once) for
`--seconds`. Every body is distinct, so every 2xx is a new row and a real
commit. Afterwards it checks that the store holds exactly one row per 2xx
answer.

    python bench/bench_webhooks.py [--seconds 20] [--connections 16 32] [--rate 0 2000] [--events 400000]
        [--stores sqlite postgres] [--postgres-url postgresql://...]

Stores: `sqlite` (WAL, synchronous=FULL: every 2xx is an fsynced commit) and
`postgres` (a throwaway database created on `--postgres-url`'s server for
each run and dropped afterwards; default SALESLOFT_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432/test). Both are measured one after the
other for each load, side by side in one run.

`--rate 0` finds the ceiling (closed loop); `--rate 2000` offers the goal's
load and shows its latency. Prints one JSON line per (rate, connections, store).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from throwaway import throwaway_database  # bench/throwaway.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"

LUA = r"""
local sigs, bodies, n = {}, {}, 0
for line in io.lines("%(bodies)s") do
  n = n + 1
  sigs[n] = string.sub(line, 1, 40)
  bodies[n] = string.sub(line, 42)
end
local counter = 0
local offset = 0
local threads = {}
function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end
function init(args)
  stride = %(threads)d
end
-- With --rate, each connection waits a random (exponential) time between
-- requests so that together they offer about that many deliveries per second
-- as independent arrivals (a fixed wait would keep the connections in step and
-- send bursts). 0: as fast as the endpoint answers.
local pause_ms = %(pause_ms)f
if pause_ms > 0 then
  function delay()
    return -math.log(1 - math.random()) * pause_ms
  end
end
request = function()
  local i = counter * stride + offset + 1
  counter = counter + 1
  if i > n then
    i = ((i - 1) %% n) + 1  -- wrapped around: duplicates from here on (reported)
  end
  return wrk.format("POST", "/webhooks/salesloft",
    {["Content-Type"]="application/json", ["x-salesloft-event"]="person_updated",
     ["x-salesloft-signature"]=sigs[i]}, bodies[i])
end
function done(summary, latency, requests)
  io.write(string.format("JSON {\"p50_ms\": %%.3f, \"p90_ms\": %%.3f, \"p99_ms\": %%.3f, \"max_ms\": %%.3f, \"requests\": %%d, \"non2xx\": %%d, \"errors\": %%d, \"duration_s\": %%.3f}\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_bodies(path: Path, count: int, start_id: int) -> None:
    """One delivery per line: the signature, a space, the body (a person record of ~1 KB)."""
    pad = "x" * 700
    with path.open("w") as out:
        for i in range(count):
            body = json.dumps(
                {
                    "id": start_id + i,
                    "updated_at": "2026-01-01T12:00:00.000000-05:00",
                    "created_at": "2025-06-01T09:30:00.000000Z",
                    "first_name": "Bench",
                    "last_name": f"Person {i}",
                    "email_address": f"bench{i}@example.com",
                    "owner": {"id": 1, "_href": "https://api.salesloft.com/v2/users/1"},
                    "account": {"id": 7, "_href": "https://api.salesloft.com/v2/accounts/7"},
                    "notes": pad,
                },
                separators=(",", ":"),
            )
            signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha1).hexdigest()
            out.write(f"{signature} {body}\n")


def start_server(home: Path, port: int, events_url: str | None) -> subprocess.Popen:
    env = {
        **os.environ,
        "SALESLOFT_WEBHOOK_SECRET": SECRET,
        "SALESLOFT_PIPELINE_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SALESLOFT_EVENTS_URL", None)
    if events_url:
        env["SALESLOFT_EVENTS_URL"] = events_url
    process = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"endpoint did not start: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")


def stored_rows(home: Path, events_url: str | None) -> int:
    sys.path.insert(0, str(ROOT))
    from salesloft_pipeline.webhooks.store import open_event_store

    return open_event_store(events_url or str(home / "events.sqlite")).count()


def run(connections: int, seconds: int, events: int, threads: int, events_url: str | None, rate: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        bodies = work / "bodies.txt"
        write_bodies(bodies, events, start_id=10_000_000 + connections * 1_000_000)
        script = work / "sign.lua"
        pause_ms = connections * 1000.0 / rate if rate else 0.0
        script.write_text(LUA % {"bodies": bodies, "threads": threads, "pause_ms": pause_ms})
        port = free_port()
        home = work / "home"
        server = start_server(home, port, events_url)
        try:
            out = subprocess.run(
                [
                    "wrk",
                    f"-t{threads}",
                    f"-c{connections}",
                    f"-d{seconds}s",
                    "--timeout",
                    "10s",
                    "--latency",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            server.terminate()
            server.wait(30)
        figures = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
        ok = figures["requests"] - figures["non2xx"]
        rows = stored_rows(home, events_url)
        dup = re.search(r"^salesloft_webhook_events_duplicate_total (\S+)$", metrics, re.M)
        return {
            "benchmark": "webhook_ingest",
            "store": "postgres" if events_url else "sqlite-wal-synchronous-full",
            "connections": connections,
            "offered_rate": rate or "max",
            "wrk_threads": threads,
            "cores": os.cpu_count(),
            "seconds": figures["duration_s"],
            "events_per_s": round(ok / figures["duration_s"], 1),
            "p50_ms": figures["p50_ms"],
            "p90_ms": figures["p90_ms"],
            "p99_ms": figures["p99_ms"],
            "max_ms": figures["max_ms"],
            "acknowledged": ok,
            "non_2xx": figures["non2xx"],
            "socket_errors": figures["errors"],
            "stored_rows": rows,
            "duplicates_sent": int(float(dup.group(1))) if dup else None,
            # Rows past the acknowledged count were answered after wrk stopped its clock.
            "every_ack_stored": rows + (int(float(dup.group(1))) if dup else 0) >= ok,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--events", type=int, default=400_000, help="distinct pre-signed deliveries")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SALESLOFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="Postgres server for the throwaway event store databases",
    )
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[0, 2000],
        help="offered deliveries per second (0: as fast as the endpoint answers)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    for rate in args.rate:
        for connections in args.connections:
            for store in args.stores:
                if store == "sqlite":
                    figures = run(connections, args.seconds, args.events, args.threads, None, rate)
                else:
                    with throwaway_database(args.postgres_url, "slp_bench_webhooks") as url:
                        figures = run(connections, args.seconds, args.events, args.threads, url, rate)
                print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
