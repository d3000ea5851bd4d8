"""Validated records of one stream for one `updated_at` window."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from salesloft_pipeline.salesloft.client import SalesloftClient
from salesloft_pipeline.salesloft.errors import ApiError, MissingScopeError
from salesloft_pipeline.salesloft.models import Record
from salesloft_pipeline.salesloft.paging import iter_records
from salesloft_pipeline.salesloft.streams import Stream, get_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvalidRecord:
    """A record that failed validation, kept whole with the reason."""

    stream: str
    record: Any
    reason: str


class Extraction:
    """Iterates a stream's validated records; counts what it read.

    Incremental streams yield the records with `since <= updated_at < until`
    (either bound optional); full-refresh streams ignore the window. Records
    that fail validation are not yielded: they go to `invalid` with their
    reason. A stream whose scope the token lacks yields nothing and sets
    `skipped` to a message naming the scope.
    """

    def __init__(
        self,
        client: SalesloftClient,
        stream: Stream | str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.client = client
        self.stream = get_stream(stream) if isinstance(stream, str) else stream
        self.since = since
        self.until = until
        self.records = 0
        self.invalid: list[InvalidRecord] = []
        self.skipped: str | None = None

    def __iter__(self) -> Iterator[Record]:
        validate = self.stream.model.model_validate
        try:
            for raw in iter_records(self.client, self.stream, self.since, self.until):
                try:
                    record = validate(raw)
                except ValidationError as exc:
                    self._quarantine(raw, _reason(exc))
                    continue
                self.records += 1
                yield record
        except ApiError as exc:
            scope_error = self._missing_scope(exc)
            if scope_error is None:
                raise
            self.skipped = str(scope_error)
            log.warning("%s", self.skipped)

    def _quarantine(self, raw: Any, reason: str) -> None:
        self.invalid.append(InvalidRecord(self.stream.name, raw, reason))
        log.warning("%s: record %r kept aside: %s", self.stream.name, _id_of(raw), reason)

    def _missing_scope(self, exc: ApiError) -> MissingScopeError | None:
        """A refusal because of the stream's privileged scope, as SalesLoft words it."""
        scope = self.stream.required_scope
        if scope is None or exc.status not in (403, 422):
            return None
        # SalesLoft answers 422 "...required scope access not included"; 403 also occurs.
        if exc.status == 422 and "scope" not in exc.detail.lower():
            return None
        return MissingScopeError(self.stream.name, scope, exc.status or 0, exc.path, exc.detail)


def extract(
    client: SalesloftClient,
    stream: Stream | str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Extraction:
    """The validated records of `stream` in [since, until): iterate the result."""
    return Extraction(client, stream, since, until)


def _id_of(raw: Any) -> Any:
    return raw.get("id") if isinstance(raw, dict) else None


def _reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'record'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )
