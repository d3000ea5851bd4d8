"""Settings of one simulated SalesLoft team."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


def current_hour() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(minute=0, second=0, microsecond=0)


@dataclass
class SimulatorConfig:
    seed: int = 7
    people: int = 5000
    days: int = 90
    # End of the generated history; the same seed, sizes and anchor give the same data.
    anchor: datetime = field(default_factory=current_hour)
    budget: int = 600  # cost per window; 0 turns the rate limit off
    window_seconds: float = 60.0
    api_key: str = "sim-api-key"
    live: bool = False
    live_speed: float = 60.0  # simulated seconds of activity per real second
    webhook_retry_seconds: float = 15.0
    webhook_duplicate_rate: float = 0.01
    exact_last_page: bool = False
    fault_rate: float = 0.0
    # Scopes granted to the API key beyond the default ones (e.g. "email_contents:read").
    privileged_scopes: frozenset[str] = frozenset()
    # OAuth app (see oauth.py): the token endpoint is POST /oauth/token; the api_key keeps working too.
    oauth_client_id: str = "sim-client-id"
    oauth_client_secret: str = "sim-client-secret"
    oauth_refresh_token: str = "sim-refresh-token"  # the first grant's refresh token
    oauth_access_token_seconds: float = 7200.0
    host: str = "127.0.0.1"
    port: int = 0
