"""Dagster resources: the SalesLoft client and the warehouse, configured from the environment."""

import os

import dagster as dg
from pydantic import Field

from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.salesloft.auth import OAUTH_VARIABLES, TokenSource, make_token_source
from salesloft_pipeline.salesloft.errors import API_KEY_VARIABLE
from salesloft_pipeline.warehouse import Warehouse, open_warehouse


class SalesloftResource(dg.ConfigurableResource):
    """Access to SalesLoft's REST API v2, paced to the team's shared budget.

    Credentials: an API key, or an OAuth app (client id, secret and the refresh
    token it was authorized with; see docs/oauth.md). Left all unset, they are
    read from the environment at run time.
    """

    api_key: str | None = Field(default=None, description="API key or OAuth access token (SALESLOFT_API_KEY).")
    client_id: str | None = Field(default=None, description="OAuth app's client id (SALESLOFT_CLIENT_ID).")
    client_secret: str | None = Field(default=None, description="OAuth app's client secret (SALESLOFT_CLIENT_SECRET).")
    refresh_token: str | None = Field(
        default=None,
        description="OAuth refresh token to start from (SALESLOFT_REFRESH_TOKEN); the rotated ones are stored.",
    )
    token_url: str | None = Field(
        default=None,
        description="OAuth token endpoint; SALESLOFT_OAUTH_TOKEN_URL or https://accounts.salesloft.com/oauth/token.",
    )
    store_url: str | None = Field(
        default=None,
        description="Where rotated OAuth tokens are kept (SALESLOFT_OAUTH_STORE_URL): postgresql://..., a file"
        " path, or unset for oauth_tokens.json under SALESLOFT_PIPELINE_HOME.",
    )
    base_url: str | None = Field(
        default=None, description="API base URL; SALESLOFT_BASE_URL or https://api.salesloft.com/v2."
    )
    budget_share: float = Field(
        default=0.9, gt=0, le=1, description="Share of the team's per-minute budget this pipeline may spend."
    )
    window_seconds: float = Field(default=60.0, gt=0, description="Length of SalesLoft's rate-limit window.")

    def client(self) -> SalesloftClient:
        return SalesloftClient(
            base_url=self.base_url,
            token_source=self._token_source(),
            budget_share=self.budget_share,
            window_seconds=self.window_seconds,
        )

    def _token_source(self) -> TokenSource:
        credentials = (self.api_key, self.client_id, self.client_secret, self.refresh_token)
        if not any(credentials):
            # None configured: the environment at run time (errors name the variables to set).
            credentials = tuple(os.environ.get(name) for name in (API_KEY_VARIABLE, *OAUTH_VARIABLES))
        api_key, client_id, client_secret, refresh_token = credentials
        return make_token_source(
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            token_url=self.token_url,  # None: SALESLOFT_OAUTH_TOKEN_URL or SalesLoft's
            store_url=self.store_url,  # None: SALESLOFT_OAUTH_STORE_URL or the file under the home
        )


class WarehouseResource(dg.ConfigurableResource):
    """Where the tables live: DuckDB by default, Postgres for teams."""

    url: str | None = Field(
        default=None,
        description="SALESLOFT_WAREHOUSE_URL: postgresql://..., a DuckDB file path, or unset for"
        " warehouse.duckdb under SALESLOFT_PIPELINE_HOME.",
    )

    def open(self, lock_timeout: float | None = None) -> Warehouse:
        """`lock_timeout`: at most this long waiting for a DuckDB file another process holds."""
        return open_warehouse(self.url, lock_timeout)
