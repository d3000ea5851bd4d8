"""Sending planned changes one request each, with the ledger around every request.

A batch of intents is written `pending` in one transaction before any of its
requests leaves; answers are written when the batch is done (or the run
stops). A crash in between leaves `pending` rows: the next run reconciles
them with SalesLoft before planning, so nothing is sent twice. A request
whose answer was lost (dropped connection, 5xx to a POST) is `sent`: it may
have been applied, and is reconciled the same way.

Only a 422 is SalesLoft's refusal of a row (`rejected`, and the run carries
on). A 404 to an update means the record was deleted in SalesLoft: the row is
`unresolved`, and the run carries on. Any other failure says nothing about
the row (403 no write scope, 404 to a create, 400, 409, the OAuth token
endpoint failing, the rate limit not clearing): the row is `skipped` (not
applied, planned again) and the run stops.
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


class WriteStopped(RuntimeError):
    """SalesLoft answered a write with an error that is not about the row (not a 422): the run stops."""

    def __init__(self, error: ApiError) -> None:
        hint = " The API key or OAuth app may lack write access to SalesLoft." if error.status == 403 else ""
        super().__init__(
            f"{str(error).rstrip('.')}. This is not a refusal of the row (that is a 422), so the run stopped;"
            f" the row and those not sent yet are planned again next run.{hint}"
        )
        self.status = error.status


def parse_errors(detail: str) -> Any:
    """SalesLoft's `errors` object when the detail is its JSON, else the text."""
    try:
        return json.loads(detail)
    except ValueError:
        return detail or None


def refused(latest: Entry | None) -> bool:
    """Whether SalesLoft's latest answer for a row key (Ledger.last_answers) refused the row: a 422.
    A later `ok` lifts an earlier refusal; other statuses were never SalesLoft's verdict on the row."""
    return latest is not None and latest.status == "rejected" and latest.http_status == 422


def _about_token(error: ApiError, entry: Entry) -> bool:
    """Whether `error` came from getting an OAuth access token rather than from the write.

    The token source raises from inside httpx's auth flow, before the write
    leaves, with `path` set to the absolute token URL; the client sets `path`
    to the request's relative path ("people", "people/12"), as the entry has it."""
    return error.path != (entry.path or "").lstrip("/")


def send_one(client: SalesloftClient, entry: Entry, interpret: Interpret | None = None) -> None:
    """Sends one entry's request and records the answer on it. Re-raises what must stop the run."""
    try:
        response = client.request(entry.method or "POST", entry.path or "", json=entry.request)
    except ApiError as error:
        if _about_token(error, entry):
            entry.answer("skipped", note="not sent: no OAuth access token (the token endpoint failed); planned again")
            raise
        if isinstance(error, AuthError):
            entry.answer("skipped", http_status=error.status, note="not applied: SalesLoft refused the API key")
            raise
        if isinstance(error, RateLimitError):
            entry.answer("skipped", http_status=429, note="not applied: the rate limit did not clear; planned again")
            raise
        if isinstance(error, TransportError):
            entry.answer("sent", note=f"answer lost ({error.detail}); reconciled next run")
            return
        if error.status is None or error.status >= 500 or error.status == 408:
            entry.answer("sent", http_status=error.status, note="answer unknown (server error); reconciled next run")
            return
        errors = parse_errors(error.detail)
        if error.status == 404 and entry.method == "PUT":
            # The record was deleted in SalesLoft; staging keeps it until a *_deleted webhook says so.
            # Reported like any unknown reference, and the other rows carry on.
            entry.answer("unresolved", http_status=404, errors=errors,
                         note=f"{entry.path} no longer exists in SalesLoft (deleted?); not recreated")  # fmt: skip
            return
        if error.status != 422:  # not about this row (no write scope, not found, conflict...): stop the run
            entry.answer("skipped", http_status=error.status, errors=errors,
                         note=f"not applied: SalesLoft answered HTTP {error.status}; the run stopped")  # fmt: skip
            raise WriteStopped(error) from error
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
