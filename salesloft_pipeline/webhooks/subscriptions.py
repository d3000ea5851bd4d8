"""Registering our endpoint with SalesLoft's webhook subscriptions API.

`subscribe` is idempotent: for each event type the pipeline applies it keeps
an existing subscription to the URL (updating its token or re-enabling it if
needed) and creates the missing ones. `unsubscribe` deletes every
subscription to the URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from salesloft_pipeline.salesloft import SalesloftClient

from .events import APPLIED_EVENT_TYPES

PATH = "webhook_subscriptions"


@dataclass
class SubscriptionChanges:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return ", ".join(
            f"{len(names)} {what}"
            for what, names in (
                ("created", self.created),
                ("updated", self.updated),
                ("unchanged", self.unchanged),
                ("deleted", self.deleted),
            )
            if names
        ) or "nothing to do"


def list_subscriptions(client: SalesloftClient) -> list[dict[str, Any]]:
    """Every subscription of the token, following pages when the answer has them."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        body = client.request("GET", PATH, params=[("page", page), ("per_page", 100)]).body
        data = body.get("data", body) if isinstance(body, dict) else body
        found.extend(data or [])
        paging = (body.get("metadata") or {}).get("paging") if isinstance(body, dict) else None
        if not paging or not paging.get("next_page") or not data:
            return found
        page = paging["next_page"]


def _same_url(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/") == b.rstrip("/")


def subscribe(
    client: SalesloftClient, url: str, token: str, event_types: Iterable[str] = APPLIED_EVENT_TYPES
) -> SubscriptionChanges:
    """Makes sure each event type has one enabled subscription to `url` signed with `token`."""
    changes = SubscriptionChanges()
    existing: dict[str, dict[str, Any]] = {}
    for subscription in list_subscriptions(client):
        if _same_url(subscription.get("callback_url"), url):
            existing.setdefault(subscription.get("event_type", ""), subscription)
    for event_type in event_types:
        current = existing.get(event_type)
        if current is None:
            client.request(
                "POST",
                PATH,
                json={"callback_url": url, "callback_token": token, "event_type": event_type},
            )
            changes.created.append(event_type)
        elif current.get("callback_token") != token or current.get("enabled") is False:
            client.request(
                "PUT", f"{PATH}/{current['id']}", json={"callback_token": token, "enabled": True}
            )
            changes.updated.append(event_type)
        else:
            changes.unchanged.append(event_type)
    return changes


def unsubscribe(client: SalesloftClient, url: str) -> SubscriptionChanges:
    """Deletes every subscription whose callback is `url`."""
    changes = SubscriptionChanges()
    for subscription in list_subscriptions(client):
        if _same_url(subscription.get("callback_url"), url):
            client.request("DELETE", f"{PATH}/{subscription['id']}")
            changes.deleted.append(str(subscription.get("event_type")))
    return changes
