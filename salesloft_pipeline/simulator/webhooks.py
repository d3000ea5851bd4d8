"""Webhook subscriptions and deliveries, as SalesLoft makes them.

Each change with an enabled subscription for its event type is POSTed as the
bare resource JSON, signed with HMAC-SHA1 of the raw body keyed with the
subscription's callback_token. A failed delivery is retried 3 more times,
`retry_seconds` apart, then dropped; a few deliveries are sent twice.

The subscriptions are the `webhook_subscriptions` stream of the store too:
the team's own (generated with the history) are read from it at start, and
every subscription made, changed or deleted through the API is written back,
so `/__sim/truth/webhook_subscriptions` shows them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import threading
from collections import Counter, deque
from itertools import count
from typing import Any

import httpx
import orjson

from .catalog import BY_NAME, EVENT_TYPES
from .store import Change, Store

STREAM = "webhook_subscriptions"

RETRIES = 3
MAX_LOGGED_DELIVERIES = 20_000
CONCURRENT_DELIVERIES = 32


def sign(body: bytes, token: str) -> str:
    return hmac.new(token.encode(), body, hashlib.sha1).hexdigest()


def event_type(change: Change) -> str | None:
    return BY_NAME[change.stream].events.get(change.kind)


class Webhooks:
    def __init__(
        self, retry_seconds: float, duplicate_rate: float, seed: int, store: Store | None = None,
        owner: dict[str, Any] | None = None,
    ) -> None:
        """`store`: where the subscriptions are kept as a stream too (and the team's own read from);
        `owner`: the `user_guid` and `tenant_id` of subscriptions made through the API."""
        self.retry_seconds = retry_seconds
        self.duplicate_rate = duplicate_rate
        self.store = store
        self.owner = owner or {"user_guid": None, "tenant_id": None}
        self.subscriptions: dict[int, dict[str, Any]] = {}
        if store is not None:
            with store.lock:
                table = store.table(STREAM)
                for subscription_id in sorted(table.ids()):
                    self.subscriptions[subscription_id] = table.get(subscription_id)
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_DELIVERIES)
        self.counters: Counter[str] = Counter()
        self._ids = count(max(self.subscriptions, default=0) + 1)
        self._rng = random.Random(f"webhooks-{seed}")
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    # -- subscriptions -----------------------------------------------------
    def subscribe(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Validates and stores a subscription; raises ValueError with field errors."""
        errors = self._validate(payload, partial=False)
        if errors:
            raise ValueError(errors)
        with self._lock:
            subscription_id = next(self._ids)
            subscription = {
                "id": subscription_id,
                "callback_url": payload["callback_url"],
                "callback_token": payload["callback_token"],
                "event_type": payload["event_type"],
                "enabled": bool(payload.get("enabled", True)),
                "user_guid": self.owner["user_guid"],
                "tenant_id": self.owner["tenant_id"],
            }
            self.subscriptions[subscription_id] = subscription
            created = dict(subscription)
        self._keep(created)
        return dict(created)

    def update(self, subscription_id: int, payload: dict[str, Any]) -> dict[str, Any] | None:
        errors = self._validate(payload, partial=True)
        if errors:
            raise ValueError(errors)
        with self._lock:
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None:
                return None
            for key in ("callback_url", "callback_token", "event_type", "enabled"):
                if key in payload:
                    subscription[key] = payload[key]
            updated = dict(subscription)
        self._keep(updated)
        return dict(updated)

    def unsubscribe(self, subscription_id: int) -> bool:
        with self._lock:
            found = self.subscriptions.pop(subscription_id, None) is not None
        if found and self.store is not None:
            self.store.delete(STREAM, subscription_id)
        return found

    def _keep(self, subscription: dict[str, Any]) -> None:
        """Writes a subscription to the store (outside our lock: the store's listeners take it)."""
        if self.store is not None:
            self.store.put(STREAM, subscription)

    @staticmethod
    def _validate(payload: dict[str, Any], partial: bool) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for key in ("callback_url", "callback_token", "event_type"):
            if key not in payload:
                if not partial:
                    errors[key] = ["can't be blank"]
            elif not isinstance(payload[key], str) or not payload[key]:
                errors[key] = ["can't be blank"]
        url = payload.get("callback_url")
        if isinstance(url, str) and url and not url.startswith(("http://", "https://")):
            errors["callback_url"] = ["is not a valid URL"]
        event = payload.get("event_type")
        if isinstance(event, str) and event and event not in EVENT_TYPES:
            errors["event_type"] = ["is not a valid event type"]
        return errors

    # -- deliveries --------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._slots = asyncio.Semaphore(CONCURRENT_DELIVERIES)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    def on_change(self, change: Change) -> None:
        """Store listener: schedules the deliveries of one change (any thread)."""
        event = event_type(change)
        if event is not None:
            self.emit(event, change.record)

    def emit(self, event: str, record: dict[str, Any]) -> None:
        """Schedules the deliveries of one event about `record` (any thread); also for
        events of things that are no stream, such as bulk_job_completed."""
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            targets = [
                dict(s) for s in self.subscriptions.values() if s["enabled"] and s["event_type"] == event
            ]
        if not targets:
            return
        body = orjson.dumps(record)
        for subscription in targets:
            copies = 2 if self._rng.random() < self.duplicate_rate else 1
            for copy in range(copies):
                entry = {
                    "event_type": event,
                    "id": record.get("id"),
                    "subscription_id": subscription["id"],
                    "status": None,
                    "attempts": 0,
                    "delivered": False,
                    "duplicate": copy > 0,
                }
                self.deliveries.append(entry)
                if copy:
                    self.counters["duplicates"] += 1
                loop.call_soon_threadsafe(self._spawn, subscription, event, body, entry)

    def _spawn(self, subscription: dict[str, Any], event: str, body: bytes, entry: dict) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(subscription, event, body, entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, subscription: dict[str, Any], event: str, body: bytes, entry: dict) -> None:
        assert self._client is not None and self._slots is not None
        headers = {
            "content-type": "application/json",
            "x-salesloft-event": event,
            "x-salesloft-signature": sign(body, subscription["callback_token"]),
        }
        for attempt in range(1 + RETRIES):
            if attempt:
                await asyncio.sleep(self.retry_seconds)
            entry["attempts"] = attempt + 1
            async with self._slots:
                try:
                    response = await self._client.post(
                        subscription["callback_url"], content=body, headers=headers
                    )
                    entry["status"] = response.status_code
                    ok = response.is_success
                except httpx.HTTPError as error:
                    entry["status"] = type(error).__name__
                    ok = False
            if ok:
                entry["delivered"] = True
                self.counters["sent"] += 1
                return
            self.counters["failed"] += 1
        self.counters["dropped"] += 1

    def pending(self) -> int:
        return len(self._pending)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            subscriptions = [dict(s) for s in self.subscriptions.values()]
        return {
            "subscriptions": subscriptions,
            "deliveries": list(self.deliveries),
            "pending": self.pending(),
        }
