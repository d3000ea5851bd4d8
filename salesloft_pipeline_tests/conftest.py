"""Fixtures and helpers for the simulator's conformance suite.

The suite is written from docs/simulator.md (the contract), not from the
simulator's code: every test talks to a real simulator over loopback HTTP.

A test module may set `SIM_OPTIONS = {...}` (SimulatorConfig keyword
arguments) to change the module-scoped simulator it gets.

A schedule or sensor context built with `resources=` is always used as a
`with` block: its resources open a Dagster instance that otherwise closes
only when the garbage collector gets to it, and closing then puts back a
long-closed instance as the current one, so later tests' `dg.materialize`
fails with "Attempted to resolve undefined DagsterInstance weakref".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

DEFAULT_SIM_OPTIONS: dict[str, Any] = {"seed": 11, "people": 150, "days": 20, "budget": 0}

# The streams table of docs/simulator.md: name -> (path under /v2, updated_at filter).
STREAMS: dict[str, tuple[str, bool]] = {
    "users": ("users", False),
    "people": ("people", True),
    "accounts": ("accounts", True),
    "cadences": ("cadences", True),
    "cadence_memberships": ("cadence_memberships", True),
    "steps": ("steps", False),
    "emails": ("activities/emails", True),
    "calls": ("activities/calls", True),
    "meetings": ("meetings", True),
    "notes": ("notes", True),
    "successes": ("successes", True),
    "actions": ("actions", True),
    "tasks": ("tasks", True),
    "call_data_records": ("call_data_records", True),
    "crm_activities": ("crm_activities", True),
    "email_templates": ("email_templates", True),
    "team_templates": ("team_templates", True),
    "account_stages": ("account_stages", True),
    "account_tiers": ("account_tiers", False),
    "person_stages": ("person_stages", False),
    "call_dispositions": ("call_dispositions", False),
    "call_sentiments": ("call_sentiments", False),
    "groups": ("groups", False),
    "custom_fields": ("custom_fields", False),
    "imports": ("imports", False),
    "phone_number_assignments": ("phone_number_assignments", False),
    "crm_users": ("crm_users", False),
    "email_template_attachments": ("email_template_attachments", False),
    "team_template_attachments": ("team_template_attachments", False),
    "searches": ("meetings/settings/searches", False),
}
FILTER_STREAMS = [name for name, (_, filt) in STREAMS.items() if filt]
NO_FILTER_STREAMS = [name for name, (_, filt) in STREAMS.items() if not filt]
# Streams whose list pages with page/per_page whatever the request (users pages
# only when `page` is given, groups has no paging metadata at all).
PAGED_STREAMS = [name for name in STREAMS if name not in ("groups",)]

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
RATE_HEADERS = ("x-ratelimit-endpoint-cost", "x-ratelimit-remaining-minute")


# -- time ---------------------------------------------------------------------
def instant(value: str) -> datetime:
    """An ISO-8601 timestamp as an aware datetime (compare these, never strings)."""
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"timestamp without a UTC offset: {value!r}"
    return moment


def iso(moment: datetime, offset_hours: float = 0) -> str:
    """`moment` spelled with microseconds in the given UTC offset."""
    tz = timezone(timedelta(hours=offset_hours))
    return moment.astimezone(tz).isoformat(timespec="microseconds")


def offset_of(value: str) -> str:
    match = TIMESTAMP_RE.match(value)
    assert match, f"not ISO-8601 with microseconds and an offset: {value!r}"
    return match.group(1)


# -- simulator ------------------------------------------------------------------
def start_simulator(**options: Any):
    """A context manager serving a simulator with these SimulatorConfig options."""
    from salesloft_pipeline.simulator import Simulator, SimulatorConfig

    return Simulator(SimulatorConfig(**options)).serve()


def api_client(sim: Any, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        base_url=sim.base_url,
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=kwargs.pop("timeout", 30.0),
        **kwargs,
    )


@pytest.fixture(scope="module")
def sim(request: pytest.FixtureRequest) -> Iterator[Any]:
    options = {**DEFAULT_SIM_OPTIONS, **getattr(request.module, "SIM_OPTIONS", {})}
    with start_simulator(**options) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim: Any) -> Iterator[httpx.Client]:
    with api_client(sim) as c:
        yield c


@pytest.fixture(scope="module")
def inspect(sim: Any) -> Iterator[httpx.Client]:
    """A client for /__sim/... (no token)."""
    with httpx.Client(base_url=sim.url, timeout=60.0) as c:
        yield c


def truth(inspect: httpx.Client, stream: str, full: bool = False) -> dict[str, Any]:
    params = {"full": "true"} if full else {}
    response = inspect.get(f"/__sim/truth/{stream}", params=params)
    assert response.status_code == 200, (stream, response.status_code, response.text[:300])
    body = response.json()
    assert body["stream"] == stream
    return body


def truth_ids(inspect: httpx.Client, stream: str) -> set[Any]:
    return {r["id"] for r in truth(inspect, stream)["records"]}


def truth_map(inspect: httpx.Client, stream: str, full: bool = False) -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for r in truth(inspect, stream, full=full)["records"]}


def stats(inspect: httpx.Client) -> dict[str, Any]:
    response = inspect.get("/__sim/stats")
    assert response.status_code == 200, response.text
    return response.json()


def reset_stats(inspect: httpx.Client) -> None:
    response = inspect.post("/__sim/stats/reset")
    assert response.status_code in (200, 204), response.text


def set_faults(inspect: httpx.Client, **settings: Any) -> dict[str, Any]:
    response = inspect.post("/__sim/faults", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def set_budget(inspect: httpx.Client, budget: int, window_seconds: float) -> None:
    response = inspect.post("/__sim/budget", json={"budget": budget, "window_seconds": window_seconds})
    assert response.status_code in (200, 204), response.text


def advance(inspect: httpx.Client, seconds: float) -> dict[str, Any]:
    response = inspect.post("/__sim/advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text
    body = response.json()
    for key in ("created", "updated", "deleted"):
        assert isinstance(body.get(key), dict), body
    return body


def get_list(client: httpx.Client, path: str, **params: Any) -> httpx.Response:
    return client.get(f"/{path}", params=params)


def walk(
    client: httpx.Client, path: str, per_page: int = 100, max_pages: int = 2000, **params: Any
) -> list[dict[str, Any]]:
    """Every record of a list, page by page, following next_page."""
    records: list[dict[str, Any]] = []
    page = 1
    for _ in range(max_pages):
        response = client.get(f"/{path}", params={**params, "page": page, "per_page": per_page})
        assert response.status_code == 200, (path, page, response.status_code, response.text[:300])
        body = response.json()
        records.extend(body["data"])
        paging = body["metadata"]["paging"]
        if not body["data"] or paging["next_page"] is None:
            return records
        assert paging["next_page"] == page + 1, paging
        page = paging["next_page"]
    raise AssertionError(f"walk of {path} did not end within {max_pages} pages")


def poll(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Calls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def unwrap(body: Any) -> Any:
    """The subscription record(s): SalesLoft's answer with or without a data envelope."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


def signature(token: str, raw: bytes) -> str:
    return hmac.new(token.encode(), raw, hashlib.sha1).hexdigest()


# -- webhook receiver -------------------------------------------------------------
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST it gets.

    `fail_first`: answer `fail_status` to the first N requests overall.
    `fail_each`: answer `fail_status` to the first N attempts of each distinct
    delivery (same event and identical raw body).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.fail_each = 0
        self.fail_status = 500
        self._seen: dict[tuple[str, bytes], int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                status = receiver._record(self.path, dict(self.headers.items()), raw)
                payload = b"{}"
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        with self.lock:
            headers = {k.lower(): v for k, v in headers.items()}
            key = (headers.get("x-salesloft-event", ""), raw)
            attempt = self._seen.get(key, 0) + 1
            self._seen[key] = attempt
            failed = len(self.requests) < self.fail_first or attempt <= self.fail_each
            status = self.fail_status if failed else 200
            self.requests.append(
                {"time": time.monotonic(), "path": path, "headers": headers, "raw": raw,
                 "status": status, "attempt": attempt}
            )
            return status

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def bodies(self, event: str | None = None, ok_only: bool = False) -> list[dict[str, Any]]:
        return [
            json.loads(r["raw"])
            for r in self.snapshot()
            if (event is None or r["headers"].get("x-salesloft-event") == event)
            and (not ok_only or r["status"] == 200)
        ]

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def make_receiver() -> Iterator[Callable[[], Receiver]]:
    made: list[Receiver] = []

    def make() -> Receiver:
        r = Receiver().__enter__()
        made.append(r)
        return r

    yield make
    for r in made:
        r.__exit__(None, None, None)
