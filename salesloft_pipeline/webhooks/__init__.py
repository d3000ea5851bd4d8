"""SalesLoft webhook ingest: the endpoint (ASGI), signature check and event store.

Imports no Dagster: `defs/webhooks` reads the store this package writes.
"""

from __future__ import annotations

from .events import APPLIED_EVENT_TYPES, EVENTS, EventAction, action_for
from .signature import SECRET_VARIABLE, MissingSecret, Secrets, sign
from .store import (
    EVENTS_URL_VARIABLE,
    EventStore,
    NewEvent,
    PostgresEventStore,
    Progress,
    SQLiteEventStore,
    StoredEvent,
    open_event_store,
)

__all__ = [
    "APPLIED_EVENT_TYPES",
    "EVENTS",
    "EVENTS_URL_VARIABLE",
    "SECRET_VARIABLE",
    "EventAction",
    "EventStore",
    "MissingSecret",
    "NewEvent",
    "PostgresEventStore",
    "Progress",
    "SQLiteEventStore",
    "Secrets",
    "StoredEvent",
    "action_for",
    "open_event_store",
    "sign",
]
