"""The ingest endpoint: verify, store durably, answer. Nothing else on the request path.

Routes:
- `POST /webhooks/salesloft`: a SalesLoft delivery. 2xx only once the event is
  committed to the event store (200 new or duplicate, 202 stored but flagged
  because the pipeline does not apply its type); 401 missing or bad
  signature; 413 body over 1 MiB; 400 body not a JSON object (or nested deeper
  than MAX_JSON_DEPTH) or no event type;
  503 the store refused the commit (SalesLoft retries).
- `GET /health`: 200 when the store answers and its writer runs, else 503.
- `GET /metrics`: Prometheus text format.

Secrets and bodies never reach a log line, a metric or an answer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .events import EVENTS
from .signature import Secrets
from .store import EventStore, GroupCommitter, NewEvent, StoreUnavailable

log = logging.getLogger(__name__)
disable_created_metrics()  # no `*_created` series: they double the scrape for nothing

PATH = "/webhooks/salesloft"
MAX_BODY = 1024 * 1024  # 1 MiB
# SalesLoft resources nest a few levels. Deeper bodies are refused: orjson reads up to 1023
# levels but the apply job's json.loads fails below 1000, so such a body, once stored,
# would fail every apply run of its range.
MAX_JSON_DEPTH = 64
SIGNATURE_HEADER = "x-salesloft-signature"
EVENT_HEADER = "x-salesloft-event"
EVENT_TYPE = re.compile(r"[a-z0-9_.:-]{1,100}")
JSON = "application/json"

REJECT_REASONS = (
    "missing_signature",
    "bad_signature",
    "too_large",
    "not_json",
    "bad_event_type",
    "store_unavailable",
    "client_disconnected",
    "too_deep",
)


class Metrics:
    """The endpoint's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "salesloft_webhook_events_received",
            "Signed deliveries stored, by event type (`unknown`: stored, flagged, not applied).",
            ["event_type"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "salesloft_webhook_events_duplicate",
            "Signed deliveries identical to an event already stored (acknowledged, stored once).",
            registry=self.registry,
        )
        self.rejected = Counter(
            "salesloft_webhook_events_rejected",
            "Deliveries refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "salesloft_webhook_commit_seconds",
            "Time from a verified delivery to its durable commit in the event store.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        # Children made once: labels() per request costs more than the increment.
        self._received = {name: self.received.labels(name) for name in (*EVENTS, "unknown")}
        self._rejected = {reason: self.rejected.labels(reason) for reason in REJECT_REASONS}

    def stored(self, event_type: str) -> None:
        self._received.get(event_type, self._received["unknown"]).inc()

    def reject(self, reason: str) -> None:
        self._rejected[reason].inc()


def _answer(status: int, text: str) -> Response:
    return Response(b'{"status":"' + text.encode() + b'"}', status_code=status, media_type=JSON)


def _deeper_than(value: object, limit: int) -> bool:
    """True when `value` (parsed JSON) nests containers more than `limit` levels deep."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None when it is over MAX_BODY (read no further)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    store: EventStore,
    secrets: Secrets,
    metrics: Metrics | None = None,
    max_batch: int = 1000,
    collectors: Iterable[Collector] = (),
) -> Starlette:
    """The ASGI app, storing into `store` (set up at startup) and accepting `secrets`.

    `collectors` join the endpoint's own metrics on /metrics (`webhooks serve`
    adds the pipeline's health, salesloft_pipeline.monitoring)."""
    metrics = metrics or Metrics()
    for collector in collectors:
        metrics.registry.register(collector)
    committer = GroupCommitter(store, max_batch=max_batch)

    async def receive(request: Request) -> Response:
        try:
            body = await _read_body(request)
        except ClientDisconnect:  # the sender hung up mid-body: nobody to answer, nothing to store
            metrics.reject("client_disconnected")
            return _answer(400, "client disconnected")
        if body is None:
            metrics.reject("too_large")
            return _answer(413, "body over 1 MiB")
        signatures = request.headers.getlist(SIGNATURE_HEADER)
        if not any(signatures):
            metrics.reject("missing_signature")
            return _answer(401, f"missing {SIGNATURE_HEADER}")
        # Repeated headers are ambiguous (a proxy may act on the last, Starlette's get() on the
        # first) and SalesLoft sends each once: refuse rather than guess.
        if len(signatures) > 1 or not secrets.verify(body, signatures[0]):
            metrics.reject("bad_signature")
            return _answer(401, "bad signature")
        event_types = request.headers.getlist(EVENT_HEADER)
        event_type = event_types[0].strip().lower() if len(event_types) == 1 else ""
        if not EVENT_TYPE.fullmatch(event_type):
            metrics.reject("bad_event_type")
            return _answer(400, f"missing or malformed {EVENT_HEADER}")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            metrics.reject("not_json")
            return _answer(400, "body is not a JSON object")
        # Counting brackets (in C) spares the walk for nearly every body.
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _deeper_than(parsed, MAX_JSON_DEPTH):
            metrics.reject("too_deep")
            return _answer(400, f"body nested deeper than {MAX_JSON_DEPTH}")
        known = event_type in EVENTS
        started = time.perf_counter()
        try:
            new = await committer.append(NewEvent(event_type, body, known, time.time()))
        except StoreUnavailable as error:
            metrics.reject("store_unavailable")
            log.error("event store refused a commit (%s); answering 503 so SalesLoft retries", error)
            return _answer(503, "event store unavailable, retry later")
        metrics.commit_seconds.observe(time.perf_counter() - started)
        if not new:
            metrics.duplicates.inc()
            return _answer(200, "duplicate")
        metrics.stored(event_type if known else "unknown")
        return _answer(200, "stored") if known else _answer(202, "stored, event type not applied")

    async def health(request: Request) -> Response:
        try:
            await run_in_threadpool(store.ping)
        except Exception as error:
            return Response(
                orjson.dumps({"status": "unavailable", "store": store.describe(), "error": type(error).__name__}),
                status_code=503,
                media_type=JSON,
            )
        if not committer.alive():
            return _answer(503, "event store writer stopped")
        return Response(orjson.dumps({"status": "ok", "store": store.describe()}), media_type=JSON)

    async def prometheus(request: Request) -> Response:
        # In a worker thread: collectors read databases, and deliveries must not wait for them.
        return Response(await run_in_threadpool(generate_latest, metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(store.setup)
        committer.start()
        log.info("storing SalesLoft webhooks in %s", store.describe())
        try:
            yield
        finally:
            await run_in_threadpool(committer.stop)

    app = Starlette(
        routes=[
            Route(PATH, receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.metrics = metrics
    app.state.committer = committer
    return app


def app_from_env() -> Starlette:
    """The app with secrets and store from the environment, without the pipeline's health
    on /metrics (`webhooks serve` adds it; this package never imports the warehouse).

    Raises MissingSecret (naming SALESLOFT_WEBHOOK_SECRET) when no secret is set."""
    from .store import open_event_store

    return create_app(open_event_store(), Secrets.from_env())
