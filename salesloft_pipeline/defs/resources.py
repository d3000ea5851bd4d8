"""Dagster resources: the SalesLoft client and the warehouse, configured from the environment."""

import dagster as dg
from pydantic import Field

from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.warehouse import Warehouse, open_warehouse


class SalesloftResource(dg.ConfigurableResource):
    """Access to SalesLoft's REST API v2, paced to the team's shared budget."""

    api_key: str = Field(description="API key or OAuth access token (SALESLOFT_API_KEY).")
    base_url: str | None = Field(
        default=None, description="API base URL; SALESLOFT_BASE_URL or https://api.salesloft.com/v2."
    )
    budget_share: float = Field(
        default=0.9, gt=0, le=1, description="Share of the team's per-minute budget this pipeline may spend."
    )
    window_seconds: float = Field(default=60.0, gt=0, description="Length of SalesLoft's rate-limit window.")

    def client(self) -> SalesloftClient:
        return SalesloftClient(
            self.api_key,
            self.base_url,
            budget_share=self.budget_share,
            window_seconds=self.window_seconds,
        )


class WarehouseResource(dg.ConfigurableResource):
    """Where the tables live: DuckDB by default, Postgres for teams."""

    url: str | None = Field(
        default=None,
        description="SALESLOFT_WAREHOUSE_URL: postgresql://..., a DuckDB file path, or unset for"
        " warehouse.duckdb under SALESLOFT_PIPELINE_HOME.",
    )

    def open(self) -> Warehouse:
        return open_warehouse(self.url)
