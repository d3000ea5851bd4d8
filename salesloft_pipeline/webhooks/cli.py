"""`salesloft-pipeline webhooks serve|subscribe|unsubscribe`."""

from __future__ import annotations

import sys

import click

from .signature import SECRET_VARIABLE, MissingSecret, Secrets

DEFAULT_PATH = "/webhooks/salesloft"


@click.group("webhooks")
def webhooks_group() -> None:
    """Receive SalesLoft's webhooks: the ingest endpoint, its subscriptions and event store."""


@webhooks_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="TCP port.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log one line per request (method, path, status; never bodies or headers).")
@click.option("--warehouse-metrics/--no-warehouse-metrics", default=True, show_default=True,
              help="Read raw._loads of SALESLOFT_WAREHOUSE_URL (read-only, briefly) at each /metrics scrape.")
def serve_command(host: str, port: int, access_log: bool, warehouse_metrics: bool) -> None:
    """Serve POST /webhooks/salesloft, GET /health and GET /metrics until stopped.

    Needs SALESLOFT_WEBHOOK_SECRET; stores into SALESLOFT_EVENTS_URL (default:
    events.sqlite under SALESLOFT_PIPELINE_HOME). /metrics also reports the
    pipeline's health: webhook lag and the warehouse's loads (docs/monitoring.md)."""
    import uvicorn

    from salesloft_pipeline.monitoring import PipelineCollector

    from .app import create_app
    from .store import open_event_store

    try:
        secrets = Secrets.from_env()
    except MissingSecret as error:
        raise click.UsageError(str(error)) from None
    try:
        store = open_event_store()
        collector = PipelineCollector.from_env(store, warehouse=warehouse_metrics)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    app = create_app(store, secrets, collectors=[collector])
    click.echo(f"salesloft-pipeline webhooks: http://{host}:{port}{DEFAULT_PATH} -> {store.describe()}", err=True)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", lifespan="on")


@webhooks_group.command("mark-applied")
@click.option("--through", "through_seq", type=click.IntRange(min=0), required=True,
              help="Every event with a sequence number up to this one has been applied.")
def mark_applied_command(through_seq: int) -> None:
    """Record in the event store that every event up to --through is applied.

    Apply runs record their ranges themselves; this is for a store that held
    events before they did: take `requested_through` from the
    salesloft_webhooks sensor's cursor when its `outstanding` is empty
    (docs/monitoring.md). Stores into SALESLOFT_EVENTS_URL."""
    from .store import open_event_store

    try:
        store = open_event_store()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        store.setup()
        last = store.last_seq()
        if through_seq > last:  # later events would be counted applied before they were
            raise click.UsageError(f"--through {through_seq} is past the last event stored ({last})")
        marker = store.mark_applied(0, through_seq)
    finally:
        store.close()
    click.echo(f"{store.describe()}: every event up to {marker} is applied")


def _client(api_key: str | None, base_url: str | None):  # type: ignore[no-untyped-def]
    from salesloft_pipeline.salesloft import SalesloftClient
    from salesloft_pipeline.salesloft.errors import ConfigError

    try:
        return SalesloftClient(api_key, base_url)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


@webhooks_group.command("subscribe")
@click.option("--url", "public_url", required=True,
              help="Public URL of the endpoint, e.g. https://hooks.example.com/webhooks/salesloft.")
@click.option("--api-key", envvar="SALESLOFT_API_KEY", default=None, show_envvar=True, hidden=True)
@click.option("--base-url", envvar="SALESLOFT_BASE_URL", default=None, show_envvar=True,
              help="API base URL (default https://api.salesloft.com/v2).")
def subscribe_command(public_url: str, api_key: str | None, base_url: str | None) -> None:
    """Subscribe PUBLIC_URL to every event type the pipeline applies (idempotent).

    Subscriptions are signed with the first secret of SALESLOFT_WEBHOOK_SECRET."""
    from salesloft_pipeline.salesloft.errors import SalesloftError

    from .subscriptions import subscribe

    try:
        secrets = Secrets.from_env()
    except MissingSecret as error:
        raise click.UsageError(str(error)) from None
    with _client(api_key, base_url) as client:
        try:
            changes = subscribe(client, public_url, secrets.current)
        except SalesloftError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
    click.echo(f"subscriptions to {public_url}: {changes.summary()}")


@webhooks_group.command("unsubscribe")
@click.option("--url", "public_url", required=True, help="The endpoint URL whose subscriptions to remove.")
@click.option("--api-key", envvar="SALESLOFT_API_KEY", default=None, show_envvar=True, hidden=True)
@click.option("--base-url", envvar="SALESLOFT_BASE_URL", default=None, show_envvar=True,
              help="API base URL (default https://api.salesloft.com/v2).")
def unsubscribe_command(public_url: str, api_key: str | None, base_url: str | None) -> None:
    """Remove every webhook subscription pointing at PUBLIC_URL."""
    from salesloft_pipeline.salesloft.errors import SalesloftError

    from .subscriptions import unsubscribe

    with _client(api_key, base_url) as client:
        try:
            changes = unsubscribe(client, public_url)
        except SalesloftError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
    click.echo(f"subscriptions to {public_url}: {changes.summary()}")


__all__ = ["SECRET_VARIABLE", "webhooks_group"]
