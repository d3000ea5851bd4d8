"""SIGKILL the endpoint while deliveries pour in: every acknowledged event survives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from salesloft_pipeline.webhooks import open_event_store, sign

ROOT = Path(__file__).resolve().parents[1]
SECRET = "crash-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_endpoint(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "SALESLOFT_WEBHOOK_SECRET": SECRET, "SALESLOFT_PIPELINE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("SALESLOFT_EVENTS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the endpoint exited at start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the endpoint did not start within 60 s")


class Sender:
    """Sends distinct signed deliveries, 16 at a time, and records which got a 2xx."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[bytes] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        counter = iter(range(10**9))
        async with httpx.AsyncClient(timeout=5.0) as client:

            async def worker() -> None:
                while not self.stop.is_set():
                    i = next(counter)
                    body = json.dumps({"id": i, "updated_at": "2026-03-01T10:00:00.000000Z", "first_name": f"p{i}"}).encode()
                    headers = {"x-salesloft-event": "person_updated", "x-salesloft-signature": sign(body, SECRET)}
                    try:
                        answer = await client.post(self.url, content=body, headers=headers)
                    except httpx.HTTPError:
                        self.failed += 1
                        await asyncio.sleep(0.01)
                        continue
                    if 200 <= answer.status_code < 300:
                        self.acknowledged.append(body)

            await asyncio.gather(*(worker() for _ in range(16)))


def test_every_acknowledged_event_survives_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    server = start_endpoint(home, port)
    sender = Sender(f"http://127.0.0.1:{port}/webhooks/salesloft")
    sender.thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(sender.acknowledged) < 1500 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        server.wait(10)
        time.sleep(0.5)  # the sender keeps trying against a dead port
    finally:
        sender.stop.set()
        sender.thread.join(15)
        if server.poll() is None:
            server.kill()
    acknowledged = list(sender.acknowledged)
    assert len(acknowledged) >= 1500, "the load generator did not get going"
    assert sender.failed > 0, "the kill did not happen while sending"

    restarted = start_endpoint(home, port)
    try:
        stored = {e.body for e in open_event_store(str(home / "events.sqlite")).read(0)}
        missing = [b for b in acknowledged if b not in stored]
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events lost"
        # And the restarted endpoint takes deliveries again, on the same store.
        body = b'{"id": -1, "updated_at": "2026-03-01T10:00:00Z"}'
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/salesloft",
            content=body,
            headers={"x-salesloft-event": "person_updated", "x-salesloft-signature": sign(body, SECRET)},
        )
        assert answer.status_code == 200
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(15)
