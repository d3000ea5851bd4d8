"""Paging that keeps every request on page 1..100, at cost 1.

Incremental streams: a keyset walk. Each request asks for the first page of
`updated_at >= lower` (ascending, 100 a page) and the next lower bound is the
last record's `updated_at`, so pages never get deep. Records at the boundary
instant come back on the next page; their ids are remembered and skipped.
When a whole page shares one instant (a bulk edit), the records of exactly
that instant are paged through (`updated_at[gte]=T&updated_at[lte]=T`) and
the walk then goes on strictly after T. Timestamps are compared as instants,
never as strings: offsets differ between records.

Full-refresh lists are paged by number and deduplicated by id: they are small
lookup lists, some without paging metadata.

Both yield raw records (dicts) one by one and hold at most one page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from salesloft_pipeline.salesloft.client import Params, Response, SalesloftClient
from salesloft_pipeline.salesloft.errors import PagingError
from salesloft_pipeline.salesloft.streams import Stream

PER_PAGE = 100


def parse_instant(value: Any) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime (None if absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_instant(value: datetime) -> str:
    """A UTC instant with microseconds, as SalesLoft's filters take it."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iter_records(
    client: SalesloftClient,
    stream: Stream,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """The stream's raw records: for incremental streams those with since <= updated_at < until."""
    if stream.incremental:
        return _keyset_walk(client, stream, since, until)
    return _page_walk(client, stream)


def _records(response: Response, path: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    body = response.body
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PagingError(f"GET {path} answered without a list in 'data'")
    metadata = body.get("metadata")
    paging = metadata.get("paging") if isinstance(metadata, dict) else None
    return body["data"], paging if isinstance(paging, dict) else None


def _is_last_page(records: list[Any], paging: dict[str, Any] | None) -> bool:
    # per_page may be clamped by the server; trust what it says it used.
    per_page = (paging or {}).get("per_page") or PER_PAGE
    if len(records) < per_page:
        return True
    # An exactly full last page may or may not announce a next page.
    return paging is not None and "next_page" in paging and paging["next_page"] is None


def _keyset_walk(
    client: SalesloftClient, stream: Stream, since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    cursor, key = stream.cursor, stream.primary_key
    assert cursor is not None
    lower = since
    lower_inclusive = True
    seen_at_lower: set[Any] = set()  # keys already yielded whose cursor equals `lower`
    while True:
        bound = None
        if lower is not None:
            bound = (f"{cursor}[gte]" if lower_inclusive else f"{cursor}[gt]", format_instant(lower))
        params = _window_params(stream, bound, until)
        response = client.get(stream.path, params + [("page", 1)])
        records, paging = _records(response, stream.path)
        last_instant = None
        at_last: set[Any] = set()
        for record in records:
            instant = parse_instant(record.get(cursor))
            if instant is not None:
                if instant != last_instant:
                    last_instant, at_last = instant, set()
                at_last.add(record.get(key))
                if instant == lower and record.get(key) in seen_at_lower:
                    continue  # yielded from the previous page
            yield record
        if _is_last_page(records, paging):
            return
        if last_instant is None:
            raise PagingError(f"GET {stream.path}: a full page of records without {cursor}; cannot move on")
        if lower is not None and (last_instant < lower or (last_instant == lower and not lower_inclusive)):
            # Going on would loop: the server ignored the filter or the sort.
            raise PagingError(f"GET {stream.path} answered records outside the {cursor} window asked for")
        if last_instant == lower:
            # One instant fills the page: read that instant alone, by page number.
            yield from _tie_walk(client, stream, last_instant, seen_at_lower | at_last)
            lower, lower_inclusive, seen_at_lower = last_instant, False, set()
        else:
            lower, lower_inclusive, seen_at_lower = last_instant, True, at_last


def _tie_walk(
    client: SalesloftClient, stream: Stream, instant: datetime, seen: set[Any]
) -> Iterator[dict[str, Any]]:
    """Every record whose cursor is exactly `instant` and whose id is not in `seen`.

    A record edited during the walk leaves this instant and shifts the later
    ones back by one place, so one could slip between two pages: the walk
    starts over whenever the instant's total count changes (the edited record
    itself is read again later, at its new `updated_at`).
    """
    value = format_instant(instant)
    params = _window_params(stream, None, None) + [
        (f"{stream.cursor}[gte]", value),
        (f"{stream.cursor}[lte]", value),
        ("include_paging_counts", "true"),
    ]
    seen = set(seen)
    while True:
        first_total = None
        page = 1
        changed = False
        while True:
            response = client.get(stream.path, params + [("page", page)])
            records, paging = _records(response, stream.path)
            total = (paging or {}).get("total_count")
            if first_total is None:
                first_total = total
            elif total != first_total:
                changed = True
            for record in records:
                if record.get(stream.primary_key) not in seen:
                    seen.add(record.get(stream.primary_key))
                    yield record
            if _is_last_page(records, paging):
                break
            page += 1
        if not changed:
            return


def _window_params(
    stream: Stream, lower: tuple[str, str] | None, until: datetime | None
) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = list(stream.params)
    params += [("sort_by", stream.cursor or "updated_at"), ("sort_direction", "ASC"), ("per_page", PER_PAGE)]
    if lower is not None:
        params.append(lower)
    if until is not None:
        params.append((f"{stream.cursor}[lt]", format_instant(until)))
    return params


def _page_walk(client: SalesloftClient, stream: Stream) -> Iterator[dict[str, Any]]:
    params: Params = list(stream.params) + [("per_page", PER_PAGE)]
    seen: set[Any] = set()
    page = 1
    while True:
        response = client.get(stream.path, list(params) + [("page", page)])
        records, paging = _records(response, stream.path)
        new = 0
        for record in records:
            key = record.get(stream.primary_key)
            if key in seen:
                continue
            seen.add(key)
            new += 1
            yield record
        # A list without paging metadata that ignores `page` repeats itself: stop there.
        if _is_last_page(records, paging) or (paging is None and new == 0):
            return
        page += 1
