"""`salesloft-pipeline simulator`: serve a simulated SalesLoft team until stopped."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime

import click

from salesloft_pipeline.clitypes import Instant

from .config import SimulatorConfig, current_hour


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (loopback by default).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="TCP port; 0 picks a free one."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, sizes and anchor: same data.")
@click.option(
    "--people",
    type=click.IntRange(1, 10_000_000),
    default=5000,
    show_default=True,
    help="People in the team's database; the other streams scale from it.",
)
@click.option(
    "--days", type=click.IntRange(1, 3650), default=90, show_default=True, help="Days of history before the anchor."
)
@click.option(
    "--anchor", type=Instant(), default=None, help="End of the generated history  [default: the current UTC hour]"
)
@click.option(
    "--budget",
    type=click.IntRange(0),
    default=600,
    show_default=True,
    help="API cost allowed per window; 0 turns the rate limit off.",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(0, min_open=True),
    default=60.0,
    show_default=True,
    help="Length of the fixed rate-limit window.",
)
@click.option("--api-key", default="sim-api-key", show_default=True, help="Bearer token the API accepts.")
@click.option("--live", is_flag=True, help="Keep changing records while serving.")
@click.option(
    "--live-speed",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="With --live: simulated seconds of activity per real second.",
)
@click.option(
    "--webhook-retry-seconds",
    type=click.FloatRange(0),
    default=15.0,
    show_default=True,
    help="Spacing of webhook delivery retries.",
)
@click.option(
    "--webhook-duplicate-rate",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share of webhook deliveries sent twice.",
)
@click.option("--exact-last-page", is_flag=True, help="next_page is null on an exactly full last page.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of /v2 requests that get a random fault.",
)
@click.option(
    "--oauth-client-id",
    default="sim-client-id",
    show_default=True,
    help="Client id the OAuth token endpoint (POST /oauth/token) accepts.",
)
@click.option(
    "--oauth-client-secret",
    default="sim-client-secret",
    show_default=True,
    help="Client secret the OAuth token endpoint accepts.",
)
@click.option(
    "--oauth-refresh-token",
    default="sim-refresh-token",
    show_default=True,
    help="Refresh token of the first OAuth grant (rotated on each refresh); empty: no grant at start.",
)
@click.option(
    "--oauth-access-token-seconds",
    type=click.FloatRange(0, min_open=True),
    default=7200.0,
    show_default=True,
    help="Lifetime of the OAuth access tokens issued.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope granted to the key beyond the default ones (repeatable), e.g. conversations:read.",
)
def simulator_command(anchor: datetime | None, scopes: tuple[str, ...], **options: object) -> None:
    """Serve a simulated SalesLoft team's REST API v2 on loopback until stopped.

    The base URL to give a client is printed at start (http://HOST:PORT/v2).
    See docs/simulator.md for the behaviour and the /__sim inspection routes.
    """
    from .server import Simulator

    config = SimulatorConfig(
        anchor=anchor or current_hour(), privileged_scopes=frozenset(scopes), **options  # type: ignore[arg-type]
    )
    click.echo(f"Generating {config.people} people over {config.days} days (seed {config.seed})...", err=True)
    started = time.monotonic()
    simulator = Simulator(config)
    records = sum(len(t) for t in simulator.store.tables.values())
    click.echo(f"Generated {records:,} records in {time.monotonic() - started:.1f} s.", err=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with simulator.serve():
            click.echo(f"SalesLoft simulator serving at {simulator.base_url} (api key: {config.api_key})")
            # The client id only: the OAuth secret and refresh token are never printed.
            click.echo(
                f"OAuth token endpoint: {simulator.url}/oauth/token (client id: {config.oauth_client_id})", err=True
            )
            click.echo("Inspection: " + f"{simulator.url}/__sim/stats  Ctrl-C stops.", err=True)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
