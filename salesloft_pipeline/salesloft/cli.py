"""`salesloft-pipeline extract`: one stream's records as JSON lines."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import IO

import click
import orjson

from salesloft_pipeline.clitypes import Instant
from salesloft_pipeline.salesloft.client import SalesloftClient
from salesloft_pipeline.salesloft.errors import SalesloftError
from salesloft_pipeline.salesloft.extract import Extraction
from salesloft_pipeline.salesloft.models import dump_record_json
from salesloft_pipeline.salesloft.streams import BY_NAME


@click.command("extract")
@click.argument("stream", type=click.Choice(sorted(BY_NAME)), metavar="STREAM")
@click.option("--since", type=Instant(), help="Only records updated at or after this instant.")
@click.option("--until", type=Instant(), help="Only records updated before this instant.")
@click.option("--out", type=click.File("w"), default="-", help="Where to write JSON lines (stdout).")
@click.option(
    "--invalid-out",
    type=click.File("w"),
    default=None,
    help="Where to write records that fail validation, with the reason (default: stderr).",
)
def extract_command(
    stream: str,
    since: datetime | None,
    until: datetime | None,
    out: IO[str],
    invalid_out: IO[str] | None,
) -> None:
    """Write STREAM's records as JSON lines, then a summary line on stderr.

    Reads SALESLOFT_API_KEY (or, for OAuth, SALESLOFT_CLIENT_ID,
    SALESLOFT_CLIENT_SECRET and SALESLOFT_REFRESH_TOKEN: see docs/oauth.md)
    and SALESLOFT_BASE_URL. --since/--until select
    records by updated_at (since <= updated_at < until) on incremental streams.
    """
    started = time.monotonic()
    try:
        client = SalesloftClient()
    except SalesloftError as exc:
        raise click.ClickException(str(exc)) from exc
    extraction = Extraction(client, stream, since, until)
    if (since or until) and not extraction.stream.incremental:
        click.echo(f"{stream} is a full-refresh list: --since/--until do not apply.", err=True)
    failure: SalesloftError | None = None
    try:
        for record in extraction:
            out.write(dump_record_json(record))
            out.write("\n")
        out.flush()
    except SalesloftError as exc:
        failure = exc
    finally:
        client.close()
    invalid_sink = invalid_out or sys.stderr
    for item in extraction.invalid:
        line = {"stream": item.stream, "reason": item.reason, "record": item.record}
        invalid_sink.write(orjson.dumps(line).decode() + "\n")
    stats = client.stats
    summary = {
        "stream": stream,
        "records": extraction.records,
        "invalid": len(extraction.invalid),
        "requests": stats.requests,
        "api_cost": stats.cost,
        "rate_limited": stats.rate_limited,
        "retries": stats.retries,
        "waited_for_budget_seconds": round(client.pacer.waited_seconds, 3),
        "seconds": round(time.monotonic() - started, 3),
    }
    if extraction.skipped:
        summary["skipped"] = extraction.skipped
    # The summary comes even after a failure: it is what users debug with.
    click.echo(orjson.dumps(summary).decode(), err=True)
    if failure is not None:
        raise click.ClickException(str(failure))
