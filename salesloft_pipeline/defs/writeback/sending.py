"""Sending planned changes one request each, with the ledger around every request.

A batch of intents is written `pending` in one transaction before any of its
requests leaves; answers are written when the batch is done (or the run
stops). A crash in between leaves `pending` rows: the next run reconciles
them with SalesLoft before planning, so nothing is sent twice. A request
whose answer was lost (dropped connection, 5xx to a POST) is `sent`: it may
have been applied, and is reconciled the same way.
"""

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from salesloft_pipeline.salesloft import ApiError, AuthError, RateLimitError, SalesloftClient, TransportError
from salesloft_pipeline.warehouse.tables import utc
from salesloft_pipeline.warehouse.writeback import Entry, Ledger, chunks

log = logging.getLogger(__name__)

BATCH = 25  # intents made durable per transaction; at most this many are pending after a crash

# Reads a refusal: returns (status, note) to record instead of "rejected", or None.
Interpret = Callable[[Entry, ApiError], tuple[str, str] | None]


def parse_errors(detail: str) -> Any:
    """SalesLoft's `errors` object when the detail is its JSON, else the text."""
    try:
        return json.loads(detail)
    except ValueError:
        return detail or None


def send_one(client: SalesloftClient, entry: Entry, interpret: Interpret | None = None) -> None:
    """Sends one entry's request and records the answer on it. Re-raises what must stop the run."""
    try:
        response = client.request(entry.method or "POST", entry.path or "", json=entry.request)
    except AuthError as error:
        entry.answer("skipped", http_status=error.status, note="not applied: SalesLoft refused the API key")
        raise
    except RateLimitError as error:
        entry.answer(
            "skipped", http_status=429, note="not applied: the rate limit did not clear; planned again next run"
        )
        raise error
    except TransportError as error:
        entry.answer("sent", note=f"answer lost ({error.detail}); reconciled next run")
        return
    except ApiError as error:
        if error.status is None or error.status >= 500 or error.status == 408:
            entry.answer("sent", http_status=error.status, note="answer unknown (server error); reconciled next run")
            return
        errors = parse_errors(error.detail)
        special = interpret(entry, error) if interpret else None
        status, note = special or ("rejected", None)
        entry.answer(status, http_status=error.status, errors=errors, note=note)
        return
    data = (response.body or {}).get("data") or {}
    entry.answer(
        "ok",
        http_status=response.status,
        resource_id=None if data.get("id") is None else str(data["id"]),
        resource_updated_at=utc(data.get("updated_at")),
    )


def send_all(
    client: SalesloftClient,
    ledger: Ledger,
    entries: Sequence[Entry],
    interpret: Interpret | None = None,
    on_batch: Callable[[], None] | None = None,
) -> None:
    """Sends `entries` in order, each made durable as `pending` before it is sent."""
    for batch in chunks(entries, BATCH):
        ledger.write(batch)  # the intent, before anything leaves
        started = 0
        try:
            for entry in batch:
                started += 1
                send_one(client, entry, interpret)
        finally:
            # Entries never started were not sent: not pending, planned again next run.
            # The one being sent when an unexpected error struck stays pending.
            for entry in batch[started:]:
                entry.answer("skipped", note="not sent: the run stopped first; planned again next run")
            ledger.write(batch)
        if on_batch:
            on_batch()
