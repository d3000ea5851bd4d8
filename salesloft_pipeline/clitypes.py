"""Parameter types shared by the `salesloft-pipeline` subcommands."""

from __future__ import annotations

from datetime import datetime, timezone

import click


class Instant(click.ParamType):
    """An ISO-8601 timestamp; one without an offset is taken as UTC."""

    name = "ISO-8601"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
