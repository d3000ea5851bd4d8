"""The `salesloft-pipeline simulator` command (docs/simulator.md, "Running it"),
run as a real subprocess."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import httpx
import pytest

from salesloft_pipeline_tests.conftest import instant, poll

URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)")
SMALL = ["--people", "20", "--days", "3", "--seed", "3"]


def command() -> list[str]:
    exe = shutil.which("salesloft-pipeline")
    if exe:
        return [exe, "simulator"]
    return [sys.executable, "-c", "from salesloft_pipeline.cli import main; main()", "simulator"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


class Running:
    def __init__(self, process: subprocess.Popen, root: str, lines: list[str]):
        self.process = process
        self.root = root  # http://127.0.0.1:PORT
        self.base_url = f"{root}/v2"
        self.lines = lines

    def client(self, key: str = "sim-api-key") -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def inspect(self) -> httpx.Client:
        return httpx.Client(base_url=self.root, timeout=60)


@contextmanager
def simulator(*args: str, startup: float = 90.0) -> Iterator[Running]:
    process = subprocess.Popen(
        [*command(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env()
    )
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = URL_RE.search(line)
            if match:
                found.put(match.group(1))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        try:
            port = found.get(timeout=startup)
        except queue.Empty:
            pytest.fail(f"the simulator printed no URL within {startup}s; output:\n{''.join(lines)}")
        assert int(port) != 0
        running = Running(process, f"http://127.0.0.1:{port}", lines)
        poll(lambda: _accepts(running.root), timeout=30, what="the printed URL to accept connections")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        reader.join(timeout=5)


def _accepts(root: str) -> bool:
    try:
        return httpx.get(f"{root}/__sim/stats", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_every_documented_option():
    result = subprocess.run([*command(), "--help"], capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 0, result.stderr
    for option in (
        "--port",
        "--host",
        "--seed",
        "--people",
        "--days",
        "--anchor",
        "--budget",
        "--window-seconds",
        "--api-key",
        "--live",
        "--live-speed",
        "--webhook-retry-seconds",
        "--webhook-duplicate-rate",
        "--exact-last-page",
        "--fault-rate",
        "--oauth-client-id",
        "--oauth-client-secret",
        "--oauth-refresh-token",
        "--oauth-access-token-seconds",
        "--scope",
    ):
        assert option in result.stdout, f"{option} missing from --help"


def test_starts_on_port_0_prints_its_url_and_serves():
    with simulator("--port", "0", *SMALL, "--budget", "0") as running:
        printed = "".join(running.lines)
        assert f"{running.root}" in printed
        with running.client() as c:
            response = c.get("/people")
            assert response.status_code == 200
            assert response.json()["data"]
            assert c.get("/activities/emails.json").status_code == 200
        with httpx.Client(base_url=running.base_url, timeout=30) as anonymous:
            assert anonymous.get("/people").status_code == 401
        with running.inspect() as insp:
            assert insp.get("/__sim/truth/people").json()["records"]
    assert running.process.returncode is not None


def test_scope_grants_the_key_a_scope_beyond_the_default_ones():
    with simulator("--port", "0", *SMALL, "--budget", "0") as plain, plain.client() as c:
        assert c.get("/conversations").status_code == 403
    with simulator("--port", "0", *SMALL, "--budget", "0", "--scope", "conversations:read") as granted:
        with granted.client() as c:
            assert c.get("/conversations").status_code == 200
            assert c.get("/transcriptions").status_code == 200


def test_serves_on_the_port_given():
    port = free_port()
    with simulator("--port", str(port), *SMALL) as running:
        assert running.root == f"http://127.0.0.1:{port}"
        with running.client() as c:
            assert c.get("/people").status_code == 200


def test_api_key_budget_and_window_options():
    with simulator(
        "--port", "0", *SMALL, "--api-key", "ak_cli_test", "--budget", "5", "--window-seconds", "2"
    ) as running:
        with running.client() as default_key:
            assert default_key.get("/people").status_code == 401
        with running.client("ak_cli_test") as c:
            first = c.get("/people")
            assert first.status_code == 200
            assert 0 <= int(first.headers["x-ratelimit-remaining-minute"]) <= 4
            statuses = [c.get("/people").status_code for _ in range(12)]
            assert 429 in statuses, statuses


def test_fault_rate_and_other_options_are_applied():
    with simulator(
        "--port",
        "0",
        *SMALL,
        "--fault-rate",
        "0.5",
        "--webhook-retry-seconds",
        "0.5",
        "--webhook-duplicate-rate",
        "0",
        "--exact-last-page",
        "--window-seconds",
        "60",
        "--host",
        "127.0.0.1",
    ) as running:
        with running.inspect() as insp:
            assert insp.get("/__sim/faults").json()["rate"] == 0.5
        with running.client() as c:
            ids = sorted(
                r["id"] for r in httpx.get(f"{running.root}/__sim/truth/people", timeout=30).json()["records"]
            )[:10]
            for _ in range(30):  # the exact-last-page answer, once no fault gets in the way
                try:
                    response = c.get("/people", params={"ids[]": ids, "per_page": 5, "page": 2})
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    try:
                        body = response.json()
                    except ValueError:
                        continue
                    assert body["metadata"]["paging"]["next_page"] is None
                    break
            else:
                pytest.fail("no clean answer in 30 tries at fault rate 0.5")


def test_oauth_options_set_the_token_endpoint_app_and_are_not_printed():
    secret, refresh = "cli-oauth-secret-5f2a", "cli-refresh-token-9c1e"
    with simulator(
        "--port",
        "0",
        *SMALL,
        "--oauth-client-id",
        "cli-client",
        "--oauth-client-secret",
        secret,
        "--oauth-refresh-token",
        refresh,
        "--oauth-access-token-seconds",
        "90",
    ) as running:
        token_url = f"{running.root}/oauth/token"
        grant = {"grant_type": "refresh_token", "client_id": "cli-client", "client_secret": secret}
        defaults = {**grant, "client_id": "sim-client-id", "client_secret": "sim-client-secret"}
        assert httpx.post(token_url, data={**defaults, "refresh_token": refresh}).json()["error"] == "invalid_client"
        stale = httpx.post(token_url, data={**grant, "refresh_token": "sim-refresh-token"})
        assert (stale.status_code, stale.json()["error"]) == (401, "invalid_grant")
        issued = httpx.post(token_url, data={**grant, "refresh_token": refresh})
        assert issued.status_code == 200, issued.text
        assert issued.json()["expires_in"] == 90
        with running.client(issued.json()["access_token"]) as c:
            assert c.get("/people").status_code == 200
        with running.inspect() as insp:
            counters = insp.get("/__sim/oauth").json()
        assert (counters["client_id"], counters["access_token_seconds"], counters["grants"]) == ("cli-client", 90, 1)
        printed = "".join(running.lines)
        assert f"{token_url} (client id: cli-client)" in printed
        assert secret not in printed and refresh not in printed


def test_an_empty_refresh_token_starts_without_a_grant():
    with simulator("--port", "0", *SMALL, "--oauth-refresh-token", "") as running, running.inspect() as insp:
        assert insp.get("/__sim/oauth").json()["grants"] == 0
        refused = httpx.post(f"{running.root}/oauth/token", data={
            "grant_type": "refresh_token", "client_id": "sim-client-id", "client_secret": "sim-client-secret",
            "refresh_token": "",
        })  # fmt: skip
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_grant")


def test_same_seed_sizes_and_anchor_give_the_same_data():
    args = ["--port", "0", "--seed", "5", "--people", "20", "--days", "3", "--anchor", "2024-05-01T00:00:00Z"]
    anchor = datetime.fromisoformat("2024-05-01T00:00:00+00:00")
    snapshots = []
    for _ in range(2):
        with simulator(*args) as running, running.inspect() as insp:
            snapshots.append(
                {
                    s: insp.get(f"/__sim/truth/{s}", params={"full": "true"}).json()["records"]
                    for s in ("people", "emails", "accounts")
                }
            )
    assert snapshots[0] == snapshots[1]
    for records in snapshots[0].values():
        assert records
        assert all(instant(r["updated_at"]) <= anchor for r in records)
    emails = snapshots[0]["emails"]
    assert all(instant(r["updated_at"]) >= anchor - timedelta(days=3) for r in emails)


def test_live_flag_keeps_changing_the_world():
    with simulator("--port", "0", *SMALL, "--live", "--live-speed", "3600") as running, running.inspect() as insp:

        def state():
            return {
                s: {r["id"]: r["updated_at"] for r in insp.get(f"/__sim/truth/{s}").json()["records"]}
                for s in ("people", "emails", "calls")
            }

        start = state()
        poll(lambda: state() != start, timeout=45, interval=0.5, what="--live to change a record")


@pytest.mark.parametrize(
    "args, option",
    [
        (["--people", "many"], "--people"),
        (["--people", "-10"], "--people"),
        (["--days", "-3"], "--days"),
        (["--seed", "x"], "--seed"),
        (["--port", "http"], "--port"),
        (["--port", "70000"], "--port"),
        (["--anchor", "yesterday-ish"], "--anchor"),
        (["--budget", "-1"], "--budget"),
        (["--window-seconds", "0"], "--window-seconds"),
        (["--window-seconds", "soon"], "--window-seconds"),
        (["--fault-rate", "1.5"], "--fault-rate"),
        (["--webhook-duplicate-rate", "-0.1"], "--webhook-duplicate-rate"),
        (["--webhook-retry-seconds", "-1"], "--webhook-retry-seconds"),
        (["--live-speed", "-5"], "--live-speed"),
        (["--oauth-access-token-seconds", "0"], "--oauth-access-token-seconds"),
        (["--oauth-access-token-seconds", "soon"], "--oauth-access-token-seconds"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_give_a_clear_message_and_exit_2(args, option):
    try:
        result = subprocess.run(
            [*command(), "--port", "0", *SMALL, *args], capture_output=True, text=True, env=env(), timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} was accepted: the simulator started instead of refusing")
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"{args}: exit {result.returncode}\n{output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    assert option in output or option.lstrip("-") in output, f"the message does not name {option}: {output}"


def test_a_busy_port_gives_a_clear_message():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            result = subprocess.run(
                [*command(), "--port", str(port), *SMALL], capture_output=True, text=True, env=env(), timeout=90
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the simulator did not exit when its port was taken")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output[-2000:]
    assert str(port) in output
